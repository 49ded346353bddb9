import threading

import pytest
import torch

from mnistlab import arch, devices, rules, train
from mnistlab.train import ConfigError, TrainConfig


@pytest.mark.slow
def test_one_epoch_on_10k_images_learns(mnist):
    events = []
    cfg = TrainConfig(epochs=1, train_subset=10_000, seed=1, batch_size=64)
    result = train.train(arch.preset("seed"), cfg, mnist, on_event=events.append)
    assert result.status == "finished"
    assert result.final_test_accuracy > 95.0  # on the full official 10k test set
    started = [e for e in events if isinstance(e, train.Started)]
    batches = [e for e in events if isinstance(e, train.BatchProgress)]
    epochs = [e for e in events if isinstance(e, train.EpochEnd)]
    assert len(started) == 1 and started[0].params == 19_122 and started[0].train_images == 10_000
    assert batches[-1].batch == batches[-1].batches == 156  # 10,000 // 64 full batches
    assert len(epochs) == 1 and epochs[0].seconds > 0 and 0 <= epochs[0].train_accuracy <= 100


def test_cancel_from_another_thread_stops_within_one_batch(mnist):
    cancel = threading.Event()
    seen = []

    def on_event(ev):
        if isinstance(ev, train.BatchProgress):
            seen.append(ev.batch)
            if ev.batch == 3:
                setter = threading.Thread(target=cancel.set)
                setter.start()
                setter.join()  # the request is in before the next batch, however busy the machine

    cfg = TrainConfig(epochs=3, train_subset=1600, batch_size=32, seed=0)  # 50 batches: every one is reported
    result = train.train(arch.preset("tiny"), cfg, mnist, on_event=on_event, cancel=cancel)
    assert result.status == "cancelled"
    assert result.history == []  # no epoch finished
    assert seen[:3] == [1, 2, 3] and max(seen) - 3 <= 1  # at most the batch in progress after the request


def test_same_seed_same_result_on_the_cpu(mnist):
    cfg = TrainConfig(epochs=1, train_subset=1500, seed=7, device="cpu")
    a = train.train(arch.preset("lean"), cfg, mnist)
    b = train.train(arch.preset("lean"), cfg, mnist)
    c = train.train(arch.preset("lean"), TrainConfig(**{**cfg.to_dict(), "seed": 8}), mnist)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.history[0].test_accuracy == b.history[0].test_accuracy
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_clean_epochs_train_the_last_epochs_without_augmentation(mnist, monkeypatch):
    from mnistlab import data

    calls = []
    real = data.random_affine
    monkeypatch.setattr(data, "random_affine", lambda x, *a, **kw: calls.append(len(x)) or real(x, *a, **kw))
    cfg = TrainConfig(epochs=3, clean_epochs=1, augment=0.5, train_subset=600, batch_size=100, device="cpu")
    r = train.train(arch.preset("tiny"), cfg, mnist)
    assert len(r.history) == 3
    assert calls == [100] * 12  # 6 batches in each of the first two epochs, none in the last


def test_ema_evaluates_and_keeps_the_averaged_weights(mnist):
    spec = arch.preset("tiny")
    cfg = TrainConfig(epochs=1, train_subset=1200, batch_size=100, lr=0.1, device="cpu")
    live = train.train(spec, cfg, mnist)
    averaged = train.train(spec, TrainConfig(**{**cfg.to_dict(), "ema": 0.999}), mnist)
    torch.manual_seed(cfg.seed)
    init = arch.build(spec).state_dict()
    key = "layers.0.weight"

    def moved(model):
        return (model.state_dict()[key] - init[key]).norm().item()

    # a slow average of 12 steps stays close to where training started; the live weights moved on
    assert moved(averaged.model) < 0.2 * moved(live.model)
    # what is reported, and what a checkpoint would save, is the averaged network
    reported = averaged.history[0].test_accuracy
    assert reported == train.evaluate(averaged.model, mnist.test, batch_size=cfg.eval_batch_size,
                                      channels_last=cfg.channels_last)[1]
    assert reported != live.history[0].test_accuracy


def test_validation_split_is_evaluated_when_asked(data_root):
    from mnistlab import data

    d = data.load(data_root, validation=1000, fetch=False)
    r = train.train(arch.preset("tiny"), TrainConfig(epochs=1, train_subset=1000, validation=1000), d)
    assert r.history[0].validation_accuracy is not None


@pytest.mark.parametrize("changes,message", [
    ({"epochs": 0}, "epochs must be a whole number from 1 to 100"),
    ({"lr": -1}, "lr must be a number"),
    ({"optimizer": "magic"}, "optimizer must be one of"),
    ({"precision": "int4"}, "precision must be one of"),
    ({"train_subset": 0}, "train_subset must be"),
    ({"epochs": 3, "clean_epochs": 4}, "clean_epochs must be a whole number from 0 to 3"),
    ({"ema": 1.0}, "ema must be a number from 0.0 to 0.9999"),
    ({"cuda_graph": "yes"}, "cuda_graph must be one of auto, off, uncaptured"),
    ({"cuda_graph": True}, "cuda_graph must be one of"),
])
def test_bad_configs_are_refused_with_a_message(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **changes})


def test_config_round_trip_and_eligibility():
    cfg = TrainConfig(epochs=5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    tiny = arch.preset("tiny")
    assert rules.judge(tiny, cfg).eligible
    assert not rules.judge(tiny, TrainConfig(train_subset=1000)).eligible
    assert not rules.judge(tiny, TrainConfig(epochs=20)).eligible
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"epochs": 1, "turbo": True})


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_device_prefers_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert devices.pick_device("auto").type == expected


def test_device_and_precision_choice():
    assert devices.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(devices.DeviceError, match="no CUDA GPU"):
            devices.pick_device("cuda")
    with pytest.raises(devices.DeviceError):
        devices.pick_device("tpu")
    cpu = torch.device("cpu")
    assert devices.pick_precision("auto", cpu) == ("bf16" if devices.cpu_has_native_bf16() else "fp32")
    assert devices.pick_precision("fp32", cpu) == "fp32"
    with pytest.raises(devices.DeviceError, match="fp16"):
        devices.pick_precision("fp16", cpu)
