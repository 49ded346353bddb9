"""Lessons: the steps as data, their shipped figures, the lesson link (``?lesson=N&controls=...``) as hostile input,
and the pages it opens or fixes (AppTest)."""

import json
import urllib.parse
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistlab import arch, lessons, rules
from mnistlab.ui import why
from mnistlab.ui.lessons import share_url

from .test_app import isolated_runs, page  # noqa: F401 (isolated_runs: a fixture, used by all)

ROOT = Path(__file__).resolve().parent.parent
EDITOR_WIDGETS = ("number_input", "selectbox", "toggle", "slider", "checkbox")


# ------------------------------------------------------------------------------------------------ the steps


def test_every_step_is_a_valid_network_and_recipe_within_the_rules():
    names = set()
    for n, s in enumerate(lessons.STEPS, 1):
        assert s.number == n and lessons.step(n) is s
        s.config.validate()
        assert s.config.epochs == lessons.EPOCHS  # equal cost: the steps compare
        assert arch.count_params(s.spec) < rules.PARAM_LIMIT
        assert len(s.spec.name) <= arch.MAX_NAME and s.spec.name not in names
        names.add(s.spec.name)
        assert all([s.title, s.change, s.target, s.analysis, s.question, s.answer])


def test_each_step_changes_something_and_its_recipe_is_found_by_its_network():
    for before, s in zip(lessons.STEPS, lessons.STEPS[1:]):
        assert replace(before.spec, name="x") != replace(s.spec, name="x") or before.config != s.config
    for s in lessons.STEPS:
        assert lessons.recipe_for(s.spec) == s.config
        assert lessons.recipe_for(replace(s.spec, name="custom")) is None  # edited: the student's own
    assert lessons.step(1).config.schedule == "constant" and lessons.step(1).config.lr == 0.01  # the seed's recipe
    assert replace(lessons.step(5).spec, name="best") == arch.preset("best")
    assert replace(lessons.step(1).spec, name="seed") == arch.preset("seed")


def test_the_shipped_figures_cover_every_step_and_summarise_the_benchmark():
    shipped = json.loads(lessons.RESULTS_FILE.read_text())
    figures = lessons.results()
    assert set(figures) == {s.number for s in lessons.STEPS}
    for s in lessons.STEPS:
        f = figures[s.number]
        assert f["params"] == arch.count_params(s.spec) and f["epochs"] == lessons.EPOCHS
        assert f["seeds"] and set(f["seeds"]) <= set(lessons.SEEDS) and len(f["accuracies"]) == len(f["seeds"])
        assert f["min"] <= f["mean"] <= f["max"]
    lines = (ROOT / "benchmarks/results/lessons.jsonl").read_text().splitlines()
    assert shipped == lessons.summarise(json.loads(line) for line in lines if line.strip())


