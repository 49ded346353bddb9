"""Final-epoch test accuracy of each preset with its own recipe (epoch budget), over several seeds.

Every run trains the full schedule and reports the accuracy after its LAST epoch on the official 10k test set (no
best-epoch pick). A preset meets the target (rules.TARGET_ACCURACY) when every seed ends at or above it.

    python benchmarks/time_to_target.py                          # all presets, seeds 1 2 3
    python benchmarks/time_to_target.py --presets best --seeds 1 2 3 --precision fp32
    python benchmarks/time_to_target.py --presets best --epochs 3
"""

import argparse
import statistics

from _common import emit, machine

from mnistlab import arch, data, distill, rules, train


def _mentor(cfg: train.TrainConfig) -> dict:
    """A taught preset's figures leave out its mentor's training; these say how much that was."""
    if not cfg.distill_from:
        return {}
    t = distill.load(cfg.distill_from)
    return {"distill_from": cfg.distill_from, "mentor_epochs": len(t.history),
            "mentor_train_seconds": round(t.meta.get("train_seconds", 0.0), 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["best", "lean", "tiny", "seed"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--epochs", type=int, help="override the preset's epoch budget")
    p.add_argument("--precision", choices=train.PRECISIONS, default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--target", type=float, default=rules.TARGET_ACCURACY)
    args = p.parse_args()
    mnist = data.load(data.ensure(), fetch=False)
    emit({"machine": machine()})
    for name in args.presets:
        spec = arch.preset(name)
        runs = []
        for seed in args.seeds:
            overrides = {"seed": seed, "precision": args.precision, "device": args.device}
            if args.epochs:
                overrides["epochs"] = args.epochs
            cfg = train.TrainConfig(**{**train.recipe(name).to_dict(), **overrides})
            res = train.train(spec, cfg, mnist)
            rec = {"preset": name, "params": arch.count_params(spec), "seed": seed, "epochs": cfg.epochs,
                   "precision": res.precision, "device": res.device,
                   "final_test_accuracy": res.final_test_accuracy, "train_seconds": round(res.train_seconds, 1),
                   "per_epoch": [round(h.test_accuracy, 2) for h in res.history], **_mentor(cfg)}
            emit(rec)
            runs.append(rec)
        accs = [r["final_test_accuracy"] for r in runs]
        emit({"summary": name, "params": arch.count_params(spec), "epochs": runs[0]["epochs"],
              "precision": runs[0]["precision"], "final_accuracies": accs, "min": min(accs),
              "mean": round(statistics.mean(accs), 3), "max_train_seconds": max(r["train_seconds"] for r in runs),
              "all_seeds_reach_target": all(a >= args.target for a in accs)})


if __name__ == "__main__":
    main()
