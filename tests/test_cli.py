import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab import arch


def run(*args, root=None, check=True):
    env_args = ["--root", str(root)] if root is not None else []
    proc = subprocess.run([sys.executable, "-m", "mnistlab", *args, *env_args], capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_summary_json_for_the_seed():
    out = json.loads(run("summary", "--preset", "seed", "--json").stdout)
    assert out["total_params"] == 19_122
    assert {"type", "output_shape", "params", "receptive_field"} <= set(out["layers"][0])
    assert out["layers"][0]["output_shape"] == [16, 28, 28]
    assert {c["name"]: c["passed"] for c in out["checks"]} == {"params": True, "no_fc": True,
                                                               "receptive_field": True}


def test_summary_table_and_presets_list():
    text = run("summary", "--preset", "tiny").stdout
    assert "receptive field" in text and "[ok]" in text
    listing = run("presets").stdout
    for name in ("seed", "best", "lean", "tiny", "micro"):
        assert name in listing


def test_bad_spec_is_a_message_not_a_traceback():
    proc = run("summary", "--spec", '{"blocks": [], "dropout": 0.1}', check=False)
    assert proc.returncode == 2
    assert "at least one block" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_spec_as_json_text_or_as_a_file(tmp_path):
    spec = arch.preset("best")
    text = json.dumps(spec.to_dict(), indent=2)  # longer than a file name may be, as the Architecture page shows it
    assert len(text) > 300
    assert json.loads(run("summary", "--spec", text, "--json").stdout)["total_params"] == 18_448
    path = tmp_path / "net.json"
    path.write_text(text)
    assert json.loads(run("summary", "--spec", str(path), "--json").stdout)["total_params"] == 18_448
    missing = run("summary", "--spec", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2 and "cannot read the spec file" in missing.stderr
    assert "Traceback" not in missing.stderr
    not_an_object = run("summary", "--spec", "[1]", check=False)
    assert not_an_object.returncode == 2 and "a spec must be a JSON object" in not_an_object.stderr


def test_data_command_reports_where_the_data_is(data_root):
    out = run("data", root=data_root).stdout
    assert str(data_root) in out


@pytest.mark.slow
def test_train_then_eval_a_quick_run(data_root, tmp_path):
    ck = tmp_path / "quick.pt"
    proc = run("train", "--preset", "tiny", "--epochs", "1", "--train-subset", "2000", "--clean-epochs", "1",
               "--ema", "0.9", "--distill-from", "best", "--quiet", "--out", str(ck), root=data_root)
    assert "epoch  1/1" in proc.stdout and "final test accuracy" in proc.stdout
    assert "[FAIL] not trained on all 60,000 training images" in proc.stdout  # the verdict on every challenge rule
    assert "learning from best too" in proc.stdout
    assert "[ok] fewer than 20 epochs, counting those of the network it learnt from (1 + 4 for best = 5)" in proc.stdout
    assert ck.exists() and ck.with_suffix(".json").exists()
    saved = json.loads(ck.with_suffix(".json").read_text())
    history = saved["history"]
    assert len(history) == 1
    assert saved["config"]["clean_epochs"] == 1 and saved["config"]["epochs"] == 1 and saved["config"]["ema"] == 0.9
    assert saved["config"]["distill_from"] == "best"
    out = json.loads(run("eval", "--checkpoint", str(ck), "--json", root=data_root).stdout)
    assert out["params"] == arch.count_params(arch.preset("tiny"))
    assert out["test_accuracy"] == pytest.approx(history[0]["test_accuracy"], abs=0.01)


@pytest.mark.slow
def test_train_refuses_an_unusable_out_path_before_training(data_root, tmp_path):
    proc = run("train", "--preset", "tiny", "--epochs", "1", "--train-subset", "500", "--out", str(tmp_path),
               root=data_root, check=False)
    assert proc.returncode == 2 and "is a folder; give a file name" in proc.stderr
    assert "epoch" not in proc.stdout  # refused before any training
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run("train", "--preset", "tiny", "--out", str(blocker / "x.pt"), root=data_root, check=False)
    assert proc.returncode == 2 and "cannot write the checkpoint" in proc.stderr
    proc = run("train", "--preset", "tiny", "--out", str(tmp_path / "q.json"), root=data_root, check=False)
    assert proc.returncode == 2 and "history is written beside the checkpoint" in proc.stderr
    assert not (tmp_path / "q.json").exists()


def test_distilling_from_a_network_that_is_not_there_is_refused_before_training(data_root, tmp_path):
    proc = run("train", "--preset", "tiny", "--epochs", "1", "--train-subset", "500", "--distill-from",
               str(tmp_path / "nope.pt"), root=data_root, check=False)
    assert proc.returncode == 2 and "neither a shipped preset" in proc.stderr and "Traceback" not in proc.stderr
    assert "epoch" not in proc.stdout


def test_the_default_checkpoint_path_stays_in_runs_whatever_the_spec_is_called(tmp_path, monkeypatch):
    from mnistlab import cli, train

    monkeypatch.chdir(tmp_path)
    spec = arch.ArchSpec.from_dict({**arch.preset("tiny").to_dict(), "name": "../../escape"})
    path = cli._checkpoint_path(None, spec, train.TrainConfig(seed=3))
    assert path == Path("runs") / "escape-seed3.pt"


def test_data_into_a_folder_that_cannot_be_made_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run("data", root=blocker, check=False)
    assert proc.returncode == 2 and "cannot write MNIST into" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_refuses_a_foreign_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    proc = run("eval", "--checkpoint", str(bad), check=False)
    assert proc.returncode == 2 and "not an mnistlab checkpoint" in proc.stderr


def test_eval_json_of_a_diverged_network_is_strict_json(tmp_path, data_root):
    import torch

    from mnistlab import checkpoint

    spec = arch.preset("tiny")
    weights = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
               for k, v in arch.build(spec).state_dict().items()}
    path = checkpoint.save(checkpoint.Checkpoint(spec, weights), tmp_path / "nan.pt")
    text = run("eval", "--checkpoint", str(path), "--json", root=data_root).stdout
    out = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} is not JSON"))
    assert out["test_loss"] is None and 0 <= out["test_accuracy"] <= 100
