"""How the lean, tiny and micro layouts and the recipes were chosen: candidates compared on a validation split,
never on the test set.

    python benchmarks/preset_search.py --budget tiny        # layouts under 4,000 parameters, the preset's recipe
    python benchmarks/preset_search.py --budget lean        # layouts under 8,000 parameters
    python benchmarks/preset_search.py --budget micro       # layouts under 2,000 parameters
    python benchmarks/preset_search.py --budget lean --search recipe --seeds 1 2 3   # recipes for the preset's layout
    python benchmarks/preset_search.py --budget best --search recipe --seeds 1 2 3 \
        --candidates "as shipped" "batch 128, lr 0.1" "batch 64, lr 0.1"            # best's recipe, checked

Each candidate trains on 50k training images, with 10k held out of the training set (a split chosen by the seed)
as validation. A layout search uses the preset's recipe (train.RECIPES; ``--epochs`` overrides its epochs); a recipe
search uses the preset's layout and changes the recipe within the preset's epoch budget. Prints one JSON line per
run: validation accuracy of the last three epochs, and the final test accuracy for the record only (choices are made
on validation).
A candidate replaces the shipped one only if its mean final validation accuracy over seeds 1-3 is at least 0.05
points higher and its worst seed is no lower.
"""

import argparse
import statistics

from _common import emit, machine

from mnistlab import arch, data, train


def _blocks(*blocks: tuple) -> list[dict]:
    """(widths, pool, transition[, padding]) per block; padding 0 unless given."""
    return [{"widths": list(w), "padding": pad[0] if pad else 0, "pool": pool, "transition": t}
            for w, pool, t, *pad in blocks]


CANDIDATES = {
    "tiny": {  # one pool (the first tiny) against deeper or twice-pooled layouts, all <= 4,000 parameters
        "one pool, [8,8] [12,16]": _blocks(([8, 8], True, None), ([12, 16], False, None)),
        "one pool, [8,8] [10,12,12]": _blocks(([8, 8], True, None), ([10, 12, 12], False, None)),
        "one pool + 1x1 to 6, [8,8] [10,12,12]": _blocks(([8, 8], True, 6), ([10, 12, 12], False, None)),
        "two pools, [6,8] [10,12] [13]": _blocks(([6, 8], True, None), ([10, 12], True, None), ([13], False, None)),
        "two pools, [6,8] [10,12] [13], first block padded": _blocks(
            ([6, 8], True, None, 1), ([10, 12], True, None), ([13], False, None)),
        "two pools, [5,8] [10,12] [14]": _blocks(([5, 8], True, None), ([10, 12], True, None), ([14], False, None)),
    },
    "micro": {  # < 2,000 parameters: tiny narrowed, or tiny's first block kept and squeezed by a 1x1 after the pool
        "two pools, [4,6] [7,8] [9]": _blocks(([4, 6], True, None), ([7, 8], True, None), ([9], False, None)),
        "two pools, [6,8] 1x1 to 4 [6,8] [9]": _blocks(([6, 8], True, 4), ([6, 8], True, None), ([9], False, None)),
        "two pools, [6,8] 1x1 to 4 [6,8] 1x1 to 6 [10]": _blocks(
            ([6, 8], True, 4), ([6, 8], True, 6), ([10], False, None)),
    },
    "best": {},  # best's layout came from the seed's and step_time.py; only its recipe is searched here
    "lean": {  # <= 8,000 parameters
        "one pool + 1x1 to 8, [8,16] [16,16,16]": _blocks(([8, 16], True, 8), ([16, 16, 16], False, None)),
        "two pools, [8,12] [14,16] [20]": _blocks(([8, 12], True, None), ([14, 16], True, None), ([20], False, None)),
        "two pools, [8,12] [16,16] [18]": _blocks(([8, 12], True, None), ([16, 16], True, None), ([18], False, None)),
        "two pools, [8,12] [14,16] [20], first block padded": _blocks(
            ([8, 12], True, None, 1), ([14, 16], True, None), ([20], False, None)),
        "two pools, [8,12] [14,16] [21]": _blocks(([8, 12], True, None), ([14, 16], True, None), ([21], False, None)),
        "two pools, [10,16] 1x1 to 8 [14,16] [20]": _blocks(
            ([10, 16], True, 8), ([14, 16], True, None), ([20], False, None)),
        "two pools, [8,10] [14,18] [20]": _blocks(([8, 10], True, None), ([14, 18], True, None), ([20], False, None)),
        "two pools, [8,12] [14,16] [20], second block padded": _blocks(
            ([8, 12], True, None), ([14, 16], True, None, 1), ([20], False, None)),
        "two pools, [8,14] [16,20], 3x3 head": {
            "blocks": _blocks(([8, 14], True, None), ([16, 20], True, None)), "head": "conv3"},
        "two pools, [8,12] [12,16] [24]": _blocks(([8, 12], True, None), ([12, 16], True, None), ([24], False, None)),
    },
}


