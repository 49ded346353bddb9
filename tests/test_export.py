"""The standalone PyTorch file a student downloads: it rebuilds the network without mnistlab and loads the weights."""

import runpy
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from mnistlab import arch, checkpoint, data, export


def test_the_standalone_file_rebuilds_the_network_and_predicts_like_ours(tmp_path, mnist):
    ckpt = checkpoint.shipped()["best"]
    ours = checkpoint.load(ckpt).model()
    script = tmp_path / export.filename(ours.spec)
    script.write_text(export.standalone_script(ours.spec))
    Image.fromarray(mnist.test.images[0].numpy()).save(tmp_path / "digit.png")

    out = subprocess.run([sys.executable, "-I", str(script), str(ckpt), str(tmp_path / "digit.png")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    x = data.normalise(mnist.test.images[:256]).unsqueeze(1)
    with torch.no_grad():
        logits = ours(x)
    expected = int(logits[0].argmax())
    assert f"{arch.count_params(ours.spec):,} parameters loaded" in out.stdout
    assert f"digit.png: {expected} (" in out.stdout

    theirs = runpy.run_path(str(script))["load"](str(ckpt))
    with torch.no_grad():
        assert torch.allclose(theirs(x), logits, atol=1e-5)
    assert "mnistlab" not in script.read_text().replace("MNIST Lab", "")


def test_any_spec_a_student_names_gives_a_valid_file(tmp_path):
    spec = arch.ArchSpec.from_dict({**arch.preset("tiny").to_dict(), "name": 'my """net\\ 🚀'})
    script = tmp_path / export.filename(spec)
    script.write_text(export.standalone_script(spec))
    net = runpy.run_path(str(script))["Net"]()
    assert sum(p.numel() for p in net.parameters()) == arch.count_params(spec)
    assert net.state_dict().keys() == arch.build(spec).state_dict().keys()
    assert np.isclose(runpy.run_path(str(script))["MEAN"], data.MEAN)
