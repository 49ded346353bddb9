"""How much of the spread between seeds is chance: the same preset, recipe and seed trained twice, once as shipped
and once with a loss changed in its last bits (label smoothing of 1e-6 instead of 0), so that only rounding differs.

    python benchmarks/rounding_noise.py --presets lean --seeds 1 2 3
    python benchmarks/rounding_noise.py --presets tiny --seeds 1 2

Prints one JSON line per run (final-epoch test accuracy, 60k training images, as time_to_target.py) and per preset
the differences between the two runs of each seed. The test set is only reported here; nothing is chosen by it.
"""

import argparse
import statistics

from _common import emit, machine

from mnistlab import arch, data, train

NUDGE = 1e-6  # label smoothing: changes the loss by about a millionth


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["lean"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = p.parse_args()
    mnist = data.load(data.ensure(), fetch=False)
    emit({"machine": machine()})
    for name in args.presets:
        gaps = []
        for seed in args.seeds:
            finals = []
            for smoothing in (train.recipe(name).label_smoothing, NUDGE):
                cfg = train.TrainConfig(**{**train.recipe(name).to_dict(), "seed": seed,
                                           "label_smoothing": smoothing})
                res = train.train(arch.preset(name), cfg, mnist)
                finals.append(res.final_test_accuracy)
                emit({"preset": name, "seed": seed, "label_smoothing": smoothing, "epochs": cfg.epochs,
                      "final_test_accuracy": res.final_test_accuracy, "train_seconds": round(res.train_seconds, 1),
                      "per_epoch": [round(h.test_accuracy, 2) for h in res.history]})
            gaps.append(round(abs(finals[1] - finals[0]), 2))
        emit({"summary": name, "seeds": args.seeds, "abs_difference_per_seed": gaps,
              "mean_abs_difference": round(statistics.mean(gaps), 3)})


if __name__ == "__main__":
    main()
