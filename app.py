"""MNIST Lab: `streamlit run app.py`. The router; each page lives in views/.

(Not `pages/`: with that folder Streamlit falls back to its legacy multipage mode and lists this router as a page
named "app" beside the real ones.)"""

import streamlit as st

from mnistlab.ui import state

st.set_page_config(page_title="MNIST Lab", page_icon="🔢", layout="wide")
page = st.navigation([
    st.Page("views/0_Home.py", title="Home", icon="🏠", default=True),
    st.Page("views/1_Architecture.py", title="Architecture", icon="🧱"),
    st.Page("views/2_Train.py", title="Train", icon="🏋️"),
    st.Page("views/3_Draw.py", title="Draw", icon="✏️"),
    st.Page("views/4_Runs.py", title="Runs", icon="🏆"),
    st.Page("views/5_Teacher.py", title="Teacher", icon="🧑‍🏫"),
])
# A shared ?arch= link is read on whichever page it opens (Streamlit drops the query on the first page switch), and a
# broken one is reported there.
state.current_spec()
if message := st.session_state.pop("url_message", None):
    st.warning(message)
state.server_notices()
page.run()