def test_missing_or_damaged_figures_read_as_none(tmp_path):
    assert lessons.results(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert lessons.results(tmp_path / "bad.json") == {} and lessons.results_device(tmp_path / "bad.json") is None


# ------------------------------------------------------------------------------------------------ the link


values = st.none() | st.text(max_size=40) | st.sampled_from(["1", "6", "7", "0", "-1", "03", "1e1", "٣", " 2"]) \
    | st.text(min_size=1000, max_size=1100)


@settings(max_examples=400, deadline=None)
@given(values, st.none() | st.text(max_size=20) | st.sampled_from(list(lessons.CONTROLS)))
def test_any_lesson_link_gives_a_step_or_a_message(lesson, controls):
    number, got, message = lessons.parse_link(lesson, controls)
    if message is None and number is None:
        assert lesson is None and controls is None and got is None
    elif message is None:
        assert 1 <= number <= len(lessons.STEPS) and str(number) == lesson.lstrip("0")
        assert got == controls and (got is None or got in lessons.CONTROLS)
    else:
        assert number is None and got is None and len(message) < 120


@pytest.mark.parametrize("controls", [None, *lessons.CONTROLS])
def test_a_shared_url_reads_back_as_its_step(controls):
    url = share_url("http://host:8501/app", 4, controls, "Train")
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert parts.path == "/app/Train"
    assert lessons.parse_link(query.get("lesson"), query.get("controls")) == (4, controls, None)


# ------------------------------------------------------------------------------------------------ the pages


def linked(path: str, **query):
    at = page(path)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def editor_widgets(at):
    return [w for kind in EDITOR_WIDGETS for w in getattr(at, kind) if str(w.key).startswith("ed_")]


def test_a_lesson_link_shows_its_step_with_its_figures_and_a_hidden_answer():
    at = linked("views/6_Lessons.py", lesson="4")
    assert not at.exception
    assert at.radio(key="lesson_pick").value == 4
    assert at.subheader[0].value.startswith("Step 4")
    mean = lessons.results()[4]["mean"]
    assert any(m.value == f"{mean:.2f} %" for m in at.metric)
    assert [e.label for e in at.expander if e.label == "Show the answer"]
    at.radio(key="lesson_pick").set_value(2).run()
    assert at.subheader[0].value.startswith("Step 2") and at.query_params["lesson"] == "2"


def test_open_puts_the_network_in_the_editor_and_the_recipe_in_the_train_form(monkeypatch):
    from mnistlab.jobs import JobManager

    submitted = []
    monkeypatch.setattr(JobManager, "submit", lambda self, spec, cfg, **kw: submitted.append((spec, cfg)) or "x")
    at = linked("views/6_Lessons.py", lesson="1")
    at.button(key="open_step").click().run()
    assert not at.exception and at.success
    at.switch_page("views/1_Architecture.py").run()
    assert at.number_input(key="ed_w_0_1").value == 32 and at.toggle(key="ed_bias").value is True
    assert not any(w.disabled for w in editor_widgets(at))  # opened, not fixed: the student's to change
    at.switch_page("views/2_Train.py").run()
    assert at.number_input(key="train_lr").value == 0.01 and at.selectbox(key="train_batch_size").value == 64
    next(b for b in at.button if b.label == "Start training").click().run()
    (spec, cfg), = submitted
    assert spec == lessons.step(1).spec
    assert replace(cfg, distill_chain=None) == lessons.step(1).config  # the constant LR, no weight decay too


def test_a_fixing_link_disables_the_controls_until_the_student_leaves_the_lesson():
    at = linked("views/1_Architecture.py", lesson="2", controls="fixed")
    assert not at.exception
    assert any("fixed by the lesson" in i.value for i in at.info)
    widgets = editor_widgets(at)
    assert len(widgets) > 10 and all(w.disabled for w in widgets)
    assert at.query_params["lesson"] == "2" and at.query_params["controls"] == "fixed"  # a reload keeps it
    at.switch_page("views/2_Train.py").run()
    assert at.number_input(key="train_epochs").disabled and at.number_input(key="train_lr").value == 0.05
    assert not at.toggle(key="train_quick").disabled  # quick mode stays the student's
    at.button(key="leave_lesson").click().run()
    assert not any("fixed by the lesson" in i.value for i in at.info)
    assert not at.number_input(key="train_epochs").disabled and "controls" not in at.query_params
    at.switch_page("views/1_Architecture.py").run()
    assert not any(w.disabled for w in editor_widgets(at))


def test_a_hiding_link_hides_the_editor_and_the_recipe_but_shows_the_network():
    at = linked("views/1_Architecture.py", lesson="6", controls="hidden")
    assert not at.exception and not editor_widgets(at)
    assert at.metric[0].value == f"{arch.count_params(lessons.step(6).spec):,}"
    at.switch_page("views/2_Train.py").run()
    assert [t.key for t in at.toggle] == ["train_quick"] and not at.number_input


@pytest.mark.parametrize("query, says", [
    ({"lesson": "9"}, "from 1 to"), ({"lesson": "x" * 5000, "controls": "fixed"}, "from 1 to"),
    ({"lesson": "2", "controls": "<b>evil</b>"}, "controls must be one of"), ({"controls": "fixed"}, "needs lesson"),
    ({"lesson": "٣"}, "from 1 to")])
def test_a_hostile_lesson_link_says_why_and_changes_nothing(query, says):
    at = linked("views/1_Architecture.py", **query)
    assert not at.exception
    assert any(says in w.value.replace("\\", "") for w in at.warning)
    assert not any(w.disabled for w in editor_widgets(at)) and at.metric[0].value == "18,448"  # the default


def test_a_lesson_link_without_controls_keeps_a_shared_arch_link():
    at = linked("views/1_Architecture.py", arch="tiny", lesson="3")
    assert not at.exception and not at.warning
    assert at.metric[0].value == f"{arch.count_params(arch.preset('tiny')):,}"


def test_every_editor_and_train_control_says_why():
    at = page("views/1_Architecture.py").run()
    controls = editor_widgets(at) + [b for b in at.button if b.key and b.key.rstrip("0123456789") in ("addc", "rmc",
                                                                                                    "rmb")]
    assert len(controls) > 15 and all(w.help for w in controls), [w.key for w in controls if not w.help]
    at.switch_page("views/2_Train.py").run()
    form = [w for kind in ("number_input", "selectbox", "toggle") for w in getattr(at, kind)
            if str(w.key).startswith("train_")]
    assert len(form) == 6 and all(w.help for w in form)
    assert all(len(text) < 200 for text in [*why.EDITOR.values(), *why.TRAIN.values()])

