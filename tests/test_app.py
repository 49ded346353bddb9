"""The pages, driven by Streamlit's AppTest (no browser)."""

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnistlab import arch

from .conftest import HANG

TIMEOUT = 60


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch, data_root):
    from mnistlab import throttle

    monkeypatch.setenv("MNISTLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(throttle, "shared", throttle.GuessThrottle())  # no test inherits another's wrong guesses
    import streamlit as st

    st.cache_resource.clear()  # a fresh job manager per test
    yield
    from mnistlab.ui import resources

    resources.job_manager().close()
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


def test_bias_can_be_switched_on_when_batch_norm_is_off():
    at = page("views/1_Architecture.py").run()
    best = arch.preset("best")
    assert at.toggle(key="ed_bias").value is False  # best has none: batch-norm's shift does that job
    at.toggle(key="ed_batchnorm").set_value(False).run()
    without = int(metric(at, "Parameters").value.replace(",", ""))
    at.toggle(key="ed_bias").set_value(True).run()
    assert not at.exception
    with_bias = int(metric(at, "Parameters").value.replace(",", ""))
    convs = sum(layer.out_channels for layer in arch.plan(best) if layer.type == "Conv2d")
    assert with_bias - without == convs


def test_a_chosen_but_unloaded_preset_says_how_to_load_it():
    at = page("views/1_Architecture.py").run()
    at.selectbox(key="preset_choice").set_value("tiny").run()
    assert any("Press **Load preset**" in c.value and "tiny" in c.value for c in at.caption)
    assert metric(at, "Parameters").value == f"{arch.count_params(arch.preset('best')):,}"  # not loaded yet
    next(b for b in at.button if b.label == "Load preset").click().run()
    assert metric(at, "Parameters").value == f"{arch.count_params(arch.preset('tiny')):,}"
    assert not any("Press **Load preset**" in c.value for c in at.caption)


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


@pytest.mark.parametrize("opened_on", ["views/0_Home.py", "views/2_Train.py"])
def test_a_link_opened_on_another_page_is_read_there(opened_on):
    shared = arch.ArchSpec.from_dict({**arch.preset("lean").to_dict(), "name": "custom", "dropout": 0.2})
    at = page(opened_on)
    at.query_params["arch"] = shared.to_json()
    at.run()
    assert not at.exception and not at.warning
    at.switch_page("views/1_Architecture.py").run()  # the query is gone by now; the network is not
    assert metric(at, "Parameters").value == f"{arch.count_params(shared):,}"
    broken = page(opened_on)
    broken.query_params["arch"] = "{{{"
    broken.run()
    assert any("not valid" in w.value for w in broken.warning)  # said where the link was opened


def start_quick_run(at: AppTest, epochs: int = 1) -> AppTest:
    at.number_input[0].set_value(epochs)
    next(t for t in at.toggle if "quick mode" in t.label).set_value(True)
    next(b for b in at.button if b.label == "Start training").click()
    return at.run()


def wait_for_run(at: AppTest, condition=lambda run: not run.active):
    """Wait, woken by the job manager's events, until this session's run meets ``condition`` (by default: it has
    ended); return its snapshot. The page is rendered afterwards, by the test."""
    from mnistlab.ui import resources

    return resources.job_manager().wait_until(at.session_state["job_id"], condition, timeout=HANG)


def test_a_quick_run_shows_progress_and_can_be_cancelled():
    at = page("views/2_Train.py").run()
    assert not at.exception
    start_quick_run(at, epochs=10)
    snap = wait_for_run(at, lambda r: r.batch >= 1 or not r.active)  # a batch done: device and batches known
    assert snap.status == "running", snap.error
    at.run()
    progress = [p.text or "" for p in at.get("progress")]
    assert any(f"on {snap.device}" in t and "/10, batch" in t for t in progress), progress
    at.button(key="cancel").click().run()
    assert not at.exception
    assert wait_for_run(at).status == "cancelled"
    at.run()
    assert any("Cancelled" in w.value for w in at.warning)
    assert not at.exception


def test_a_finished_quick_run_can_be_chosen_on_the_draw_page():
    at = page("views/2_Train.py").run()
    start_quick_run(at, epochs=1)
    assert wait_for_run(at).status == "finished"
    at.run()
    assert any(m.label.startswith("Final test accuracy") for m in at.metric)
    assert not at.exception
    # one headline: a quick run cannot meet the challenge, and says which rule it misses
    assert any(e.value.startswith("Not met yet") and "training images" in e.value for e in at.error)
    draw = page("views/3_Draw.py").run()
    assert not draw.exception
    assert draw.selectbox(key="model_choice").value == "preset:best"  # another session: the default
    options = draw.selectbox(key="model_choice").options  # the labels shown
    draw.selectbox(key="model_choice").select_index(next(i for i, o in enumerate(options) if o.startswith("run ·")))
    draw.run()
    # the session that trained it opens Draw on its run (the Train page's "Draw a digit for this network" link)
    own = page("views/3_Draw.py")
    own.session_state["job_id"] = at.session_state["job_id"]
    own.run()
    assert own.selectbox(key="model_choice").value == f"run:{at.session_state['job_id']}"
    assert not draw.exception and not draw.error
    assert metric(draw, "Prediction").value == "—"  # nothing drawn yet
    assert any(i.value.startswith("Draw a digit") for i in draw.info)


def test_draw_page_offers_every_shipped_preset():
    at = page("views/3_Draw.py").run()
    assert not at.exception
    options = at.selectbox(key="model_choice").options
    for name in ("seed", "best", "lean", "tiny", "micro"):
        assert f"preset · {name}" in options


# ------------------------------------------------------------------------------------------------ Runs, Teacher
def add_finished_run(run_id: str, student_name: str, acc: float, *, status: str = "finished", subset=None,
                     error: str | None = None, owner: str = "someone-else"):
    """A run in the app's registry, as the worker would have left it, with the shipped tiny weights."""
    import shutil

    from mnistlab import checkpoint, train
    from mnistlab.store import Run
    from mnistlab.ui import resources

    store = resources.job_manager().store
    spec = arch.preset("tiny")
    cfg = train.TrainConfig(epochs=2, train_subset=subset)
    store.add(Run(id=run_id, owner=owner, student_name=student_name, name=spec.name, spec=spec.to_dict(),
                  config=cfg.to_dict(),
                  params=arch.count_params(spec), epochs=2, submitted_at=time.time()))
    store.started(run_id)
    for e, a in ((1, acc - 0.5), (2, acc))[: 1 if status == "interrupted" else 2]:
        store.add_epoch(run_id, train.EpochEnd(e, 2, 0.1, 98.0, 0.05, a, 1.0, 0.1, 0.01).to_dict())
    path = None
    if status in ("finished", "cancelled"):
        path = str(store.checkpoint_path(run_id))
        shutil.copy(checkpoint.shipped()["tiny"], path)
    if status != "interrupted":
        store.ended(run_id, status, error=error, checkpoint=path)


def test_draw_keeps_the_chosen_run_while_it_trains_on():
    """A training run's label changes each epoch; the Draw page must not fall back to a preset when it does."""
    import shutil

    from mnistlab import checkpoint, train
    from mnistlab.store import Run
    from mnistlab.ui import resources

    store = resources.job_manager().store
    spec = arch.preset("tiny")
    store.add(Run(id="ddd", owner="someone-else", student_name="Dee", name=spec.name, spec=spec.to_dict(),
                  config=train.TrainConfig(epochs=3).to_dict(), params=arch.count_params(spec), epochs=3,
                  submitted_at=time.time()))
    store.started("ddd")
    path = str(store.checkpoint_path("ddd"))
    shutil.copy(checkpoint.shipped()["tiny"], path)
    store.add_epoch("ddd", train.EpochEnd(1, 3, 0.1, 98.0, 0.05, 98.5, 1.0, 0.1, 0.01).to_dict(), checkpoint=path)

    at = page("views/3_Draw.py").run()
    at.selectbox(key="model_choice").set_value("run:ddd").run()
    before = at.selectbox(key="model_choice").options
    assert any("after epoch 1/3" in o for o in before)
    store.add_epoch("ddd", train.EpochEnd(2, 3, 0.1, 98.0, 0.05, 99.0, 1.0, 0.1, 0.01).to_dict(), checkpoint=path)
    at.run()
    assert not at.exception
    assert at.selectbox(key="model_choice").options != before  # the label moved on ...
    assert at.selectbox(key="model_choice").value == "run:ddd"  # ... and the choice stayed


def test_home_ranks_challenge_eligible_runs_first_and_keeps_the_presets():
    add_finished_run("aaa", "Ann", 99.45)
    add_finished_run("bbb", "Bob", 99.60, subset=5000)  # quick: better, but not eligible
    at = page("views/0_Home.py").run()
    assert not at.exception
    best, presets = (d.value for d in at.dataframe)
    assert list(best["student"]) == ["Ann", "Bob"] and list(best["challenge-eligible"]) == [True, False]
    assert list(presets["preset"]) == list(arch.PRESETS)


def test_runs_page_without_runs_says_where_they_come_from():
    at = page("views/4_Runs.py").run()
    assert not at.exception
    assert any("No runs on this server yet" in i.value for i in at.info)


def test_runs_page_leaderboard_filter_failed_run_and_mistakes():
    add_finished_run("aaa", "Ann", 99.45)
    add_finished_run("bbb", "Bob", 99.60, subset=5000)  # quick: better, but not eligible
    add_finished_run("ccc", "Cy", 10, status="failed", error="RuntimeError: disk on fire")
    at = page("views/4_Runs.py").run()
    assert not at.exception
    board = at.dataframe[0].value
    assert list(board["id"]) == ["aaa", "bbb", "ccc"]  # eligible first, then the quick run, no result last
    assert list(board["challenge-eligible"]) == [True, False, False]  # eligible, quick, failed
    at.toggle(key="eligible_only").set_value(True).run()
    assert list(at.dataframe[0].value["id"]) == ["aaa"]
    at.toggle(key="eligible_only").set_value(False).run()
    assert len(at.multiselect(key="compare").value) == 2

    at.selectbox(key="run_choice").set_value("ccc").run()
    assert any("disk on fire" in e.value for e in at.error)

    at.selectbox(key="run_choice").set_value("aaa").run()
    assert not at.exception and not at.error
    true, pred = at.selectbox(key="cell_true_aaa").value, at.selectbox(key="cell_pred_aaa").value
    assert true != pred  # the page opens on the most frequent mistake
    assert any("taken for a" in c.value for c in at.caption)
    at.selectbox(key="cell_true_aaa").set_value(3).run()
    at.selectbox(key="cell_pred_aaa").set_value(3).run()
    assert any("The diagonal" in c.value for c in at.caption)
    from mnistlab.ui import resources

    resources.job_manager().delete("aaa")
    at.toggle(key="eligible_only").set_value(True).run()  # nothing eligible left: said in words, not an empty grid
    assert any("No finished run meets every rule" in i.value for i in at.info) and not at.exception


def test_a_students_name_is_plain_text_everywhere():
    name = "**Eve** <img src=x onerror=alert(1)> [x](javascript:alert(1))"
    add_finished_run("eee", name, 99.5)
    at = page("views/4_Runs.py").run()
    assert not at.exception
    assert name in list(at.dataframe[0].value["student"])
    assert any(name in t.value for t in at.text)
    assert not any("Eve" in m.value for m in at.markdown)  # never handed to the markdown renderer


def test_interrupted_run_shows_why_and_keeps_its_epoch():
    add_finished_run("iii", "Ivy", 99.0, status="interrupted")
    from mnistlab.ui import resources

    resources.job_manager().store.ended("iii", "interrupted", error="The server stopped during epoch 2; the 1 "
                                                                 "completed epoch(s) are kept.")
    at = page("views/4_Runs.py").run()
    assert not at.exception
    assert any("during epoch 2" in w.value for w in at.warning)
    assert any("1/2 epochs" in t.value for t in at.text)


def test_clearing_streamlits_cache_keeps_the_one_job_queue():
    """The menu's "Clear cache" must not start a second queue that the teacher cannot see or cancel."""
    import streamlit as st

    from mnistlab.ui import resources

    before = resources.job_manager()
    st.cache_resource.clear()
    assert resources.job_manager() is before


def test_one_job_per_session_is_refused_with_a_message():
    at = page("views/2_Train.py").run()
    start_quick_run(at, epochs=20)
    start_quick_run(at, epochs=1)
    assert any("already have a job" in e.value for e in at.error)
    at.button(key="cancel").click().run()
    assert wait_for_run(at).status == "cancelled" and wait_for_run(at).epochs == 20  # the first job, not a second


def test_teacher_view_is_off_without_a_secret(monkeypatch):
    monkeypatch.delenv("MNISTLAB_TEACHER_SECRET", raising=False)
    at = page("views/5_Teacher.py").run()
    assert not at.exception
    assert any("teacher view is off" in i.value for i in at.info)
    assert not at.get("form") and not at.dataframe


def test_teacher_view_needs_the_right_secret_and_can_cancel_anyones_job(monkeypatch, mnist):
    monkeypatch.setenv("MNISTLAB_TEACHER_SECRET", "  s3cret ")  # stray spaces from a shell or a secrets file
    from mnistlab import train
    from mnistlab.ui import resources

    run_id = resources.job_manager().submit(arch.preset("tiny"), train.TrainConfig(epochs=30, train_subset=5000),
                                        owner="a-student", student_name="Sam")
    at = page("views/5_Teacher.py").run()
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert any("not the teacher secret" in e.value for e in at.error)
    assert not at.dataframe
    at.text_input[0].input("  s3cret ")  # typed exactly as set
    at.button[0].click().run()
    assert not at.exception
    assert run_id in list(at.dataframe[0].value["id"])
    at.button(key=f"cancel_{run_id}").click().run()
    cancelled = resources.job_manager().wait(run_id, timeout=HANG)
    assert cancelled.status == "cancelled" and "by the teacher" in cancelled.error  # its student is told who


def test_after_a_crash_every_session_hears_once_what_was_stopped(tmp_path):
    import os

    from mnistlab import train
    from mnistlab.store import Run, RunStore

    dead = RunStore(os.environ["MNISTLAB_RUNS"])  # the server that was killed
    dead.recover()
    spec = arch.preset("tiny")
    dead.add(Run(id="kkk", owner="s1", student_name="Kim", name=spec.name, spec=spec.to_dict(),
                 config=train.TrainConfig(epochs=3).to_dict(), params=arch.count_params(spec), epochs=3,
                 submitted_at=time.time()))
    dead.started("kkk")
    dead.close()
    at = page("views/2_Train.py").run()  # the restarted server's first page
    assert not at.exception
    assert any("The server was restarted: 1 run(s)" in i.value for i in at.info)
    at.run()
    assert not any("The server was restarted" in i.value for i in at.info)  # once per session, not every click


def test_an_unreadable_registry_is_reported_on_every_page_without_a_traceback():
    import os

    from mnistlab.ui import resources

    resources.job_manager()
    registry = os.path.join(os.environ["MNISTLAB_RUNS"], "runs.sqlite3")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(registry + suffix):
            os.remove(registry + suffix)
    open(registry, "wb").close()
    for view in ("views/0_Home.py", "views/3_Draw.py", "views/4_Runs.py"):
        at = page(view).run()
        assert not at.exception, view
        assert any("The run registry cannot be read" in e.value for e in at.error), view


def test_the_train_page_teaches_with_the_shipped_best_when_asked():
    at = page("views/2_Train.py")
    at.session_state["spec"] = arch.preset("tiny").to_dict()  # no preset's recipe distils: the toggle starts off
    at.run()
    teach = next(t for t in at.toggle if "distillation" in t.label)
    assert teach.value is False
    teach.set_value(True)
    start_quick_run(at, epochs=1)
    assert wait_for_run(at).status == "finished"
    at.run()
    assert any(m.label.startswith("Final test accuracy") for m in at.metric)
    assert not at.exception
    from mnistlab.ui import resources

    config = resources.job_manager().snapshot(at.session_state["job_id"]).config
    assert config["distill_from"] == "best"
    assert [list(link) for link in config["distill_chain"]] == [["best", 4, arch.count_params(arch.preset("best"))]]
    rules = " ".join(m.value for m in at.markdown)
    assert "fewer than 20 epochs, counting those of the network it learnt from (1 + 4 for best = 5)" in rules


def test_guessing_the_teacher_secret_is_braked_per_session_and_per_client(monkeypatch):
    monkeypatch.setenv("MNISTLAB_TEACHER_SECRET", "s3cret")
    at = page("views/5_Teacher.py").run()
    for i in range(5):
        at.text_input[0].input(f"guess {i}")
        at.button[0].click().run()
        assert any("not the teacher secret" in e.value for e in at.error)
    at.text_input[0].input("s3cret")  # even the right one waits now: a guesser cannot tell when they hit it
    at.button[0].click().run()
    assert any("Too many wrong guesses" in e.value for e in at.error) and not at.dataframe
    other = page("views/5_Teacher.py").run()  # a reload: a new session on the same machine
    for j in range(5):
        other.text_input[0].input(f"guess {j}")
        other.button[0].click().run()
    again = page("views/5_Teacher.py").run()  # the machine's ten wrong guesses hold every new session back
    again.text_input[0].input("s3cret")
    again.button[0].click().run()
    assert any("Too many wrong guesses" in e.value for e in again.error) and not again.dataframe


def test_a_runs_folder_that_cannot_be_used_leaves_the_app_up_with_one_line_on_every_page(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs folder should be")
    monkeypatch.setenv("MNISTLAB_RUNS", str(blocker / "runs"))
    import streamlit as st

    st.cache_resource.clear()
    for view in ("views/0_Home.py", "views/1_Architecture.py", "views/2_Train.py", "views/3_Draw.py",
                 "views/4_Runs.py", "views/5_Teacher.py"):
        at = page(view).run()
        assert not at.exception, view
        assert sum("Training is off on this server" in e.value for e in at.error) == 1, view
    at = page("views/2_Train.py").run()
    next(t for t in at.toggle if "quick mode" in t.label).set_value(True)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and any(e.value.startswith("Not started: Training is off") for e in at.error)
    assert not list((blocker.parent).rglob("*.lock"))  # the failed start left no lock file anywhere


def test_the_checkpoint_download_never_follows_a_link_out_of_the_runs_folder(mnist):
    import os

    from mnistlab import checkpoint, train
    from mnistlab.ui import resources

    manager = resources.job_manager()
    run_id = manager.submit(arch.preset("tiny"), train.TrainConfig(epochs=1, train_subset=500), owner="x")
    assert manager.wait(run_id, timeout=HANG).status == "finished"
    path = manager.store.checkpoint_path(run_id)
    path.unlink()
    path.symlink_to("/etc/passwd")
    at = page("views/4_Runs.py")
    at.run()
    at.selectbox(key="run_choice").set_value(run_id).run()
    assert not at.exception
    assert not any(getattr(b, "label", "") == "Checkpoint (.pt)" for b in at.get("download_button"))
    assert any("link" in c.value for c in at.caption)
    with pytest.raises(checkpoint.CheckpointError, match="link"):
        checkpoint.load(path, follow_links=False)
    assert os.path.islink(path)


def test_a_hostile_link_is_reported_as_plain_text_not_markdown():
    import re

    at = page("views/1_Architecture.py")
    at.query_params["arch"] = '{"blocks": [{"widths": [8]}], "[Your grade: log in](https://evil.example)": 1}'
    at.run()
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "unknown spec field" in w.value]
    assert "Your grade" in warning and not re.search(r"(?<!\\)\]\(", warning)  # the brackets are escaped: no link


def test_the_teacher_page_lists_a_job_started_after_it_opened_and_deletes_only_after_confirming(monkeypatch, mnist):
    monkeypatch.setenv("MNISTLAB_TEACHER_SECRET", "s3cret")
    from mnistlab import train
    from mnistlab.ui import resources

    manager = resources.job_manager()
    done = manager.submit(arch.preset("tiny"), train.TrainConfig(epochs=1, train_subset=500), owner="a")
    assert manager.wait(done, timeout=HANG).status == "finished"
    at = page("views/5_Teacher.py").run()
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert not at.exception and not any(b.key == "delete_confirm" for b in at.button)  # nothing chosen for them
    later = manager.submit(arch.preset("tiny"), train.TrainConfig(epochs=30, train_subset=5000), owner="b")
    at.run()  # the live part's next refresh
    at.button(key=f"cancel_{later}").click().run()  # a job started after the page opened has its own Cancel
    assert manager.wait(later, timeout=HANG).status == "cancelled"
    at.selectbox(key="delete_choice").set_value(done).run()
    assert any("for good" in w.value for w in at.warning) and manager.snapshot(done)  # asked, not yet deleted
    at.button(key="delete_confirm").click().run()
    assert not at.exception and done not in [r.id for r in manager.runs()]


def test_a_shared_custom_network_opens_with_no_preset_chosen_and_no_hint_to_load_one():
    custom = arch.ArchSpec.from_dict({**arch.preset("lean").to_dict(), "name": "custom", "dropout": 0.05})
    at = page("views/1_Architecture.py")
    at.query_params["arch"] = custom.to_json()
    at.run()
    assert not at.exception
    assert at.selectbox(key="preset_choice").value is None
    assert not any("Press **Load preset**" in c.value for c in at.caption)
    assert metric(at, "Parameters").value == f"{arch.count_params(custom):,}"


def test_train_settings_are_kept_after_another_page_and_a_later_session_gets_its_last_runs(monkeypatch):
    from mnistlab.ui import identity

    at = page("views/2_Train.py").run()
    start_quick_run(at, epochs=7)
    at.button(key="cancel").click().run()
    wait_for_run(at)
    at.switch_page("views/3_Draw.py").run()
    at.switch_page("views/2_Train.py").run()
    assert not at.exception
    assert at.number_input(key="train_epochs").value == 7 and at.toggle(key="train_quick").value is True

    # A reload is a new session of the same browser: its remembered id brings back the run and its settings.
    owner = at.session_state["owner_id"]
    monkeypatch.setattr(identity, "_cookie", lambda name: owner if name == identity.OWNER_COOKIE else None)
    again = page("views/2_Train.py").run()
    assert again.session_state["owner_id"] == owner and again.session_state["job_id"] == at.session_state["job_id"]
    assert again.number_input(key="train_epochs").value == 7 and again.toggle(key="train_quick").value is True
    assert any("Cancelled after" in w.value for w in again.warning)


def test_a_remembered_id_or_name_that_we_did_not_write_is_not_used(monkeypatch):
    from mnistlab.ui import identity

    forged = {identity.OWNER_COOKIE: "../../etc/passwd", identity.NAME_COOKIE: "%0A**Teacher**\u202e" + "x" * 300}
    monkeypatch.setattr(identity, "_cookie", forged.get)
    at = page("views/2_Train.py").run()
    assert not at.exception
    owner = at.session_state["owner_id"]
    assert owner != forged[identity.OWNER_COOKIE] and len(owner) == 32
    assert "\n" not in at.session_state["student_name"] and len(at.session_state["student_name"]) <= 40
