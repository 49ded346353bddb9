"""The Lessons page's figures: each lesson step's network and recipe (``mnistlab/lessons.py``), over several seeds.

Every step trains for the same number of epochs (``lessons.EPOCHS``) on the full 60k training set and reports the
final-epoch accuracy on the official 10k test set. Runs go seed by seed (every step for seed 1, then seed 2, ...), so
a cut-short run still covers every step.

    nice -n 10 python benchmarks/lessons.py > benchmarks/results/lessons.jsonl      # all steps, seeds 1 2 3
    python benchmarks/lessons.py --steps 1 5 --seeds 1                              # a few
    python benchmarks/lessons.py --write benchmarks/results/lessons.jsonl           # -> mnistlab/lessons.json
    python benchmarks/lessons.py --check benchmarks/results/lessons.jsonl           # shipped figures up to date?
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from _common import emit, machine

import torch

from mnistlab import arch, data, lessons, train


def _progress(number: int, seed: int):
    """Each epoch's end on stderr, so that a long run shows where it is (stdout keeps only the results)."""
    def on_event(event) -> None:
        if isinstance(event, train.EpochEnd):
            print(f"step {number} seed {seed}: epoch {event.epoch}/{event.epochs} {event.test_accuracy:.2f} % "
                  f"({event.seconds:.0f} s)", file=sys.stderr, flush=True)
    return on_event


def run(steps: list[int], seeds: list[int], threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    mnist = data.load(data.ensure(), fetch=False)
    emit({"machine": machine(), "epochs": lessons.EPOCHS, "threads": torch.get_num_threads()})
    for seed in seeds:
        for number in steps:
            s = lessons.step(number)
            res = train.train(s.spec, replace(s.config, seed=seed), mnist, on_event=_progress(number, seed))
            emit({"step": number, "name": s.spec.name, "params": arch.count_params(s.spec), "seed": seed,
                  "epochs": s.config.epochs, "device": res.device, "precision": res.precision,
                  "final_test_accuracy": res.final_test_accuracy, "train_seconds": round(res.train_seconds, 1),
                  "per_epoch": [round(h.test_accuracy, 2) for h in res.history]})


def _records(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", nargs="+", type=int, default=[s.number for s in lessons.STEPS])
    p.add_argument("--seeds", nargs="+", type=int, default=list(lessons.SEEDS))
    p.add_argument("--threads", type=int, help="CPU threads for torch (fewer can go faster on a crowded machine)")
    p.add_argument("--write", metavar="JSONL", help="summarise these results into mnistlab/lessons.json")
    p.add_argument("--check", metavar="JSONL", help="exit 1 unless mnistlab/lessons.json summarises these results")
    args = p.parse_args()
    if args.write:
        lessons.RESULTS_FILE.write_text(json.dumps(lessons.summarise(_records(args.write)), indent=1) + "\n")
    elif args.check:
        shipped = json.loads(lessons.RESULTS_FILE.read_text())
        if shipped != lessons.summarise(_records(args.check)):
            sys.exit(f"{lessons.RESULTS_FILE} does not match {args.check}: run with --write")
    else:
        if not all(1 <= n <= len(lessons.STEPS) for n in args.steps):
            p.error(f"steps are 1 to {len(lessons.STEPS)}")
        run(args.steps, args.seeds, args.threads)


if __name__ == "__main__":
    main()
