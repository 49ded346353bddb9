"""The ONNX download: the file runs in ONNX Runtime and answers as PyTorch does, on the official test images."""

import numpy as np
import onnx
import pytest
import torch

from mnistlab import arch, checkpoint, data, onnxfile

from .conftest import need
from .test_app import add_finished_run, isolated_runs, page  # noqa: F401 (isolated_runs: a fixture, used by all)



def run_onnx(raw: bytes, x: np.ndarray) -> np.ndarray:
    try:
        import onnxruntime as ort
    except ImportError:  # fails in CI, skips on a user's machine
        need(False, "onnxruntime is not installed (pip install -r requirements-dev.txt)")
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x})[0]


@pytest.fixture(scope="module")
def test_batch(mnist):
    """The first 1,000 official test images, normalised as the network takes them: (1000, 1, 28, 28) float32."""
    return data.normalise(mnist.test.images[:1000]).unsqueeze(1).float()


def assert_same_answers(raw: bytes, model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = run_onnx(raw, x.numpy())
    assert got.shape == expected.shape == (len(x), 10)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=1e-3)


def small_net() -> torch.nn.Module:
    """A freshly built small network with batch-norm statistics that are not the defaults (so folding them shows)."""
    torch.manual_seed(0)
    net = arch.build(arch.preset("tiny"))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["dynamo", "torchscript"])
def test_a_shipped_preset_and_a_fresh_net_answer_as_in_pytorch(how, test_batch):
    """Both of torch's exporters (the installed torch's default is the one the app uses)."""
    best = checkpoint.load(checkpoint.shipped()["best"]).model()
    assert_same_answers(onnxfile.onnx_bytes(best, how), best, test_batch)
    fresh = small_net()
    assert_same_answers(onnxfile.onnx_bytes(fresh, how), fresh, test_batch)


@pytest.mark.slow
def test_the_file_has_a_dynamic_batch_and_says_what_it_takes(test_batch):
    raw = onnxfile.onnx_bytes(checkpoint.load(checkpoint.shipped()["tiny"]).model())
    proto = onnx.load_from_string(raw)
    (image,) = proto.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.name == "image" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert "(N, 1, 28, 28)" in proto.doc_string and str(data.MEAN) in proto.doc_string
    for n in (1, 7, 1000):
        assert run_onnx(raw, test_batch[:n].numpy()).shape == (n, 10)


@pytest.mark.slow
def test_a_checkpoint_is_exported_in_a_child_process(test_batch):
    path = checkpoint.shipped()["tiny"]
    raw = onnxfile.export_checkpoint(path)
    assert_same_answers(raw, checkpoint.load(path).model(), test_batch)


@pytest.mark.slow
def test_a_file_that_is_not_a_checkpoint_is_a_message(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(onnxfile.OnnxExportError, match="not an mnistlab checkpoint"):
        onnxfile.export_checkpoint(bad)


def test_an_export_past_its_time_is_stopped():
    with pytest.raises(onnxfile.OnnxExportError, match="took longer than"):
        onnxfile.export_checkpoint(checkpoint.shipped()["tiny"], timeout=0.2)


def test_one_export_at_a_time():
    with onnxfile._ONE_AT_A_TIME:
        with pytest.raises(onnxfile.OnnxExportError, match="another ONNX export is running"):
            onnxfile.export_checkpoint(checkpoint.shipped()["tiny"], timeout=0.1)
    assert not onnxfile._ONE_AT_A_TIME.locked()


def test_an_exporter_failure_is_one_sentence(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(onnxfile.OnnxExportError, match="exporter failed: RuntimeError: unsupported operator"):
        onnxfile.onnx_bytes(small_net())


# ------------------------------------------------------------------------------------------------ the Runs page

def runs_page_with_a_run():
    add_finished_run("aaa", "Ann", 99.45)
    at = page("views/4_Runs.py").run()
    assert not at.exception
    assert not onnx_download(at)  # exported only when asked for
    return at


def onnx_download(at):
    return [b for b in at.get("download_button") if b.key == "dl_onnx"]


@pytest.mark.slow
def test_the_runs_page_offers_the_onnx_file_once_exported(monkeypatch, test_batch):
    exported = []

    def export(path, timeout=onnxfile.EXPORT_SECONDS, real=onnxfile.export_checkpoint):
        exported.append(real(path, timeout))
        return exported[-1]

    monkeypatch.setattr(onnxfile, "export_checkpoint", export)
    at = runs_page_with_a_run()
    button = at.button(key="make_onnx")
    assert "(N, 1, 28, 28)" in button.help and "normalised" in button.help
    button.click().run()
    assert not at.exception and not at.error
    (offered,) = onnx_download(at)
    assert offered.label == "ONNX file (.onnx)" and "(N, 1, 28, 28)" in offered.help
    tiny = checkpoint.load(checkpoint.shipped()["tiny"]).model()  # the run's weights (a copy of the shipped tiny)
    assert_same_answers(exported[-1], tiny, test_batch)
    at.run()  # a later rerun (another widget) keeps the download, without exporting again
    assert onnx_download(at) and len(exported) == 1


def test_the_runs_page_says_when_the_export_fails(monkeypatch):
    tries = []

    def failing(path, timeout=onnxfile.EXPORT_SECONDS):
        tries.append(path)
        raise onnxfile.OnnxExportError("the export took longer than 120 s and was stopped")

    monkeypatch.setattr(onnxfile, "export_checkpoint", failing)
    at = runs_page_with_a_run()
    at.button(key="make_onnx").click().run()
    assert not at.exception
    assert any("ONNX export failed" in e.value and "took longer" in e.value for e in at.error)
    assert not onnx_download(at)
    at.run().run()  # reruns of the page (another widget) do not try again: each try can hold the page for minutes
    assert len(tries) == 1
