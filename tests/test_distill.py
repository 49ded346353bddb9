"""Learning from a teacher: the soft-target loss, a teacher actually steering the student, and the challenge's rules
counting the teacher's epochs and parameters."""

import pytest
import torch
from torch import nn

from mnistlab import arch, checkpoint, data, distill, train
from mnistlab.train import ConfigError, TrainConfig


def test_the_soft_loss_is_zero_when_the_student_agrees_and_grows_as_it_disagrees():
    teacher = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    assert distill.loss(teacher.clone(), teacher, 1.5).item() == pytest.approx(0.0, abs=1e-6)
    near = distill.loss(teacher + torch.tensor([[0.0, 0.5, 0.0]]), teacher, 1.5)
    far = distill.loss(teacher.flip(1), teacher, 1.5)
    assert 0 < near < far


class AlwaysThree(nn.Module):
    """A 'teacher' that is sure every digit is a 3."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.full((len(x), 10), -5.0, device=x.device)
        logits[:, 3] = 5.0
        return logits + 0 * self.dummy


def test_a_student_taught_only_by_its_teacher_learns_what_the_teacher_says(mnist):
    cfg = TrainConfig(epochs=1, train_subset=2000, batch_size=50, lr=0.1, seed=1, device="cpu", distill_from="best",
                      distill_weight=1.0, distill_temperature=1.0)
    taught = train.train(arch.preset("tiny"), cfg, mnist, teacher=AlwaysThree())
    with torch.no_grad():
        x = (mnist.test.images[:500].float().unsqueeze(1) / 255 - data.MEAN) / data.STD
        predicted = taught.model.eval()(x).argmax(1)
    assert (predicted == 3).float().mean() > 0.95  # the labels had no say: every digit became a 3
    labels_only = train.train(arch.preset("tiny"), TrainConfig(**{**cfg.to_dict(), "distill_from": None}), mnist)
    assert taught.final_test_accuracy < 15 and labels_only.final_test_accuracy > 40


@pytest.mark.slow
def test_training_with_the_shipped_best_as_teacher_learns_and_records_it(mnist, tmp_path):
    cfg = TrainConfig(epochs=1, train_subset=3000, batch_size=32, lr=0.1, seed=1, device="cpu", distill_from="best")
    result = train.train(arch.preset("tiny"), cfg, mnist)
    assert result.final_test_accuracy > 70  # chance is 10 %
    path = checkpoint.save(checkpoint.from_result(result), tmp_path / "t.pt")
    assert checkpoint.load(path).config["distill_from"] == "best"
    # the student can teach in turn, and the epoch rule follows the chain back to best
    chain = distill.lineage(str(path))
    assert [(n, e) for n, e, _ in chain] == [(str(path), 1), ("best", 4)]


def test_a_teacher_that_cannot_be_used_is_refused_before_training(mnist, tmp_path):
    started = []
    with pytest.raises(ConfigError, match="neither a shipped preset .* nor a readable checkpoint"):
        train.train(arch.preset("tiny"), TrainConfig(distill_from=str(tmp_path / "missing.pt")), mnist,
                    on_event=started.append)
    bad = tmp_path / "evil.pt"
    torch.save({"format": "mnistlab-checkpoint", "payload": object()}, bad)  # needs the full unpickler
    with pytest.raises(ConfigError, match="cannot be used"):
        train.train(arch.preset("tiny"), TrainConfig(distill_from=str(bad)), mnist, on_event=started.append)
    assert started == []
    with pytest.raises(ConfigError, match="distill_from must be"):
        TrainConfig.from_dict({"distill_from": 3})


def test_the_teachers_epochs_count_towards_the_limit_of_twenty():
    tiny = arch.preset("tiny")
    best_epochs = len(checkpoint.load(checkpoint.shipped()["best"]).history)
    fits = TrainConfig(epochs=19 - best_epochs, distill_from="best")
    over = TrainConfig(epochs=20 - best_epochs, distill_from="best")
    assert fits.challenge_eligible and not over.challenge_eligible
    rules = dict(train.challenge_rules(tiny, over))
    assert rules[f"fewer than 20 epochs, counting those of the network it learnt from ({20 - best_epochs} + "
                 f"{best_epochs} for best = 20)"] is False
    assert not TrainConfig(epochs=5, distill_from="nope").challenge_eligible


def test_a_teacher_over_the_parameter_budget_breaks_the_rules(tmp_path):
    big = arch.ArchSpec.from_dict({"blocks": [{"widths": [64, 64]}, {"widths": [64]}], "head": "conv1"})
    assert arch.count_params(big) > arch.CHALLENGE_PARAMS
    ckpt = checkpoint.Checkpoint(big, arch.build(big).state_dict(), config=TrainConfig(epochs=2).to_dict(),
                                 history=[{"epoch": 1}, {"epoch": 2}])
    path = checkpoint.save(ckpt, tmp_path / "big.pt")
    rules = train.challenge_rules(arch.preset("tiny"), TrainConfig(epochs=5, distill_from=str(path)))
    budget = [ok for text, ok in rules if text.startswith("big.pt, which it learnt from, has fewer than 20,000")]
    assert budget == [False]
    assert not TrainConfig(epochs=5, distill_from=str(path)).challenge_eligible