# Changes to the preset's recipe (lean and tiny share it); the epochs stay within the budget (lean 8, tiny 15).
RECIPE_CHANGES = {
    "as shipped": {},  # lean's and tiny's: batch 128, LR 0.1 (labelled "shipped: batch 128, lr 0.1" in older results)
    "batch 128, lr 0.1": {"batch_size": 128, "lr": 0.1},
    "batch 64, lr 0.05": {"batch_size": 64, "lr": 0.05},
    "batch 64, lr 0.1": {"batch_size": 64, "lr": 0.1},
    "weight decay 1e-4": {"weight_decay": 1e-4},
    "augment 0.25": {"augment": 0.25},
    "augment 0.75": {"augment": 0.75},
    "lr 0.15": {"lr": 0.15},
    "lr 0.2": {"lr": 0.2},
    "lr 0.3": {"lr": 0.3},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "fp32 (no bf16 autocast)": {"precision": "fp32"},
    "last epoch unaugmented": {"clean_epochs": 1},
    "weight decay 1e-3": {"weight_decay": 1e-3},
    "adamw lr 0.01": {"optimizer": "adamw", "lr": 0.01},
    "adamw lr 0.02": {"optimizer": "adamw", "lr": 0.02},
    "adamw lr 0.005": {"optimizer": "adamw", "lr": 0.005},
    "adamw lr 0.04": {"optimizer": "adamw", "lr": 0.04},
    "ema 0.998": {"ema": 0.998},
    "ema 0.999": {"ema": 0.999},
    # Learning from best (mnistlab/distill.py). Here the mentor is best trained with its recipe on the same 50k
    # images, so it has never seen the validation split either.
    "distil from best, T 1.5": {"distill_from": "best", "distill_weight": 0.5, "distill_temperature": 1.5},
    "distil from best, T 4": {"distill_from": "best", "distill_weight": 0.5, "distill_temperature": 4.0},
}


def candidates(budget: str, search: str) -> dict[str, tuple[dict, dict]]:
    """label -> (changes to the preset's spec, recipe) for one search. A layout is its blocks, or a dict of spec
    fields where more than the blocks change."""
    recipe = train.RECIPES[budget]
    if search == "layout":
        return {label: (layout if isinstance(layout, dict) else {"blocks": layout}, recipe)
                for label, layout in CANDIDATES[budget].items()}
    return {label: ({}, {**recipe, **change}) for label, change in RECIPE_CHANGES.items()}


def _mentor_record(cfg: train.TrainConfig, mentors: dict) -> dict:
    if not cfg.distill_from:
        return {}
    t = mentors[cfg.distill_from]
    val = t.history[-1].validation_accuracy
    return {"distill_from": f"{cfg.distill_from}, trained on the same split", "distill_weight": cfg.distill_weight,
            "distill_temperature": cfg.distill_temperature,
            "mentor_final_validation": None if val is None else round(val, 2),
            "mentor_train_seconds": round(t.train_seconds, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", choices=sorted(CANDIDATES), required=True)
    p.add_argument("--search", choices=["layout", "recipe"], default="layout")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--candidates", nargs="+", metavar="LABEL", help="run only these candidates (default: all)")
    p.add_argument("--validation", type=int, default=10_000)
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (a shorter run to rank candidates)")
    args = p.parse_args()
    base = arch.preset(args.budget).to_dict()
    emit({"machine": machine()})
    means = {}
    for seed in args.seeds:
        mnist = data.load(validation=args.validation, seed=seed, fetch=False)
        mentors = {}  # preset name -> that preset trained on this seed's split, once per seed
        for label, (changes, recipe) in candidates(args.budget, args.search).items():
            if args.candidates and label not in args.candidates:
                continue
            spec = arch.ArchSpec.from_dict({**base, **changes, "name": args.budget})
            epochs = {"epochs": args.epochs} if args.epochs else {}
            cfg = train.TrainConfig(**{**recipe, **epochs, "seed": seed, "validation": args.validation})
            mentor = None
            if cfg.distill_from:
                if cfg.distill_from not in mentors:
                    tcfg = train.TrainConfig(**{**train.RECIPES[cfg.distill_from], "seed": seed,
                                                "validation": args.validation})
                    mentors[cfg.distill_from] = train.train(arch.preset(cfg.distill_from), tcfg, mnist)
                mentor = mentors[cfg.distill_from].model
            r = train.train(spec, cfg, mnist, mentor=mentor)
            val = [round(e.validation_accuracy, 2) for e in r.history]
            means.setdefault(label, []).append(val[-1])
            emit({"budget": args.budget, "search": args.search, "candidate": label,
                  "params": arch.count_params(spec), "seed": seed, "epochs": cfg.epochs,
                  "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                  "augment": cfg.augment, "clean_epochs": cfg.clean_epochs, "ema": cfg.ema,
                  "optimizer": cfg.optimizer, **_mentor_record(cfg, mentors),
                  "label_smoothing": cfg.label_smoothing, "precision": r.precision,
                  "validation_last3": val[-3:],
                  "test_final_for_the_record": round(r.history[-1].test_accuracy, 2),
                  "train_seconds": round(r.train_seconds, 1)})
    emit({"budget": args.budget, "search": args.search,
          "mean_final_validation": {k: round(statistics.mean(v), 3) for k, v in means.items()},
          "worst_final_validation": {k: min(v) for k, v in means.items()}})


if __name__ == "__main__":
    main()
