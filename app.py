"""MNIST Lab: `streamlit run app.py`. The router; each page lives in views/.

(Not `pages/`: while that folder exists, Streamlit (1.67) starts every server, and every AppTest run, in its legacy
multipage mode until `st.navigation` has been called once, and in that mode a page opened by its address runs without
this router: no shared link read, no notices, and a stray "app" page in the sidebar.)"""

import streamlit as st

from mnistlab.ui import identity, labels, lessonlink, links, notices

st.set_page_config(page_title="MNIST Lab", page_icon="🔢", layout="wide")
page = st.navigation([
    st.Page("views/0_Home.py", title="Home", icon="🏠", default=True),
    st.Page("views/6_Lessons.py", title="Lessons", icon="🧭"),  # right after Home: a class starts its path here
    st.Page("views/1_Architecture.py", title="Architecture", icon="🧱"),
    st.Page("views/2_Train.py", title="Train", icon="🏋️"),
    st.Page("views/3_Draw.py", title="Draw", icon="✏️"),
    st.Page("views/4_Runs.py", title="Runs", icon="🏆"),
    st.Page("views/5_Teacher.py", title="Teacher", icon="🧑‍🏫"),
])
# A shared ?arch= link is read on whichever page it opens (Streamlit drops the query on the first page switch), and a
# broken one is reported there.
if message := links.read_shared_link():
    st.warning(labels.plain(message))
if message := lessonlink.read_link():  # ?lesson=N[&controls=...]: after ?arch=, so that a lesson's network wins
    st.warning(labels.plain(message))
notices.server_notices()
with st.sidebar:  # remembered in the browser: a reload or a new tab is still the same student
    identity.remember()
page.run()
