"""Learning from a mentor: the soft-target loss, a mentor actually steering the student, and the challenge's rules
counting the mentor's epochs and parameters."""

import json
import os

import pytest
import torch
from torch import nn

from mnistlab import arch, checkpoint, data, distill, rules, train
from mnistlab.train import ConfigError, TrainConfig


def said(spec, cfg):
    """Each rule's words and whether it is met, for a run of ``spec`` with ``cfg``."""
    return [(r.detail, r.passed) for r in rules.judge(spec, cfg).rules]


def test_the_soft_loss_is_zero_when_the_student_agrees_and_grows_as_it_disagrees():
    mentor = torch.tensor([[4.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    assert distill.loss(mentor.clone(), mentor, 1.5).item() == pytest.approx(0.0, abs=1e-6)
    near = distill.loss(mentor + torch.tensor([[0.0, 0.5, 0.0]]), mentor, 1.5)
    far = distill.loss(mentor.flip(1), mentor, 1.5)
    assert 0 < near < far


def test_the_soft_loss_is_t_squared_times_kl_of_the_teacher_from_the_student():
    student, mentor, t = torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([[0.0, 3.0, 1.0]]), 2.0
    p, q = (mentor / t).softmax(1), (student / t).softmax(1)  # mentor's and student's softened probabilities
    by_hand = t * t * (p * (p.log() - q.log())).sum()  # KL(p || q), not KL(q || p)
    assert distill.loss(student, mentor, t).item() == pytest.approx(by_hand.item(), rel=1e-5)


class AlwaysThree(nn.Module):
    """A 'mentor' that is sure every digit is a 3."""

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
    taught = train.train(arch.preset("tiny"), cfg, mnist, mentor=AlwaysThree())
    with torch.no_grad():
        x = (mnist.test.images[:500].float().unsqueeze(1) / 255 - data.MEAN) / data.STD
        predicted = taught.model.eval()(x).argmax(1)
    assert (predicted == 3).float().mean() > 0.95  # the labels had no say: every digit became a 3
    assert taught.history[-1].train_loss > 1.0  # the reported loss is on the labels, not the mentor's targets
    labels_only = train.train(arch.preset("tiny"), TrainConfig(**{**cfg.to_dict(), "distill_from": None}), mnist)
    assert taught.final_test_accuracy < 15 and labels_only.final_test_accuracy > 40


@pytest.mark.slow
def test_training_with_the_shipped_best_as_teacher_learns_and_records_it(mnist, tmp_path):
    cfg = TrainConfig(epochs=1, train_subset=3000, batch_size=32, lr=0.1, seed=1, device="cpu", distill_from="best")
    result = train.train(arch.preset("tiny"), cfg, mnist)
    assert result.final_test_accuracy > 70  # chance is 10 %
    path = checkpoint.save(checkpoint.from_result(result), tmp_path / "t.pt")
    assert checkpoint.load(path).config["distill_from"] == "best"
    # the student can learn_from_best in turn, and the epoch rule follows the chain back to best
    chain = distill.lineage(str(path))
    assert [(n, e) for n, e, _ in chain] == [(str(path), 1), ("best", 4)]


class Watched(nn.Module):
    """A mentor that notes the mode it was called in."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 28)
        self.modes = set()

    def forward(self, x):
        self.modes.add(self.training)
        return self.conv(x).flatten(1)


def test_the_teacher_runs_in_eval_mode_and_is_never_changed(mnist):
    mentor = Watched().train()
    before = {k: v.clone() for k, v in mentor.state_dict().items()}
    cfg = TrainConfig(epochs=1, train_subset=500, batch_size=50, seed=1, device="cpu", distill_from="best")
    train.train(arch.preset("tiny"), cfg, mnist, mentor=mentor)
    assert mentor.modes == {False}
    assert all(torch.equal(before[k], v) for k, v in mentor.state_dict().items())
    assert all(p.grad is None for p in mentor.parameters())
    with pytest.raises(ConfigError, match="distill_from does not say which"):
        train.train(arch.preset("tiny"), TrainConfig(epochs=1, train_subset=500), mnist, mentor=Watched())


def test_the_rules_read_the_chain_recorded_at_training_not_the_files_later(mnist, tmp_path):
    mentor = tmp_path / "mentor.pt"
    mentor.write_bytes(checkpoint.shipped()["best"].read_bytes())
    cfg = TrainConfig(epochs=1, train_subset=500, batch_size=50, seed=1, device="cpu", distill_from=str(mentor))
    result = train.train(arch.preset("tiny"), cfg, mnist)
    params = arch.count_params(arch.preset("best"))
    assert result.config.distill_chain == ((str(mentor), 4, params),)
    saved = checkpoint.save(checkpoint.from_result(result), tmp_path / "student.pt")
    mentor.unlink()  # the mentor is gone; the student's record stands
    stored = TrainConfig.from_dict(json.loads(json.dumps(checkpoint.load(saved).config)))
    assert stored.distill_chain == result.config.distill_chain and not rules.judge(arch.preset("tiny"), stored).eligible
    # (500 images)
    assert ("fewer than 20 epochs, counting those of the network it learnt from (1 + 4 for mentor.pt = 5)", True) \
        in said(arch.preset("tiny"), stored)
    # a student of that student counts the whole chain from the record, though mentor.pt is gone
    assert distill.lineage(str(saved)) == [(str(saved), 1, arch.count_params(arch.preset("tiny"))),
                                           (str(mentor), 4, params)]
    with pytest.raises(ConfigError, match="distill_chain must list"):
        TrainConfig.from_dict({**stored.to_dict(), "distill_chain": [["x", -1, 3]]})
    unchecked = TrainConfig(**{**stored.to_dict(), "distill_chain": [["a", "x", 1]]})  # as a damaged registry row
    # a chain handed in is not taken on trust: setting up training records the files' own
    claimed = TrainConfig(distill_from="best", distill_chain=(("best", 0, 1),)).with_distill_chain()
    assert claimed.distill_chain == (("best", 4, params),)
    assert ("fewer than 20 epochs: its record of the networks it learnt from is damaged", False) \
        in said(arch.preset("tiny"), unchecked)


def test_a_teacher_with_a_damaged_record_or_not_a_file_is_refused_with_a_message(mnist, tmp_path):
    best = checkpoint.load(checkpoint.shipped()["best"])
    for bad in ({"a": 1}, 3, "a\0b"):
        path = checkpoint.save(checkpoint.Checkpoint(best.spec, best.state_dict, {**best.config, "distill_from": bad},
                                                     best.history), tmp_path / "odd.pt")
        with pytest.raises(ConfigError, match="not a name|cannot name"):
            train.train(arch.preset("tiny"), TrainConfig(distill_from=str(path)), mnist)
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # reading it would block for ever
    for name in (str(fifo), "/dev/zero"):
        with pytest.raises(ConfigError, match="is not a checkpoint file"):
            train.train(arch.preset("tiny"), TrainConfig(distill_from=name), mnist)


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
    assert rules.judge(arch.preset("tiny"), fits).eligible and not rules.judge(arch.preset("tiny"), over).eligible
    verdict = dict(said(tiny, over))
    assert verdict[f"fewer than 20 epochs, counting those of the network it learnt from ({20 - best_epochs} + "
                 f"{best_epochs} for best = 20)"] is False
    assert not rules.judge(arch.preset("tiny"), TrainConfig(epochs=5, distill_from="nope")).eligible


def test_a_teacher_over_the_parameter_budget_breaks_the_rules(tmp_path):
    big = arch.ArchSpec.from_dict({"blocks": [{"widths": [64, 64]}, {"widths": [64]}], "head": "conv1"})
    assert arch.count_params(big) > rules.PARAM_LIMIT
    ckpt = checkpoint.Checkpoint(big, arch.build(big).state_dict(), config=TrainConfig(epochs=2).to_dict(),
                                 history=[{"epoch": 1}, {"epoch": 2}])
    path = checkpoint.save(ckpt, tmp_path / "big.pt")
    verdict = said(arch.preset("tiny"), TrainConfig(epochs=5, distill_from=str(path)))
    budget = [ok for text, ok in verdict if text.startswith("big.pt, which it learnt from, has fewer than 20,000")]
    assert budget == [False]
    assert not rules.judge(arch.preset("tiny"), TrainConfig(epochs=5, distill_from=str(path))).eligible
