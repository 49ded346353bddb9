"""The only Streamlit-aware part of mnistlab: shared resources, widgets and plotly figures for the pages."""
