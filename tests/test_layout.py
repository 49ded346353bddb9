import re
import subprocess
import sys
from pathlib import Path


def test_the_library_never_imports_streamlit_outside_ui():
    code = ("import sys, mnistlab.data, mnistlab.arch, mnistlab.augment, mnistlab.train, mnistlab.jobs, "
            "mnistlab.checkpoint, mnistlab.drawing, mnistlab.analysis, mnistlab.rules, mnistlab.cli; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_pages_live_beside_the_router_in_views_not_pages():
    # With a folder named pages/ beside app.py, Streamlit (PagesManager.uses_pages_directory) starts every server in
    # its legacy multipage mode until st.navigation has run once: a page opened by its address (a shared link) would
    # run without the router, so the link would not be read and a stray "app" page would be listed.
    root = Path(__file__).resolve().parent.parent
    assert not (root / "pages").exists()
    routed = re.findall(r'st\.Page\("(views/[^"]+\.py)"', (root / "app.py").read_text())
    assert sorted(routed) == sorted(f"views/{p.name}" for p in (root / "views").glob("*.py"))
