"""The seed's training recipe against ours, same network (the `seed` preset), same machine, one run.

Seed recipe, as in the seed notebook: torchvision MNIST + ToTensor + Normalize((0.1307,), (0.3081,)),
DataLoader(batch_size=64, shuffle=True, num_workers=1, pin_memory=True), torch.manual_seed(1), SGD(lr=0.01,
momentum=0.9), log_softmax + nll_loss, no augmentation, no scheduler, fp32.
Ours: mnistlab.train (data as one tensor on the device, batched augmentation, batch 128, channels_last, bf16 autocast
where the CPU has it, one-cycle LR).

    python benchmarks/seed_vs_ours.py                     # one epoch each: s/epoch, images/s, ratio
    python benchmarks/seed_vs_ours.py --seed-epochs 12    # also: the seed recipe's accuracy after 12 epochs

Prints one JSON line per measurement, then a summary line.
"""

import argparse
import time

from _common import emit, machine

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from mnistlab import arch, data, devices, rules, train


def seed_recipe(epochs: int, root) -> list[dict]:
    torch.manual_seed(1)
    dev = devices.pick_device("auto")
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=1, pin_memory=dev.type == "cuda")
    model = arch.build(arch.preset("seed")).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mnist = data.load(root, fetch=False)
    out, total = [], 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad()
            loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        total += seconds
        _, acc = train.evaluate(model, mnist.test, dev)
        rec = {"recipe": "seed", "epoch": epoch, "seconds": round(seconds, 2), "total_seconds": round(total, 1),
               "images_per_s": round(len(train_ds) / seconds), "test_accuracy": acc}
        emit(rec)
        out.append(rec)
    return out


def ours(epochs: int, root) -> list[dict]:
    mnist = data.load(root, fetch=False)
    cfg = train.recipe("seed")
    cfg = train.TrainConfig(**{**cfg.to_dict(), "epochs": epochs})
    out = []
    res = train.train(arch.preset("seed"), cfg, mnist)
    total = 0.0
    for h in res.history:
        total += h.seconds
        rec = {"recipe": "ours", "epoch": h.epoch, "seconds": round(h.seconds, 2), "total_seconds": round(total, 1),
               "images_per_s": round(60000 / h.seconds), "test_accuracy": h.test_accuracy,
               "precision": res.precision}
        emit(rec)
        out.append(rec)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed-epochs", type=int, default=1, help="epochs of the seed recipe (default 1)")
    p.add_argument("--our-epochs", type=int, default=1, help="epochs of our loop (default 1)")
    args = p.parse_args()
    root = data.ensure()
    emit({"machine": machine()})
    s = seed_recipe(args.seed_epochs, root)
    o = ours(args.our_epochs, root)
    seed_s, ours_s = s[0]["seconds"], o[0]["seconds"]
    emit({"summary": "seconds per epoch (first epoch, training only)", "seed_recipe": seed_s, "ours": ours_s,
          "speedup": round(seed_s / ours_s, 2), "seed_images_per_s": s[0]["images_per_s"],
          "our_images_per_s": o[0]["images_per_s"], "seed_final_accuracy": s[-1]["test_accuracy"],
          "seed_epochs": len(s), "seed_total_seconds": s[-1]["total_seconds"],
          "seed_first_epoch_at_99.4": next((r["epoch"] for r in s if r["test_accuracy"] >= rules.TARGET_ACCURACY),
                                           None)})


if __name__ == "__main__":
    main()
