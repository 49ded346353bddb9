"""Training-step time of each preset per setting, scaled to one 60k-image epoch (synthetic batches, no data loading).

    python benchmarks/step_time.py                                   # presets x {fp32, bf16} x channels_last
    python benchmarks/step_time.py --presets seed --batch-sizes 64 128 256

This is the measurement behind the defaults in mnistlab.train (batch 128, channels_last, bf16 autocast on CPUs
with native bf16). Run it on an otherwise idle machine: with 2 cores, any other load doubles the times.
"""

import argparse
import time

from _common import emit, machine

import torch
import torch.nn.functional as F

from mnistlab import arch, devices


def step_seconds(spec, batch_size, channels_last, precision, device, steps=30, warmup=5) -> float:
    torch.manual_seed(0)
    model = arch.build(spec).to(device)
    x = torch.randn(batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with devices.autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=list(arch.PRESETS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[128])
    p.add_argument("--precisions", nargs="+", default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = devices.pick_device(args.device)
    precisions = args.precisions or (["fp32", "bf16"] if device.type != "mps" else ["fp32"])
    emit({"machine": machine()})
    for name in args.presets:
        spec = arch.preset(name)
        for bs in args.batch_sizes:
            for cl in (False, True):
                for prec in precisions:
                    if prec == "bf16" and device.type == "cpu" and not devices.cpu_has_native_bf16():
                        continue
                    s = step_seconds(spec, bs, cl, prec, device)
                    emit({"preset": name, "batch_size": bs, "channels_last": cl, "precision": prec,
                          "s_per_epoch": round(s * 60000 / bs, 2), "images_per_s": round(bs / s)})


if __name__ == "__main__":
    main()
