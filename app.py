"""MNIST Lab: `streamlit run app.py`. The router; each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="MNIST Lab", page_icon="🔢", layout="wide")
page = st.navigation([
    st.Page("pages/0_Home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/1_Architecture.py", title="Architecture", icon="🧱"),
    st.Page("pages/2_Train.py", title="Train", icon="🏋️"),
    st.Page("pages/3_Draw.py", title="Draw", icon="✏️"),
])
page.run()
