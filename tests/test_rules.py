"""The challenge's rules: one judge for every page, the CLI and the registry, and one leaderboard order."""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnistlab import arch, rules
from mnistlab.train import TrainConfig, recipe

LIBRARY = Path(rules.__file__).parent


def test_the_challenges_numbers_are_stated_only_in_rules():
    pattern = re.compile(r"\b(20_000|20,000|20000|99\.4)\b|\b20 epochs?\b|\b20k\b")
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        if path.name == "rules.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(LIBRARY.parent)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_a_shipped_preset_with_its_recipe_is_eligible_and_meets_the_challenge_on_target():
    verdict = rules.judge(arch.preset("best"), recipe("best"))
    assert verdict.eligible and not verdict.met  # no accuracy yet: nothing to meet
    assert [r.name for r in verdict.rules] == ["params", "no_fc", "receptive_field", "epochs", "full_data"]
    on_target = rules.judge(arch.preset("best"), recipe("best"), rules.TARGET_ACCURACY)
    assert on_target.met and on_target.rules[0].name == "accuracy"
    short = rules.judge(arch.preset("best"), recipe("best"), 99.39)
    assert short.eligible and not short.met and [r.name for r in short.failed] == ["accuracy"]
    assert "99.39 %" in short.failed[0].detail


@pytest.mark.parametrize("changes,broken", [
    ({"epochs": rules.EPOCH_LIMIT}, "epochs"),
    ({"train_subset": 5000}, "full_data"),
    ({"validation": 1000}, "full_data"),
])
def test_training_that_breaks_a_rule_is_not_eligible(changes, broken):
    verdict = rules.judge(arch.preset("tiny"), TrainConfig(**{**TrainConfig().to_dict(), **changes}))
    assert not verdict.eligible and [r.name for r in verdict.failed] == [broken]


def test_a_network_over_the_budget_fails_the_parameter_rule_and_says_by_how_much():
    big = arch.ArchSpec.from_dict({"blocks": [{"widths": [32, 32]}, {"widths": [32, 32]}], "head": "conv1"})
    (params,) = [r for r in rules.architecture(arch.summary(big)) if r.name == "params"]
    assert not params.passed and f"{arch.count_params(big):,} parameters" in params.detail


def test_the_receptive_field_rule_counts_through_the_pool_and_shows_the_view_before_it():
    lean = arch.summary(arch.preset("lean"))
    (rf,) = [r for r in rules.architecture(lean) if r.name == "receptive_field"]
    assert rf.passed and lean.receptive_field >= rules.MIN_RECEPTIVE_FIELD
    assert lean.receptive_field_before_pool < lean.receptive_field
    assert f"{lean.receptive_field_before_pool} px before the global average pool" in rf.detail


def test_a_stored_config_is_read_for_the_rules_and_a_damaged_one_refused():
    record = rules.TrainingRecord.from_config(TrainConfig(epochs=3, train_subset=100).to_dict())
    assert record.epochs == 3 and record.train_subset == 100
    assert not rules.judge(arch.preset("tiny"), record).eligible
    for damaged in (None, [], {"epochs": "three"}, {"epochs": 3, "train_subset": "all"}, {"epochs": True}):
        with pytest.raises(ValueError):
            rules.TrainingRecord.from_config(damaged)


@dataclass
class FakeRun:
    id: str
    status: str
    challenge_eligible: bool
    final_test_accuracy: float | None
    submitted_at: float


def test_one_leaderboard_order_finished_and_eligible_first_then_accuracy_then_newest():
    runs = [
        FakeRun("running", "running", True, None, 9.0),
        FakeRun("quick-but-high", "finished", False, 99.8, 5.0),
        FakeRun("eligible-lower", "finished", True, 99.3, 4.0),
        FakeRun("eligible-best-old", "finished", True, 99.5, 1.0),
        FakeRun("eligible-best-new", "finished", True, 99.5, 2.0),
        FakeRun("failed", "failed", True, None, 8.0),
    ]
    order = [r.id for r in sorted(runs, key=rules.rank_key)]
    assert order[:4] == ["eligible-best-new", "eligible-best-old", "eligible-lower", "quick-but-high"]
    assert set(order[4:]) == {"running", "failed"}
