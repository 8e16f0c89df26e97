"""`python -m minivlm train vq` / `eval vq` as a user runs them: one shared 2-step run (the judge, 2 steps, from a
cache of the test's own, then the tokenizer), the files it writes, an eval that reproduces its metrics, and bad
checkpoints ending in one line and exit status 2."""
import json
import shutil

import pytest

from cli_run import run_cli as _run
from minivlm.__main__ import main
from minivlm.recipes.vq import VQRecipe
from minivlm.train import load_checkpoint

KEYS = ("recon_judge_acc", "recon_colour_shape_acc", "recon_mse", "codebook_perplexity", "dead_codes", "judge_acc",
        "judge_acc_1obj", "judge_acc_2obj", "judge_heldout_acc", "heldout_recon_colour_shape_acc")
FILES = ("vq.pt", "judge.pt", "curves.png", "reconstructions.png", "history.json")
BATCH_SIZE, LR = VQRecipe.batch_size, VQRecipe.lr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_vq")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIVLM_CACHE", str(root / "cache"))  # the 2-step judge is trained there, not in runs/cache
        result = _run("train", "vq", "--steps", 2, "--set", "judge_steps=2", "--out", root / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "run", result


def test_train_writes_metrics_and_files(trained_run):
    out, result = trained_run
    metrics = json.loads((out / "metrics.json").read_text())
    for key in KEYS:
        assert metrics[key] is not None, key
    for key in KEYS[:2] + KEYS[5:]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert 1.0 <= metrics["codebook_perplexity"] <= 512 and 0 <= metrics["dead_codes"] < 512
    assert metrics["steps"] == 2 and metrics["samples_seen"] == 2 * BATCH_SIZE and metrics["seed"] == 0
    judge = load_checkpoint(out / "judge.pt", "judge")["extra"]  # trained for this run (in its cache) and copied
    assert metrics["train_seconds"] > 0 and judge["train_seconds"] > 0 and judge["steps"] == 2
    assert 200_000 <= metrics["params"] <= 300_000
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "results (" in result.stdout and "recon_judge_acc" in result.stdout


def test_the_tokenizer_trains_with_its_recipes_batch_and_lr(trained_run):
    train_cfg = load_checkpoint(trained_run[0] / "vq.pt", "vq")["train_config"]
    assert (train_cfg["batch_size"], train_cfg["lr"]) == (BATCH_SIZE, LR) == (64, 6e-3)
    assert load_checkpoint(trained_run[0] / "judge.pt", "judge")["train_config"]["batch_size"] == 128


def test_eval_reproduces_the_training_metrics(trained_run, tmp_path):
    out, _ = trained_run
    assert main(["eval", "vq", str(out / "vq.pt"), "--out", str(tmp_path)]) == 0  # in process: no start-up cost
    trained = json.loads((out / "metrics.json").read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in KEYS + ("params", "seed", "samples_seen", "train_seconds"):
        assert metrics[key] == trained[key], key  # same weights, same fixed eval sets: same numbers
    assert (tmp_path / "reconstructions.png").stat().st_size > 0


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("minivlm: error: "), err
    return err[0]


def test_unreadable_checkpoint_exits_2_with_one_line(tmp_path):
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    result = _run("eval", "vq", tmp_path / "notes.pt")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "is not a readable torch checkpoint" in lines[0], result.stderr


def test_eval_without_a_judge_beside_it(trained_run, tmp_path, capsys):
    shutil.copyfile(trained_run[0] / "vq.pt", tmp_path / "vq.pt")
    assert main(["eval", "vq", str(tmp_path / "vq.pt")]) == 2
    assert "no judge.pt beside" in _one_error_line(capsys)


def test_wrong_kind_of_checkpoint(trained_run, tmp_path, capsys):
    assert main(["eval", "vq", str(trained_run[0] / "judge.pt")]) == 2
    assert "holds a 'judge' model, expected 'vq'" in _one_error_line(capsys)
    assert main(["train", "vq", "--steps", "1", "--judge", str(trained_run[0] / "vq.pt"),
                 "--out", str(tmp_path)]) == 2
    assert "holds a 'vq' model, expected 'judge'" in _one_error_line(capsys)
