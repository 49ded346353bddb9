"""The robustness lab's numbers for each shipped network, on the first official test digits it gets right: how often
the nudge flips the answer, under what per-pixel budget and over how many pixels; how far a rotation goes before the
answer changes; and what one lab costs (the five sweeps of one rerun, one nudge) on this machine.

    python benchmarks/robustness.py >> benchmarks/results/robustness.jsonl

One JSON line per network.
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch
from _common import emit, machine

from mnistlab import analysis, checkpoint
from mnistlab import data as mdata
from mnistlab import robustness as rb


def measure(name: str, model, images: np.ndarray, labels: np.ndarray) -> dict:
    right = [i for i in range(len(images)) if int(analysis.predict(model, images[i]).argmax()) == labels[i]]
    sweep_s, nudge_s, nudges, kept = [], [], [], {15: 0, 30: 0, 45: 0}
    for i in right:
        t = time.perf_counter()
        sweeps = {kind: rb.sweep(model, images[i], kind, r.values()) for kind, r in rb.RANGES.items()}
        sweep_s.append(time.perf_counter() - t)
        rotate = sweeps["rotate"]
        for angle in kept:  # still right at both -angle and +angle
            at = [int(np.flatnonzero(rotate.values == a)[0]) for a in (-angle, angle)]
            kept[angle] += all(rotate.predictions[j] == labels[i] for j in at)
        t = time.perf_counter()
        nudges.append(rb.nudge(model, images[i]))
        nudge_s.append(time.perf_counter() - t)
    flipped = [n for n in nudges if n.flipped]
    return {
        "benchmark": "robustness", "network": name, "digits": len(right),
        "nudge_flipped": len(flipped) / len(right),
        "nudge_budget_median": statistics.median(n.budget for n in flipped) if flipped else None,
        "nudge_pixels_median": statistics.median(n.pixels for n in flipped) if flipped else None,
        "nudge_new_confidence_median": round(statistics.median(float(n.after_probs.max()) for n in flipped), 3)
        if flipped else None,
        **{f"right_at_rotation_pm{a}": kept[a] / len(right) for a in kept},
        "five_sweeps_ms_median": round(1000 * statistics.median(sweep_s), 1),
        "nudge_ms_median": round(1000 * statistics.median(nudge_s), 1),
        "nudge_ms_max": round(1000 * max(nudge_s), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=100, help="the first N official test digits (default 100)")
    parser.add_argument("--networks", nargs="+", default=sorted(checkpoint.shipped()))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a busy machine more threads wait on each other)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = mdata.load(fetch=False).test
    images = test.images[:args.digits].float().numpy() / 255
    labels = test.labels[:args.digits].numpy()
    for name in args.networks:
        model = checkpoint.load(checkpoint.shipped()[name]).model()
        record = measure(name, model, images, labels)
        emit({**record, "threads": args.threads, "load_average": round(os.getloadavg()[0], 1),  # times share the CPU
              "machine": machine()})


if __name__ == "__main__":
    main()
