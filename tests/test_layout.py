import subprocess
import sys


def test_the_library_never_imports_streamlit_outside_ui():
    code = ("import sys, mnistlab.data, mnistlab.arch, mnistlab.augment, mnistlab.train, mnistlab.jobs, "
            "mnistlab.checkpoint, mnistlab.drawing, mnistlab.analysis, mnistlab.cli; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
