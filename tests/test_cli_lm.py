"""`python -m minivlm train lm` and `eval lm`, run as a user runs them (one 3-step training run for the module),
and their bad inputs."""
import json

import pytest
import torch

from minivlm.__main__ import main
from minivlm.train import TrainConfig, save_checkpoint
from test_cli import _run

STATS = ("samples_seen", "train_seconds", "samples_per_s", "params", "device", "seed")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-lm") / "run"
    result = _run("train", "lm", "--steps", 3, "--seed", 1, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_train_writes_metrics_and_checkpoint(trained_run):
    out, result = trained_run
    m = json.loads((out / "metrics.json").read_text())
    assert m["samples_seen"] == 3 * 128 and m["steps"] == 3 and m["seed"] == 1 and m["params"] == 403_584
    assert m["samples_per_s"] == pytest.approx(m["samples_seen"] / m["train_seconds"])
    assert m["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert 2.0 < m["val_ce"] < 3.7 and 0 <= m["val_token_acc"] <= 1  # 3 steps: a little below ln 37 ≈ 3.61
    assert 0 <= m["sample_valid_frac"] <= 1 and len(m["samples"]) == 8 and isinstance(m["greedy_sample"], str)
    assert (out / "lm.pt").is_file() and (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "val_ce" in result.stdout and "greedy from <bos>" in result.stdout


def test_eval_reproduces_the_training_metrics(trained_run, capsys):
    out, _ = trained_run
    assert main(["eval", "lm", str(out / "lm.pt")]) == 0
    again = json.loads(capsys.readouterr().out)
    trained = json.loads((out / "metrics.json").read_text())
    for key in ("val_ce", "val_token_acc", "greedy_sample", "sample_valid_frac", "samples") + STATS:
        assert again[key] == trained[key], key  # same weights, same validation text, same sampling seed


def test_eval_refuses_a_checkpoint_of_another_kind(tmp_path, capsys):
    save_checkpoint(tmp_path / "clip.pt", torch.nn.Linear(1, 1), "clip", TrainConfig(steps=1), TrainConfig(steps=1))
    assert main(["eval", "lm", str(tmp_path / "clip.pt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "holds a 'clip' model, expected 'lm'" in err[0], err
