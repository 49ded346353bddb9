"""The Lessons: the path from the seed network to our ``best`` (and below the budget), one change per step.

Each step is an ``ArchSpec`` and a ``TrainConfig``, so a student can open it in the editor and the Train form and
train exactly what was measured. Every step trains for the same ``EPOCHS`` so that the steps compare at equal cost;
the figures shipped for them (``lessons.json`` beside this file) come from ``benchmarks/lessons.py`` over ``SEEDS``,
which writes them with ``summarise``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from . import arch
from .arch import ArchSpec
from .rules import TARGET_ACCURACY as TARGET
from .train import TrainConfig

EPOCHS = 4  # every step, so that the steps compare at the same cost
SEEDS = (1, 2, 3)
RESULTS_FILE = Path(__file__).with_name("lessons.json")


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    change: str  # what this step changes from the one before, in a few words
    target: str  # what it tries, and why
    spec: ArchSpec
    config: TrainConfig
    analysis: str  # why the result moved
    question: str
    answer: str


def _named(preset: str, name: str, **changes: Any) -> ArchSpec:
    return replace(arch.preset(preset), name=name, **changes)


# The seed's own recipe: SGD(lr=0.01, momentum=0.9), no schedule, no weight decay, batch 64, no augmentation.
_SEED_RECIPE = TrainConfig(epochs=EPOCHS, batch_size=64, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0,
                           schedule="constant", augment=0.0)
_ONECYCLE = replace(_SEED_RECIPE, schedule="onecycle", lr=0.05, weight_decay=5e-4)
_AUGMENTED = replace(_ONECYCLE, augment=0.5)  # = the `best` preset's recipe, at EPOCHS
_LEAN_RECIPE = replace(_AUGMENTED, batch_size=128, lr=0.1)  # the `lean` preset's recipe, at EPOCHS

STEPS: tuple[Step, ...] = (
    Step(
        number=1, title="The seed, as given",
        change="nothing (the baseline)",
        spec=_named("seed", "lesson 1: the seed"),
        config=_SEED_RECIPE,
        target=(
            "Train the seed network exactly as its notebook did (SGD at a constant 0.01, batch 64, no "
            "augmentation), but for only 4 epochs. This is the number every later step has to beat at the same "
            "cost."
        ),
        analysis=(
            f"Four epochs of the seed's recipe end about three tenths of a point short of {TARGET} %; its own log "
            "needed ten epochs to get there. A constant learning rate of 0.01 takes small, equal steps to the "
            "very end: the network is still learning when time runs out, and the last epoch is no better placed "
            "than any other."
        ),
        question=(
            "The seed's own log first reached 99.41 % at epoch 10 and then fell back to 99.34 %. What in its "
            "recipe makes it slow and jittery?"
        ),
        answer=(
            "A small learning rate that never changes: early on its steps are too small to travel far, and late "
            "they are still large enough to keep the weights bouncing around a minimum, so the test accuracy moves "
            "up and down from epoch to epoch. The only thing it can do with more time is take more of the same "
            "steps."
        ),
    ),
    Step(
        number=2, title="A one-cycle learning rate",
        change="the schedule: one-cycle to a peak of 0.05, weight decay",
        spec=_named("seed", "lesson 2: one-cycle"),
        config=_ONECYCLE,
        target=(
            "Same network. The learning rate rises to 0.05 and falls back towards zero over the 4 epochs, and a "
            "little weight decay keeps the weights small."
        ),
        analysis=(
            "Same network, same four epochs, about three tenths of a point more: the recipe alone. The learning "
            "rate warms up to five times the seed's and covers more ground early, then falls almost to zero, so "
            "the last epoch settles into a minimum instead of bouncing around it; weight decay keeps the weights "
            "small, which generalises better."
        ),
        question=(
            "Why should a learning rate that falls almost to zero help the accuracy of the *last* epoch in "
            "particular?"
        ),
        answer=(
            "In the last epoch the steps are tiny, so the weights settle into the minimum instead of bouncing "
            "around it: the final epoch is then about as good as the best one. That matters here because the "
            "challenge counts the last epoch, not the best."
        ),
    ),
    Step(
        number=3, title="Augmentation instead of dropout",
        change="random rotation, scale and shift of each image; no dropout",
        spec=_named("seed", "lesson 3: augmentation", dropout=0.0),
        config=_AUGMENTED,
        target=(
            "Same network without its dropout, trained on randomly rotated, scaled and shifted digits: the "
            "regularisation now comes from the data rather than from switching channels off."
        ),
        analysis=(
            "Two of the three seeds reach 99.5 %, the best yet, but the third ends at 99.30 %: the mean rises by "
            "less than the seeds' spread, so the gain is a hint, not a result. Random rotations, scalings and "
            "shifts show the network new variants of every digit each epoch, the variations the test digits have "
            "too, and they replace dropout as the regulariser; a harder training task also makes the last epoch "
            "depend more on the seed."
        ),
        question=(
            "Augmentation makes each training image harder. Why can the test accuracy still rise?"
        ),
        answer=(
            "Test digits vary in slant, size and position just as training digits do. Seeing rotated, scaled and "
            "shifted variants every epoch teaches the network that these changes do not change the digit, so it "
            "memorises less of the particular training images. A network this small is short of capacity, not of "
            "data, so dropout's extra noise mostly slows it down."
        ),
    ),
    Step(
        number=4, title="Batch-norm before ReLU, everywhere",
        change="BN before ReLU, also on the last 3×3 conv; no conv bias",
        spec=_named("seed", "lesson 4: BN before ReLU", dropout=0.0, order="bn_relu", bias=False, last_conv_bn=True),
        config=_AUGMENTED,
        target=(
            "Normalise what each ReLU sees (BN before it, not after), add BN to the last 3×3 conv, which the seed "
            "left without, and drop the conv biases that BN's own shift makes redundant."
        ),
        analysis=(
            "The mean hardly moves, but the seeds now agree within a tenth of a point where step 3's spread over "
            "a quarter: with batch-norm before each ReLU, every layer's input keeps the same scale whatever the "
            "layers before it do, so training at the one-cycle peak is steadier (three seeds make that a hint, "
            "not a proof). The conv biases it drops were doing nothing: batch-norm subtracts them again."
        ),
        question=(
            "Why is a conv's bias useless right before batch-norm?"
        ),
        answer=(
            "Batch-norm subtracts each channel's mean over the batch, which removes any constant the conv added, "
            "and then adds its own learned shift. The bias is a parameter that cannot change the output."
        ),
    ),
    Step(
        number=5, title="Spend the parameters where they pay",
        change="the 28×28 conv halved (32 → 16), the last conv widened to 40",
        spec=_named("best", "lesson 5: best"),
        config=_AUGMENTED,
        target=(
            "Same recipe. Move capacity from the costly full-resolution conv to the last 3×3 conv, which sees the "
            "whole digit: this is our `best` preset."
        ),
        analysis=(
            "The same accuracy, within the seeds' spread, from fewer parameters and a third fewer multiply-adds "
            "(3.3 M instead of 5.1 M per image), so each epoch costs less. The second 28×28 conv was paying for "
            "capacity that short strokes do not need; widening the last 3×3 conv, which sees the whole digit on "
            "a 5×5 map, costs few multiply-adds."
        ),
        question=(
            "Step 5 has fewer parameters and a third fewer multiply-adds than step 4. Where was the compute saved, "
            "and why is it safe to cut there?"
        ),
        answer=(
            "In block 1's second conv, which runs at 28×28: each of its weights is used 784 times per image, so 32 "
            "→ 16 channels halves the costliest layer. Early layers only see short strokes, which 16 channels "
            "describe well. The last 3×3 conv sees the whole digit, on a 5×5 map: widening it (32 → 40) adds "
            "distinct whole-digit features for few multiply-adds."
        ),
    ),
    Step(
        number=6, title="Less capacity: GAP, then a 1×1 conv",
        change="no padding, narrow convs, GAP before a 1×1 head",
        spec=_named("lean", "lesson 6: lean"),
        config=_LEAN_RECIPE,
        target=(
            "Cut the network to under 8,000 parameters: no padding (the maps shrink by themselves) and global "
            "average pooling before a 1×1 conv instead of the 3×3 head. This is our `lean` preset, with its own "
            "recipe."
        ),
        analysis=(
            "With 40 % of the parameters and a quarter of step 5's multiply-adds, four epochs leave it a little "
            f"below {TARGET} % on average: a smaller network needs more passes to fit as well. Its head, global "
            "average pooling then a 1×1 conv, costs 210 parameters where step 5's 3×3 head cost 3,600, so nearly "
            "all of the budget goes to convolutions that look at the digit."
        ),
        question=(
            f"`lean` has 40 % of `best`'s parameters. What would you change for it to reach {TARGET} %, and what does "
            "that cost?"
        ),
        answer=(
            "Train it longer: with its own 8-epoch recipe it reached 99.35–99.54 % (seeds 1–3). A smaller network "
            "needs more passes to fit as well. Its epochs are cheap, though: about a quarter of `best`'s "
            "multiply-adds per image."
        ),
    ),
)


def step(number: int) -> Step:
    """The step with this 1-based number (the caller has checked it is in range)."""
    return STEPS[number - 1]


def recipe_for(spec: ArchSpec) -> TrainConfig | None:
    """The recipe of the lesson step whose network this is (name included), else None: an edited network is the
    student's own and gets the usual recipe."""
    return next((s.config for s in STEPS if s.spec == spec), None)


