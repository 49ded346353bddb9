"""The challenge, stated once: its limits, and the judge that applies them to a network and how it was trained.

    reach at least 99.4 % on the official 10,000 test images (the final epoch counts),
    with fewer than 20,000 parameters, in fewer than 20 epochs, with no fully connected layer.

We add one check of our own: the receptive field at the head (counted through the global average pool) covers the
whole 28-pixel digit. A run that learnt from a mentor network (``distill.py``) carries that network's training too:
its epochs count towards the limit, and it must itself be within the parameter budget.

``judge`` turns a spec, a training config and, once there is one, a final accuracy into a ``Verdict``: a list of
``Rule(name, passed, detail)``. The CLI, the run store, the pages and the benchmarks all read it; nothing else
restates a limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from . import distill
from .arch import ArchSpec, Summary, build, summary

if TYPE_CHECKING:  # only for the annotations: the rules never need the training code
    from .train import TrainConfig

PARAM_LIMIT = 20_000  # parameters: fewer than this
EPOCH_LIMIT = 20  # epochs: fewer than this, a mentor's included
TARGET_ACCURACY = 99.4  # percent, final epoch, official 10k test set: at least this
MIN_RECEPTIVE_FIELD = 28  # pixels at the head: at least this (our own check)
TRAINING_IMAGES = 60_000  # the whole official training set

ACCURACY = "accuracy"  # the one rule that needs a finished run


@dataclass(frozen=True)
class Rule:
    name: str  # accuracy | params | no_fc | receptive_field | epochs | mentor_params | full_data
    passed: bool
    detail: str  # the rule and this network's figure, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    rules: tuple[Rule, ...]

    @property
    def eligible(self) -> bool:
        """Every rule but the accuracy is met: the run can count for the challenge."""
        return all(r.passed for r in self.rules if r.name != ACCURACY)

    @property
    def met(self) -> bool:
        """The challenge is met: eligible, and a final accuracy on target."""
        return any(r.name == ACCURACY for r in self.rules) and all(r.passed for r in self.rules)

    @property
    def failed(self) -> list[Rule]:
        return [r for r in self.rules if not r.passed]


def architecture(s: Summary, model: nn.Module | None = None) -> list[Rule]:
    """The rules a network meets by its shape alone. ``model``: the built module to look for ``nn.Linear`` in
    (built from the spec when not given)."""
    model = model if model is not None else build(s.spec)
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return [
        Rule("params", s.total_params < PARAM_LIMIT,
             f"{s.total_params:,} parameters (limit: fewer than {PARAM_LIMIT:,})"),
        Rule("no_fc", not linear, "no nn.Linear in the built module" if not linear
             else f"fully connected layer(s) found: {', '.join(linear)}"),
        Rule("receptive_field", s.receptive_field >= MIN_RECEPTIVE_FIELD,
             f"receptive field at the head is {s.receptive_field} px (needs at least {MIN_RECEPTIVE_FIELD} to see "
             f"the whole digit; {s.receptive_field_before_pool} px before the global average pool)"),
    ]


def training(cfg: "TrainingRecord | TrainConfig") -> list[Rule]:
    """The rules a run meets by how it is trained: the epoch limit (a mentor's epochs included), the mentors'
    own size, and the whole training set."""
    full = cfg.train_subset is None and cfg.validation == 0
    rules = _epoch_rules(cfg)
    rules.append(Rule("full_data", full, f"trained on all {TRAINING_IMAGES:,} training images" if full
                      else f"not trained on all {TRAINING_IMAGES:,} training images (a quick run or a held-out split)"))
    return rules


def _epoch_rules(cfg: "TrainingRecord | TrainConfig") -> list[Rule]:
    if not cfg.distill_from:
        return [Rule("epochs", cfg.epochs < EPOCH_LIMIT, f"fewer than {EPOCH_LIMIT} epochs ({cfg.epochs})")]
    try:
        chain = mentor_chain(cfg)
    except distill.MentorError as e:
        return [Rule("epochs", False, f"fewer than {EPOCH_LIMIT} epochs: {e}")]
    epochs = cfg.epochs + sum(n for _, n, _ in chain)
    taught = " + ".join(f"{n} for {Path(name).name}" for name, n, _ in chain)
    rules = [Rule("epochs", epochs < EPOCH_LIMIT, f"fewer than {EPOCH_LIMIT} epochs, counting those of the network "
                                                  f"it learnt from ({cfg.epochs} + {taught} = {epochs})")]
    rules += [Rule("mentor_params", p < PARAM_LIMIT, f"{Path(name).name}, which it learnt from, has fewer than "
                                                     f"{PARAM_LIMIT:,} parameters too ({p:,})") for name, _, p in chain]
    return rules


def mentor_chain(cfg: "TrainingRecord | TrainConfig") -> list[tuple[str, int, int]]:
    """(name, epochs, parameters) of the mentor and of what it learnt from: the record the config carries, or, for a
    config from before such records, the files as they are now. A MentorError says why it cannot be known."""
    if cfg.distill_chain is None:
        return distill.lineage(cfg.distill_from)
    if not distill.chain_ok(cfg.distill_chain):  # only a config that skipped validation, e.g. a damaged row
        raise distill.MentorError("its record of the networks it learnt from is damaged")
    return [tuple(link) for link in cfg.distill_chain]


def accuracy(final_test_accuracy: float) -> Rule:
    return Rule(ACCURACY, final_test_accuracy >= TARGET_ACCURACY,
                f"final test accuracy {final_test_accuracy:.2f} % (needs at least {TARGET_ACCURACY} %)")


def judge(spec: ArchSpec, cfg: "TrainingRecord | TrainConfig", final_test_accuracy: float | None = None,
          model: nn.Module | None = None) -> Verdict:
    """Every rule for a run of ``spec`` trained with ``cfg``: the accuracy first, once there is a final one."""
    rules = architecture(summary(spec), model) + training(cfg)
    if final_test_accuracy is not None:
        rules.insert(0, accuracy(final_test_accuracy))
    return Verdict(tuple(rules))


class Ranked(Protocol):
    status: str
    submitted_at: float

    @property
    def challenge_eligible(self) -> bool: ...

    @property
    def final_test_accuracy(self) -> float | None: ...


def rank_key(run: Ranked) -> tuple:
    """The one leaderboard order: finished runs first, those that count for the challenge before those that do not,
    then the higher final accuracy, then the newer run."""
    finished = run.status == "finished"
    return (not finished, not (finished and run.challenge_eligible), -(run.final_test_accuracy or 0.0),
            -run.submitted_at)


@dataclass(frozen=True)
class TrainingRecord:
    """What the rules read of a training config, from a stored run's config dict (a registry row, a checkpoint)."""

    epochs: int
    train_subset: int | None = None
    validation: int = 0
    distill_from: str | None = None
    distill_chain: tuple[tuple[Any, ...], ...] | None = None

    @classmethod
    def from_config(cls, config: Any) -> "TrainingRecord":
        """Raises ValueError for a config whose fields the rules read are missing, of the wrong type or out of
        range. A stored run that learnt from a mentor must carry the record of its chain: judging a stored run
        never reads a file (a forged row could name any file on the server)."""
        if not isinstance(config, dict):
            raise ValueError("a training config must be an object")

        def whole(v: Any, lo: int, hi: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

        epochs, subset, validation = config.get("epochs"), config.get("train_subset"), config.get("validation", 0)
        mentor, chain = config.get("distill_from"), config.get("distill_chain")
        fields_ok = (whole(epochs, 1, 1000) and (subset is None or whole(subset, 1, TRAINING_IMAGES))
                     and whole(validation, 0, TRAINING_IMAGES))
        mentor_ok = mentor is None or (isinstance(mentor, str) and distill.chain_ok(chain))
        if not (fields_ok and mentor_ok):
            raise ValueError("the training config's epochs, data or mentor fields are damaged")
        chain = None if mentor is None else tuple(tuple(link) for link in chain)
        return cls(epochs, subset, validation, mentor, chain)
