"""The cost model the job manager's compute limit uses (mnistlab/cost.py), fitted on this machine's device.

Trains each network for one epoch on a subset, with its preset's recipe, and times the training alone; then fits
seconds per image = fixed part + forward multiply-adds / speed, by least squares over the networks, and prints the
two coefficients to put in ``cost.SPEEDS`` for this device type, with each network's measured and predicted cost.

    python benchmarks/job_cost.py                    # the default device
    python benchmarks/job_cost.py --images 6000 --device cuda
"""

import argparse

from _common import emit, machine

from mnistlab import arch, cost, data, devices, train

# The presets, and two wider networks so that the fit sees multiply-adds well beyond them.
WIDE = {
    "wide-64": {"blocks": [{"widths": [32, 64], "transition": 16}, {"widths": [32, 64], "transition": 32},
                           {"widths": [64], "padding": 0, "pool": False}], "name": "wide-64"},
    "wide-96": {"blocks": [{"widths": [48, 96], "transition": 32}, {"widths": [48, 96], "transition": 32},
                            {"widths": [64], "padding": 0, "pool": False}], "name": "wide-96"},
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
    points = []
    for name, (spec, recipe) in _networks().items():
        cfg = train.TrainConfig(**{**recipe.to_dict(), "epochs": 1, "train_subset": args.images,
                                   "device": args.device})
        train.train(spec, train.TrainConfig(**{**cfg.to_dict(), "train_subset": 1000}), mnist)  # warm-up
        result = train.train(spec, cfg, mnist)
        macs = arch.summary(spec).total_macs
        per_image = result.train_seconds / args.images
        points.append((macs, per_image))
        emit({"network": name, "macs": macs, "batch_size": cfg.batch_size, "seconds_per_image": per_image})
    n = len(points)
    mx, my = sum(m for m, _ in points) / n, sum(s for _, s in points) / n
    slope = sum((m - mx) * (s - my) for m, s in points) / sum((m - mx) ** 2 for m, _ in points)
    fixed = my - slope * mx
    emit({"fit": {"device_type": dev.type, "seconds_per_image": fixed, "macs_per_second": 1 / slope},
          "in_use": vars(cost.SPEEDS.get(dev.type, cost.SPEEDS["cpu"]))})
    for (macs, measured), name in zip(points, _networks()):
        emit({"network": name, "measured_us": round(measured * 1e6, 1),
              "fitted_us": round((fixed + slope * macs) * 1e6, 1)})


if __name__ == "__main__":
    main()