# ---------------------------------------------------------------------------------------------------- links

# A shared lesson link: ?lesson=N opens step N on the Lessons page; with &controls=..., on any page, it also opens the
# step's network and recipe: "open" leaves them free to change, "fixed" shows the controls disabled, "hidden" hides
# them (the student sees the network and trains it).
CONTROLS = {"open": "free to change", "fixed": "shown, but fixed", "hidden": "hidden"}
MAX_LINK_VALUE = 16  # characters: the longest legal value is 6


def parse_link(lesson: str | None, controls: str | None) -> tuple[int | None, str | None, str | None]:
    """(step number, controls, None) from a link's two values, or (None, None, what is wrong) for anything else; a
    link without them gives (None, None, None). The values come from whoever wrote the address: bounded first."""
    if lesson is None and controls is None:
        return None, None, None
    if lesson is None:
        return None, None, f"A lesson link needs lesson=1 to {len(STEPS)} besides controls=."
    if len(lesson) > MAX_LINK_VALUE or not lesson.isascii() or not lesson.isdigit() \
            or not 1 <= int(lesson) <= len(STEPS):
        return None, None, f"This lesson link is not valid: lesson must be a step from 1 to {len(STEPS)}."
    if controls is not None and controls not in CONTROLS:
        return None, None, f"This lesson link is not valid: controls must be one of {', '.join(CONTROLS)}."
    return int(lesson), controls, None


