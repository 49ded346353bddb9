"""What a student reads about a job while it runs and when it ends."""

import time

from mnistlab import arch, train
from mnistlab.run import Run
from mnistlab.ui import outcome


def a_run(**live):
    spec = arch.preset("tiny")
    return Run(id="r1", owner="s", student_name="Ann", name="tiny", spec=spec.to_dict(),
               config=train.TrainConfig(epochs=4).to_dict(), params=arch.count_params(spec), epochs=4,
               status="running", **live)


def test_the_stages_of_a_running_job_are_said_in_words():
    assert "Starting" in outcome.stage_text(a_run(), "CPU")  # not "batch 0/0"
    training = outcome.stage_text(a_run(batch=10, batches=78, stage="training", device="CPU"), "CPU")
    assert "Epoch 1/4, batch 10/78" in training
    evaluating = outcome.stage_text(a_run(batch=78, batches=78, stage="evaluating", device="CPU"), "CPU")
    assert "evaluating on the 10,000 test images" in evaluating and "batch 78/78" not in evaluating


def test_the_time_left_follows_the_pace_so_far():
    half = a_run(batch=39, batches=78, stage="training", device="CPU", started_at=time.time() - 60,
                 history=[{"epoch": 1}])  # 1.5 of 4 epochs in a minute
    text = outcome.stage_text(half, "CPU")
    assert "min left" in text and "about 2 min left" in text


def test_the_pages_say_how_many_jobs_train_at_once():
    from mnistlab.ui.labels import at_a_time
    assert at_a_time(1) == "one at a time"
    assert at_a_time(4) == "up to 4 at a time"
