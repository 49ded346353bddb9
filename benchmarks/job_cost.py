"""The cost model the job manager's compute limit uses (mnistlab/cost.py), fitted on this machine's device.

Trains each network for one epoch on a subset, with its preset's recipe, and times the training and the evaluation
of the 10k test images apart; then fits, for each, seconds per image = fixed part + forward multiply-adds / speed,
by least squares over the networks, and prints the coefficients to put in ``cost.SPEEDS`` for this device type,
with each network's measured and predicted cost. The networks run from the smallest preset to one near the 200k
parameter cap, where a student's giant would be.

    python benchmarks/job_cost.py                    # the default device
    python benchmarks/job_cost.py --images 6000 --device cuda
"""

import argparse

from _common import emit, machine

from mnistlab import arch, cost, data, devices, train

# The presets, and wider networks so that the fit sees multiply-adds far beyond them, up to a student's giant.
WIDE = {
    "wide-64": {"blocks": [{"widths": [32, 64], "transition": 16}, {"widths": [32, 64], "transition": 32},
                           {"widths": [64], "padding": 0, "pool": False}], "name": "wide-64"},
    "wide-96": {"blocks": [{"widths": [48, 96], "transition": 32}, {"widths": [48, 96], "transition": 32},
                            {"widths": [64], "padding": 0, "pool": False}], "name": "wide-96"},
    "giant-140": {"blocks": [{"widths": [140, 140]}, {"widths": [10]}], "head": "conv1", "dropout": 0,
                  "name": "giant-140"},  # 191k parameters, 142 M multiply-adds per image: near the cap
}


def _networks() -> dict[str, tuple[arch.ArchSpec, train.TrainConfig]]:
    nets = {name: (spec, train.recipe(name)) for name, spec in arch.PRESETS.items()}
    for name, d in WIDE.items():
        nets[name] = (arch.ArchSpec.from_dict(d), train.recipe("seed"))
    return nets


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=6000, help="training images per measured epoch")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    mnist = data.load(data.ensure(), fetch=False)
    dev = devices.pick_device(args.device)
    emit({"machine": machine()})
    train_points, eval_points = [], []
    for name, (spec, recipe) in _networks().items():
        cfg = train.TrainConfig(**{**recipe.to_dict(), "epochs": 1, "train_subset": args.images,
                                   "device": args.device})
        train.train(spec, train.TrainConfig(**{**cfg.to_dict(), "train_subset": 500}), mnist)  # warm-up
        result = train.train(spec, cfg, mnist)
        macs = arch.summary(spec).total_macs
        train_points.append((macs, result.train_seconds / args.images))
        eval_points.append((macs, result.history[0].eval_seconds / len(mnist.test)))
        emit({"network": name, "macs": macs, "batch_size": cfg.batch_size,
              "train_seconds_per_image": train_points[-1][1], "eval_seconds_per_image": eval_points[-1][1]})
    fits = {part: _fit(points) for part, points in (("train", train_points), ("eval", eval_points))}
    emit({"fit": {"device_type": dev.type, **{f"{part}_{k}": v for part, f in fits.items() for k, v in f.items()}},
          "in_use": vars(cost.SPEEDS.get(dev.type, cost.SPEEDS["cpu"]))})
    for (macs, measured), name in zip(train_points, _networks()):
        f = fits["train"]
        emit({"network": name, "train_measured_us": round(measured * 1e6, 1),
              "train_fitted_us": round((f["seconds_per_image"] + macs / f["macs_per_second"]) * 1e6, 1)})


def _fit(points: list[tuple[int, float]]) -> dict[str, float]:
    """Least squares of seconds per image on multiply-adds: the fixed part and the speed."""
    n = len(points)
    mx, my = sum(m for m, _ in points) / n, sum(s for _, s in points) / n
    slope = sum((m - mx) * (s - my) for m, s in points) / sum((m - mx) ** 2 for m, _ in points)
    return {"seconds_per_image": my - slope * mx, "macs_per_second": 1 / slope}


if __name__ == "__main__":
    main()