# ---------------------------------------------------------------------------------------------------- results


def summarise(records: Iterable[dict]) -> dict[str, Any]:
    """The shipped figures from the benchmark's per-run lines: per step, the final-epoch test accuracy of each seed,
    their mean and range, the parameters, epochs and mean training seconds."""
    runs: dict[int, list[dict]] = {}
    device = None
    for r in records:
        if "step" in r and "final_test_accuracy" in r:
            runs.setdefault(int(r["step"]), []).append(r)
            device = r.get("device", device)
    steps = {}
    for number, rs in sorted(runs.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        accs = [r["final_test_accuracy"] for r in rs]
        steps[str(number)] = {
            "seeds": [r["seed"] for r in rs], "accuracies": accs, "mean": round(statistics.mean(accs), 2),
            "min": min(accs), "max": max(accs), "params": rs[0]["params"], "epochs": rs[0]["epochs"],
            "train_seconds": round(statistics.mean(r["train_seconds"] for r in rs), 1)}
    return {"device": device, "epochs": EPOCHS, "steps": steps}


def results(path: Path = RESULTS_FILE) -> dict[int, dict[str, Any]]:
    """The shipped figures per step number; a step without figures (or a missing file) is simply absent."""
    try:
        data = json.loads(path.read_text())
        return {int(k): v for k, v in data["steps"].items() if isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def results_device(path: Path = RESULTS_FILE) -> str | None:
    try:
        return str(json.loads(path.read_text()).get("device") or "") or None
    except (OSError, ValueError, AttributeError):
        return None
