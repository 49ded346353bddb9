import io
import pickle
import struct
import zipfile

import pytest
import torch

from mnistlab import arch, checkpoint, train
from mnistlab.checkpoint import Checkpoint, CheckpointError


def small_checkpoint():
    spec = arch.preset("tiny")
    model = arch.build(spec)
    return Checkpoint(spec, model.state_dict(), train.TrainConfig().to_dict(), [{"epoch": 1}], {"note": "x"})


def test_round_trip(tmp_path):
    ck = small_checkpoint()
    path = checkpoint.save(ck, tmp_path / "a.pt")
    back = checkpoint.load(path)
    assert back.spec == ck.spec and back.config == ck.config and back.history == ck.history
    assert all(torch.equal(back.state_dict[k], ck.state_dict[k]) for k in ck.state_dict)
    assert not list(tmp_path.glob("*.part"))
    # the file is plain data: the strictest loader reads it
    assert torch.load(path, weights_only=True)["format"] == "mnistlab-checkpoint"
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(back.model()(x), ck.model()(x))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "mnistlab-checkpoint", "version": 1, "x": Payload()}, evil)
    # whatever torch calls the global it refused (io.open, builtins.open, _io.open across versions)
    with pytest.raises(CheckpointError, match="refused and not loaded.*pickle payload") as e:
        checkpoint.load(evil)
    assert "weights_only" not in str(e.value)  # never torch's advice to turn the safety check off
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="not an mnistlab checkpoint"):
        checkpoint.load(raw)
    assert not marker.exists()


def test_truncated_and_foreign_files_are_refused(tmp_path):
    blob = checkpoint.to_bytes(small_checkpoint())
    for n in (10, len(blob) // 2, len(blob) - 30):
        with pytest.raises(CheckpointError):
            checkpoint.from_bytes(blob[:n])
    foreign = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an mnistlab checkpoint"):
        checkpoint.from_bytes(foreign.getvalue())
    with pytest.raises(CheckpointError, match="cannot read"):
        checkpoint.load(tmp_path / "missing.pt")


def test_a_damaged_copy_is_refused_as_corrupt():
    blob = checkpoint.to_bytes(small_checkpoint())
    archive = zipfile.ZipFile(io.BytesIO(blob))
    for name in ("data.pkl", "data/0"):  # the pickled structure, then a weight tensor
        info = next(i for i in archive.infolist() if i.filename.endswith("/" + name))
        name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26: info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len  # the member's bytes, after its local header
        damaged = bytearray(blob)
        for i in range(start, start + min(16, info.file_size)):
            damaged[i] ^= 0xFF
        with pytest.raises(CheckpointError, match=f"corrupt: its part '.*{name}' fails its checksum"):
            checkpoint.from_bytes(bytes(damaged))


def test_weights_that_do_not_fit_the_spec_are_refused():
    ck = small_checkpoint()
    ck.spec = arch.preset("lean")  # claims another network
    with pytest.raises(CheckpointError, match="^upload.pt: the weights do not fit"):
        checkpoint.from_bytes(checkpoint.to_bytes(ck), source="upload.pt")
    ck = small_checkpoint()
    bad = dict(ck.state_dict)
    bad.pop(next(iter(bad)))
    ck.state_dict = bad
    with pytest.raises(CheckpointError, match="do not fit"):
        checkpoint.from_bytes(checkpoint.to_bytes(ck))


def test_an_invalid_spec_inside_is_refused():
    ck = small_checkpoint()
    payload = torch.load(io.BytesIO(checkpoint.to_bytes(ck)), weights_only=True)
    payload["spec"]["dropout"] = 0.9
    buf = io.BytesIO()
    torch.save(payload, buf)
    with pytest.raises(CheckpointError, match="invalid architecture spec: dropout"):
        checkpoint.from_bytes(buf.getvalue())


def test_a_fifo_a_device_a_link_or_a_giant_is_refused_before_anything_is_read(tmp_path):
    import os
    import resource

    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # opening it for reading would block every page for ever
    with pytest.raises(CheckpointError, match="not a regular file"):
        checkpoint.load(fifo)
    zero = tmp_path / "zero.pt"
    zero.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="not a regular file"):
        checkpoint.load(zero)
    with pytest.raises(CheckpointError, match="link"):
        checkpoint.load(zero, follow_links=False)
    sparse = tmp_path / "sparse.pt"
    with open(sparse, "wb") as f:
        f.truncate(20 * 1024**3)  # 20 GB on paper, nothing on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="far larger"):
        checkpoint.load(sparse)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: nothing was read
    real = checkpoint.save(small_checkpoint(), tmp_path / "real.pt")
    link = tmp_path / "link.pt"
    link.symlink_to(real)
    assert checkpoint.load(link).spec == arch.preset("tiny")  # a user's own link is fine from the CLI
    with pytest.raises(CheckpointError, match="link"):
        checkpoint.load(link, follow_links=False)  # but never inside the runs folder


def test_a_zip_bomb_is_refused_from_its_directory_before_anything_is_inflated(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(1024):  # 1 GiB of zeros: about 1 MB on disk
                member.write(block)
    assert bomb.stat().st_size < checkpoint.MAX_BYTES
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))
    with pytest.raises(CheckpointError, match="would inflate"):
        checkpoint.load(bomb)
    assert opened == []  # refused from the archive's directory: no member was opened, let alone inflated
