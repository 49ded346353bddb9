"""The Architecture and Runs pages, driven by Streamlit's AppTest (no browser): where the editor says what is wrong,
and what the Runs page shows of one run."""

import json

from streamlit.testing.v1 import AppTest

from mnistlab import arch

from .test_app import add_finished_run, isolated_runs, page  # noqa: F401 (isolated_runs: a fixture, used by all)


def ancestors(at: AppTest, element) -> list:
    """The blocks that hold ``element``, outermost first."""
    def walk(node, path):
        for child in node.children.values():
            if child is element:
                return path
            if hasattr(child, "children") and (found := walk(child, path + [child])) is not None:
                return found
        return None

    return walk(at._tree, [])


def editor_block(at: AppTest, element) -> str | None:
    """The editor's block (its title, e.g. "Block 2") whose bordered container holds ``element``, if any."""
    for block in reversed(ancestors(at, element)):
        for child in block.children.values():
            if child.type == "markdown" and child.value.startswith("**Block "):
                return child.value.split("**")[1]
    return None


def problem(at: AppTest, text: str):
    (error,) = [e for e in at.error if text in e.value]
    return error


def test_a_whole_network_error_shows_in_the_block_changed_last():
    """Too many parameters names no block; the message goes to the block the student just widened, and follows the
    student's next change."""
    at = page("views/1_Architecture.py").run()
    at.number_input(key="ed_w_1_0").set_value(256).run()
    at.number_input(key="ed_w_1_1").set_value(256).run()
    assert not at.exception
    assert editor_block(at, problem(at, f"over the limit of {arch.MAX_PARAMS:,}")) == "Block 2"
    at.number_input(key="ed_w_0_0").set_value(8).run()  # a change in block 1: still too many
    assert editor_block(at, problem(at, f"over the limit of {arch.MAX_PARAMS:,}")) == "Block 1"
    at.button(key="addc2").click().run()  # a conv added to block 3
    assert editor_block(at, problem(at, f"over the limit of {arch.MAX_PARAMS:,}")) == "Block 3"


def test_a_block_error_stays_in_its_block_and_a_general_one_under_the_general_controls():
    at = page("views/1_Architecture.py").run()
    at.number_input(key="ed_w_2_0").set_value(300).run()
    assert editor_block(at, problem(at, "widths must be between 1 and 256")) == "Block 3"
    at.number_input(key="ed_w_2_0").set_value(40).run()
    assert not at.error or all("limit: fewer" in e.value for e in at.error)
    at.selectbox(key="preset_choice").set_value("tiny").run()
    next(b for b in at.button if b.label == "Load preset").click().run()
    at.selectbox(key="ed_head").set_value("conv3").run()  # tiny leaves a 2x2 map: too small for a 3x3 head
    error = problem(at, "the 3x3 head needs a map of at least 3x3")
    assert editor_block(at, error) is None  # beside the head's control, not in a block


def test_the_runs_page_says_none_in_words_and_outlines_the_picked_cell():
    add_finished_run("aaa", "Ann", 99.45)
    at = page("views/4_Runs.py").run()
    assert not at.exception
    settings = at.dataframe[1].value
    assert "None" not in list(settings["value"]) and "—" in list(settings["value"])  # e.g. no mentor network
    at.selectbox(key="cell_true_aaa").set_value(4).run()
    at.selectbox(key="cell_pred_aaa").set_value(9).run()
    (figure,) = [f for f in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
                 if any(trace["type"] == "heatmap" for trace in f["data"])]
    cells = [trace for trace in figure["data"] if trace["type"] == "scatter"]
    assert [trace.get("selectedpoints") for trace in cells] == [[4 * 10 + 9]]  # the picked cell is the one outlined
