"""The compute limit per job: a giant network cannot hold the class's one worker for hours."""

import pytest

from mnistlab import arch, cost, train
from mnistlab.jobs import JobError, JobManager

GIANT = {"blocks": [{"widths": [96, 128], "pool": False, "transition": 32}, {"widths": [64, 64], "transition": 32},
                    {"widths": [32], "padding": 0, "pool": False}]}  # under the 200k cap, 136 M MACs per image


@pytest.fixture
def idle_manager(tmp_path):
    m = JobManager(tmp_path / "runs", load_data=lambda: pytest.fail("nothing should train"))
    yield m
    m.close()


def test_every_preset_with_its_recipe_fits_the_default_limit(idle_manager):
    for name, spec in arch.PRESETS.items():
        assert idle_manager.estimated_seconds(spec, train.recipe(name)) < idle_manager.max_job_minutes * 60


def test_a_giant_network_is_refused_with_how_much_to_shrink_it(idle_manager):
    giant = arch.ArchSpec.from_dict(GIANT)
    with pytest.raises(JobError, match=r"would take about .* (h|min).* about \d+x smaller.*multiply-adds"):
        idle_manager.submit(giant, train.TrainConfig(epochs=30), owner="s1")
    assert idle_manager.runs() == [] and idle_manager.queue() == []  # nothing queued, nothing recorded
    quick = train.TrainConfig(epochs=1, train_subset=1000)
    assert idle_manager.estimated_seconds(giant, quick) < 60  # a quick look at the same network is fine


def test_the_teacher_can_raise_or_lower_the_limit_while_the_server_runs(idle_manager, monkeypatch):
    giant, cfg = arch.ArchSpec.from_dict(GIANT), train.TrainConfig(epochs=2)
    seconds = idle_manager.estimated_seconds(giant, cfg)
    idle_manager.max_job_minutes = seconds / 60 / 2
    with pytest.raises(JobError, match="2x smaller"):
        idle_manager.submit(giant, cfg, owner="s1")
    monkeypatch.setenv("MNISTLAB_MAX_JOB_MINUTES", "not a number")
    assert cost.default_max_job_minutes() == cost.MAX_JOB_MINUTES  # a bad setting falls back, never crashes
    monkeypatch.setenv("MNISTLAB_MAX_JOB_MINUTES", "25")
    assert cost.default_max_job_minutes() == 25.0


def test_a_network_near_the_parameter_cap_is_over_the_default_limit_for_a_few_full_epochs_on_a_cpu():
    near_cap = arch.ArchSpec.from_dict({"blocks": [{"widths": [140, 140]}, {"widths": [10]}], "head": "conv1",
                                        "dropout": 0})  # 191k parameters, 142 M multiply-adds per image
    assert cost.estimated_seconds(near_cap, 4, 60_000, "cpu") > cost.MAX_JOB_MINUTES * 60
    assert cost.estimated_seconds(arch.preset("best"), 4, 60_000, "cpu") < cost.MAX_JOB_MINUTES * 60 / 4


def test_the_estimate_grows_with_work_and_reads_like_speech():
    tiny, best = arch.preset("tiny"), arch.preset("best")
    assert cost.estimated_seconds(best, 4, 60_000) > cost.estimated_seconds(tiny, 4, 60_000)
    assert cost.estimated_seconds(best, 8, 60_000) > 1.9 * cost.estimated_seconds(best, 4, 60_000)
    assert [cost.say_duration(s) for s in (0.2, 40, 600, 8100)] == ["1 s", "40 s", "10 min", "2 h 15 min"]
