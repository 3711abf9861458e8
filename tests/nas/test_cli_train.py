"""`dynnas train` / `dynnas eval` from the command line: success and every bad input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nas.cli import app
from tests.cli import fails_cleanly

runner = CliRunner()


@pytest.mark.parametrize("args, match", [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--family", "cnnn"], "did you mean 'cnn'"),
    (["--preset", "huge"], "unknown cnn preset"),
    (["--dataset", "cifar10:/no/such/dir"], "not a CIFAR-10 folder"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--stage-epochs", "1,0"], "epochs > 0"),
    (["--stage-epochs", "1,x"], "comma-separated"),
    (["--importance", "taylorr"], "channel-importance"),
    (["--device-type", "cuda"], "cuda"),
])
def test_train_bad_input(tmp_path, args, match):
    out = tmp_path / "run"
    if args[:2] == ["--device-type", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is present here")
    fails_cleanly(["train", "--out", str(out), *args], match)
    assert not out.exists()  # nothing half-written


def test_train_out_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails_cleanly(["train", "--out", str(blocker / "run")], "not writable")


def test_resume_errors(tmp_path):
    fails_cleanly(["train", "--out", str(tmp_path), "--resume"], "no checkpoint")


def test_resume_other_width_set(tmp_path, tiny_run):
    # tiny_run was trained with preset tiny; resuming it as cifar-default must be refused.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    fails_cleanly(["train", "--out", str(run), "--resume", "--preset", "cifar-default", "--dataset", "digits"],
                   "expects")  # digits cannot feed the CIFAR net: refused before touching the checkpoint


def test_train_and_eval_succeed(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--out", str(out), "--epochs", "1", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (out / "supernet.safetensors").exists() and (out / "state.json").exists()
    assert "uniform subnets" in res.output
    res = runner.invoke(app, ["eval", "--supernet", str(out), "--bn", "switchable", "--split", "val"])
    assert res.exit_code == 0, res.output
    assert "0.25" in res.output and "accuracy" in res.output
    fails_cleanly(["train", "--out", str(out), "--epochs", "1"], "--resume")
    fails_cleanly(["eval", "--supernet", str(out), "--bn", "magic"], "--bn must be one of")
    fails_cleanly(["eval", "--supernet", str(tmp_path / "nope.safetensors")], "does not exist")


def test_stop_at_writes_the_state_reached_and_resume_finishes_it(tmp_path):
    """--stop-at 1 of 2 epochs: a snapshot artifact of epoch 1, then --resume ends bit-identical to one run."""
    import json

    from supernet.checkpoint import load_tensors

    half, full = tmp_path / "half", tmp_path / "full"
    common = ["--epochs", "1", "--widths", "0.5,1.0", "--seed", "3", "--train-limit", "300"]
    res = runner.invoke(app, ["train", "--out", str(half), *common, "--stop-at", "1"])
    assert res.exit_code == 0, res.output
    meta = load_tensors(half / "supernet.safetensors")[1]
    assert [r["epoch"] for r in meta["history"]] == [1]
    assert json.loads((half / "state.json").read_text())["epoch"] == 1
    assert runner.invoke(app, ["train", "--out", str(half), *common, "--resume"]).exit_code == 0
    assert runner.invoke(app, ["train", "--out", str(full), *common]).exit_code == 0
    a, b = load_tensors(half / "supernet.safetensors")[0], load_tensors(full / "supernet.safetensors")[0]
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.mark.parametrize("stop, match", [("0", "--stop-at must be between 1"), ("3", "--stop-at must be between 1")])
def test_stop_at_out_of_range(tmp_path, stop, match):
    fails_cleanly(["train", "--out", str(tmp_path / "r"), "--epochs", "1", "--widths", "0.5,1.0", "--stop-at", stop],
                  match)
    assert not (tmp_path / "r").exists()
