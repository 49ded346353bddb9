"""The pages, driven by Streamlit's AppTest (no browser)."""

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnistlab import arch

TIMEOUT = 60


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("MNISTLAB_RUNS", str(tmp_path / "runs"))
    import streamlit as st

    st.cache_resource.clear()  # a fresh job manager per test
    yield
    from mnistlab.ui import state

    state.job_manager().close()
    st.cache_resource.clear()


ROOT = Path(__file__).resolve().parent.parent


def page(path: str) -> AppTest:
    """An AppTest of the multipage app (app.py is the entrypoint), opened on ``path``."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page(path)
    return at


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def test_home_page_states_the_challenge():
    at = page("views/0_Home.py").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "99.4 %" in text and "20,000 parameters" in text and "global average pooling" in text


def test_architecture_budget_updates_when_a_width_changes():
    at = page("views/1_Architecture.py").run()
    assert not at.exception
    before = metric(at, "Parameters").value
    assert before == f"{arch.count_params(arch.preset('best')):,}"
    at.number_input(key="ed_w_1_0").set_value(64).run()
    after = metric(at, "Parameters").value
    assert int(after.replace(",", "")) > int(before.replace(",", ""))
    assert not at.exception
    # past the budget the parameter check fails, and says so
    at.number_input(key="ed_w_1_1").set_value(128).run()
    assert int(metric(at, "Parameters").value.replace(",", "")) > 20_000
    assert any("limit: fewer than 20,000" in e.value for e in at.error)
    assert json.loads(at.query_params["arch"][0] if isinstance(at.query_params["arch"], list)
                      else at.query_params["arch"])["blocks"][1]["widths"][0] == 64


def test_loading_the_seed_preset_shows_19122_parameters_and_its_table():
    at = page("views/1_Architecture.py").run()
    at.selectbox(key="preset_choice").set_value("seed")
    at.button[0].click().run()
    assert metric(at, "Parameters").value == "19,122"
    assert at.query_params["arch"] in ("seed", ["seed"])
    table = at.dataframe[0].value
    assert len(table) == len(arch.summary(arch.preset("seed")).layers)


def test_an_invalid_spec_shows_its_message_and_no_traceback():
    at = page("views/1_Architecture.py").run()
    at.number_input(key="ed_w_0_0").set_value(300).run()
    assert not at.exception
    assert any("widths must be between 1 and 256" in e.value for e in at.error)
    # the last valid network stays in force
    assert metric(at, "Parameters").value == f"{arch.count_params(arch.preset('best')):,}"


def test_a_hostile_link_falls_back_to_the_default_with_a_message():
    at = page("views/1_Architecture.py")
    at.query_params["arch"] = '{"blocks": [{"widths": [99999]}], "__class__": "os.system"}'
    at.run()
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert metric(at, "Parameters").value == f"{arch.count_params(arch.preset('best')):,}"


def test_a_shared_link_opens_the_same_network():
    spec = arch.preset("lean")
    custom = arch.ArchSpec.from_dict({**spec.to_dict(), "name": "custom", "dropout": 0.2})
    at = page("views/1_Architecture.py")
    at.query_params["arch"] = custom.to_json()
    at.run()
    assert not at.exception
    assert metric(at, "Parameters").value == f"{arch.count_params(custom):,}"
    assert at.slider(key="ed_dropout").value == pytest.approx(0.2)


def start_quick_run(at: AppTest, epochs: int = 1) -> AppTest:
    at.number_input[0].set_value(epochs)
    next(t for t in at.toggle if "quick mode" in t.label).set_value(True)
    next(b for b in at.button if b.label == "Start training").click()
    return at.run()


def wait_for(at: AppTest, predicate, timeout: float = 120) -> AppTest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        if predicate(at):
            return at
        time.sleep(0.5)
    raise AssertionError("the page never reached the expected state")


def test_a_quick_run_shows_progress_and_can_be_cancelled():
    at = page("views/2_Train.py").run()
    assert not at.exception
    start_quick_run(at, epochs=10)
    wait_for(at, lambda a: any("Running on" in (p.text or "") for p in at.get("progress")))
    assert any("CPU" in (p.text or "") or "NVIDIA" in (p.text or "") for p in at.get("progress"))
    at.button(key="cancel").click().run()
    wait_for(at, lambda a: any("Cancelled" in w.value for w in a.warning), timeout=10)


def test_a_finished_quick_run_can_be_chosen_on_the_draw_page():
    at = page("views/2_Train.py").run()
    start_quick_run(at, epochs=1)
    wait_for(at, lambda a: any(m.label.startswith("Final test accuracy") for m in a.metric))
    assert not at.exception
    draw = page("views/3_Draw.py").run()
    assert not draw.exception
    options = draw.selectbox(key="model_choice").options
    run_option = next(o for o in options if o.startswith("run ·"))
    draw.selectbox(key="model_choice").set_value(run_option).run()
    assert not draw.exception and not draw.error
    assert metric(draw, "Prediction").value == "—"  # nothing drawn yet
    assert any(i.value.startswith("Draw a digit") for i in draw.info)


def test_draw_page_offers_every_shipped_preset():
    at = page("views/3_Draw.py").run()
    assert not at.exception
    options = at.selectbox(key="model_choice").options
    for name in ("seed", "best", "lean", "tiny"):
        assert f"preset · {name}" in options
