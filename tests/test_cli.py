"""The command line, run as a user runs it: `python -m minivlm ...` in a subprocess, and through `main(argv)` for
the many ways of calling it wrong (same code path, no interpreter start-up).

One training run (3 steps) is shared by the module; it still renders the full 50k training set, so it takes
several seconds.
"""
import json

import pytest
import torch

from cli_run import run_cli as _run
from minivlm.__main__ import main

METRICS = ("zero_shot_acc", "heldout_acc", "i2t_r1", "t2i_r1")
STATS = ("samples_seen", "train_seconds", "samples_per_s", "params", "device", "seed")
PLOTS = ("confusion_colour.png", "confusion_shape.png", "similarity.png")



def _check_metrics(metrics: dict):
    for key in METRICS:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["samples_seen"] == 3 * 128
    assert metrics["train_seconds"] > 0
    assert metrics["samples_per_s"] == pytest.approx(metrics["samples_seen"] / metrics["train_seconds"])
    assert 215_000 <= metrics["params"] <= 235_000
    assert metrics["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu") and metrics["seed"] == 0


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = _run("train", "clip", "--steps", 3, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_train_writes_metrics_checkpoint_and_plots(trained_run):
    out, result = trained_run
    metrics = json.loads((out / "metrics.json").read_text())
    _check_metrics(metrics)
    assert metrics["steps"] == 3
    assert (out / "clip.pt").stat().st_size > 500_000  # about 225k float32 weights
    for name in PLOTS + ("curves.png",):
        assert _is_png(out / name), name
    assert "results (" in result.stdout and "zero_shot_acc" in result.stdout


def test_eval_reproduces_the_training_metrics(trained_run, tmp_path):
    out, _ = trained_run
    result = _run("eval", "clip", out / "clip.pt", "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trained = json.loads((out / "metrics.json").read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    _check_metrics(metrics)
    for key in METRICS + STATS + ("colour_acc", "shape_acc", "i2t_r5", "two_obj_i2t_r1"):
        assert metrics[key] == trained[key], key  # same weights, same fixed eval sets: same numbers
    for name in PLOTS:
        assert _is_png(tmp_path / name), name


@pytest.mark.parametrize("case", ["wrong flag", "unreadable checkpoint"])
def test_bad_usage_exits_2_with_one_line(case, tmp_path):
    """One case per way out: argparse's error, and a ValueError from our own checks."""
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    args, expected = {
        "wrong flag": (("train", "clip", "--epochs", "3"), "unrecognized arguments: --epochs 3"),
        "unreadable checkpoint": (("eval", "clip", tmp_path / "notes.pt"), "is not a readable torch checkpoint"),
    }[case]
    result = _run(*args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("minivlm: error: ") and expected in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("argv, expected", [
    (["train", "gpt", "--steps", "3"], "argument model: invalid choice: 'gpt'"),
    (["eval", "gpt", "x.pt"], "argument model: invalid choice: 'gpt'"),
    (["train", "clip", "--epochs", "3"], "unrecognized arguments: --epochs 3"),
    (["train", "clip", "--steps", "0"], "argument --steps: expected a positive number, got '0'"),
    (["train", "clip", "--seconds", "abc"], "argument --seconds: expected a positive number, got 'abc'"),
    (["train", "clip", "--steps", "3", "--seconds", "5"], "not allowed with argument"),
    (["train", "clip", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["eval", "clip"], "the following arguments are required: checkpoint"),
    ([], "the following arguments are required: command"),
])
def test_bad_arguments_in_process(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("minivlm: error: ") and expected in err[0], err


def test_missing_checkpoint_in_process(tmp_path, capsys):
    assert main(["eval", "clip", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("minivlm: error: checkpoint: no file at"), err


def test_wrong_kind_checkpoint_in_process(trained_run, tmp_path, capsys):
    ckpt = torch.load(trained_run[0] / "clip.pt", weights_only=True)
    torch.save({**ckpt, "kind": "captioner"}, tmp_path / "cap.pt")
    assert main(["eval", "clip", str(tmp_path / "cap.pt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "holds a 'captioner' model, expected 'clip'" in err[0]


def test_cuda_without_a_gpu_in_process(trained_run, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same check on a machine with a GPU
    assert main(["eval", "clip", str(trained_run[0] / "clip.pt"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["minivlm: error: device: 'cuda' was asked for, but torch sees no CUDA device"]
