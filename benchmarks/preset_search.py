"""How the lean and tiny layouts were chosen: candidates compared on a validation split, never on the test set.

    python benchmarks/preset_search.py --budget tiny        # candidates under 4,000 parameters
    python benchmarks/preset_search.py --budget lean        # candidates under 8,000 parameters

Each candidate trains with the preset's recipe (train.RECIPES) on 50k training images, with 10k held out of the
training set (a split chosen by the seed) as validation; seeds 1 and 2. Prints one JSON line per run: validation
accuracy of the last three epochs, and the final test accuracy for the record only (choices are made on validation).
"""

import argparse
import statistics

from _common import emit, machine

from mnistlab import arch, data, train


def _blocks(*blocks: tuple) -> list[dict]:
    return [{"widths": list(w), "padding": 0, "pool": pool, "transition": t} for w, pool, t in blocks]


CANDIDATES = {
    "tiny": {  # one pool (the first tiny) against deeper or twice-pooled layouts, all <= 4,000 parameters
        "one pool, [8,8] [12,16]": _blocks(([8, 8], True, None), ([12, 16], False, None)),
        "one pool, [8,8] [10,12,12]": _blocks(([8, 8], True, None), ([10, 12, 12], False, None)),
        "one pool + 1x1 to 6, [8,8] [10,12,12]": _blocks(([8, 8], True, 6), ([10, 12, 12], False, None)),
        "two pools, [6,8] [10,12] [13]": _blocks(([6, 8], True, None), ([10, 12], True, None), ([13], False, None)),
    },
    "lean": {  # <= 8,000 parameters
        "one pool + 1x1 to 8, [8,16] [16,16,16]": _blocks(([8, 16], True, 8), ([16, 16, 16], False, None)),
        "two pools, [8,12] [14,16] [20]": _blocks(([8, 12], True, None), ([14, 16], True, None), ([20], False, None)),
        "two pools, [8,12] [16,16] [18]": _blocks(([8, 12], True, None), ([16, 16], True, None), ([18], False, None)),
    },
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", choices=sorted(CANDIDATES), required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--validation", type=int, default=10_000)
    args = p.parse_args()
    base = arch.preset(args.budget).to_dict()
    emit({"machine": machine()})
    means = {}
    for seed in args.seeds:
        mnist = data.load(validation=args.validation, seed=seed, fetch=False)
        for label, blocks in CANDIDATES[args.budget].items():
            spec = arch.ArchSpec.from_dict({**base, "blocks": blocks, "name": args.budget})
            cfg = train.TrainConfig(**{**train.RECIPES[args.budget], "seed": seed, "validation": args.validation})
            r = train.train(spec, cfg, mnist)
            val = [round(e.validation_accuracy, 2) for e in r.history]
            means.setdefault(label, []).append(val[-1])
            emit({"budget": args.budget, "candidate": label, "params": arch.count_params(spec), "seed": seed,
                  "epochs": cfg.epochs, "validation_last3": val[-3:],
                  "test_final_for_the_record": round(r.history[-1].test_accuracy, 2),
                  "train_seconds": round(r.train_seconds, 1)})
    emit({"budget": args.budget, "mean_final_validation": {k: round(statistics.mean(v), 3) for k, v in means.items()}})


if __name__ == "__main__":
    main()
