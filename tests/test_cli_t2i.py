"""`python -m minivlm train dalle|cm3`, `eval` and `draw` as a user runs them: one 2-step dalle run whose judge,
tokenizer and CLIP (2 steps each) are trained in a cache of the test's own, one 2-step cm3 run on that tokenizer and
CLIP, the files and metrics they write, eval reproducing them, `draw` writing a reranked PNG, and bad input ending in
one line and exit status 2."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cli_run import run_cli
from minivlm.__main__ import main
from minivlm.recipes.vq import VQRecipe
from minivlm.train import load_checkpoint

KEYS = {"dalle": ("t2i_match_1obj", "t2i_match_1obj_rerank8", "t2i_match_2obj", "t2i_exact_2obj",
                  "t2i_match_heldout", "judge_acc"),
        "cm3": ("caption_em_1obj", "caption_em_1obj_l2r", "caption_em_2obj", "t2i_match_1obj", "infill_judge_acc",
                "infill_text_acc", "judge_acc")}


BATCH_SIZE, LR = VQRecipe.batch_size, VQRecipe.lr


def _run(*args):
    return run_cli(*args, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_t2i")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIVLM_CACHE", str(root / "cache"))  # the 2-step prerequisites are trained there
        dalle = _run("train", "dalle", "--steps", 2, "--clip-steps", 2, "--set", "vq_steps=2", "--set",
                     "judge_steps=2", "--out", root / "dalle")
        assert dalle.returncode == 0, dalle.stderr[-2000:]
        cm3 = _run("train", "cm3", "--steps", 2, "--vq", root / "dalle" / "vq.pt", "--clip",
                   root / "dalle" / "clip.pt", "--out", root / "cm3")
    assert cm3.returncode == 0, cm3.stderr[-2000:]
    return root, {"dalle": dalle, "cm3": cm3}


@pytest.mark.parametrize("kind", ["dalle", "cm3"])
def test_train_writes_metrics_and_files(runs, kind):
    root, results = runs
    out = root / kind
    metrics = json.loads((out / "metrics.json").read_text())
    for key in KEYS[kind] + ("train_seconds", "params", "seed"):
        assert metrics[key] is not None, key
    for key in KEYS[kind]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["steps"] == 2 and metrics["samples_seen"] == 128 and metrics["seed"] == 0
    for name in (f"{kind}.pt", "vq.pt", "judge.pt", "clip.pt", "curves.png", "samples.png", "history.json"):
        assert (out / name).stat().st_size > 0, name
    assert "results (" in results[kind].stdout
    if kind == "cm3":
        assert metrics["vq_checkpoint"].endswith("vq.pt") and metrics["clip_checkpoint"].endswith("clip.pt")
    else:  # the tokenizer trained here follows the tokenizer's recipe, as `train vq` does
        vq_cfg = load_checkpoint(out / "vq.pt", "vq")["train_config"]
        assert (vq_cfg["batch_size"], vq_cfg["lr"], vq_cfg["steps"]) == (BATCH_SIZE, LR, 2)


@pytest.mark.parametrize("kind", ["dalle", "cm3"])
def test_eval_reproduces_the_training_metrics(runs, kind, tmp_path):
    root, _ = runs
    clip = str(root / "dalle" / "clip.pt")
    assert main(["eval", kind, str(root / kind / f"{kind}.pt"), "--clip", clip, "--out", str(tmp_path)]) == 0
    trained = json.loads((root / kind / "metrics.json").read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in KEYS[kind] + ("params", "seed", "samples_seen"):
        assert metrics[key] == trained[key], key  # same weights, seeds and prompts: same samples, same scores


@pytest.mark.parametrize("kind", ["dalle", "cm3"])
def test_draw_writes_a_png_row_best_first(runs, kind, tmp_path, capsys):
    root, _ = runs
    out = tmp_path / "grid.png"
    argv = ["draw", str(root / kind / f"{kind}.pt"), "a large green star above a small red circle", "--n", "3",
            "--out", str(out), "--clip", str(root / "dalle" / "clip.pt")]
    assert main(argv) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (128, 3 * 128 + 2 * 2, 3)
    scores = [float(s) for s in capsys.readouterr().out.split("best first: ")[1].split("\n")[0].split()]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert main(argv) == 0
    assert np.array_equal(np.asarray(Image.open(out)), grid)  # seeded: the same pictures again


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minivlm: error: "), err
    return err[0]


def test_bad_input_is_one_line_and_status_2(runs, tmp_path, capsys):
    root, _ = runs
    dalle = str(root / "dalle" / "dalle.pt")
    assert main(["draw", dalle, "a large golden star", "--out", str(tmp_path / "g.png")]) == 2
    assert "unknown word 'golden'" in _error(capsys)
    assert main(["draw", dalle, " ".join(["a large red star"] * 4), "--out", str(tmp_path / "g.png")]) == 2
    assert "more than max_len=14" in _error(capsys)
    assert main(["draw", str(root / "dalle" / "clip.pt"), "a large red star"]) == 2
    assert "holds a 'clip' model, expected 'dalle' or 'cm3'" in _error(capsys)
    assert main(["eval", "dalle", str(root / "cm3" / "cm3.pt")]) == 2
    assert "holds a 'cm3' model, expected 'dalle'" in _error(capsys)
    lonely = tmp_path / "dalle.pt"
    lonely.write_bytes((root / "dalle" / "dalle.pt").read_bytes())
    assert main(["draw", str(lonely), "a large red star"]) == 2
    assert "no vq.pt beside" in _error(capsys)
    shutil.copyfile(root / "dalle" / "judge.pt", tmp_path / "judge.pt")  # --vq's judge is looked for before it is read
    assert main(["train", "cm3", "--steps", "1", "--vq", str(lonely), "--out", str(tmp_path / "x")]) == 2
    assert "holds a 'dalle' model, expected 'vq'" in _error(capsys)
    truncated = tmp_path / "cut" / "cm3.pt"
    truncated.parent.mkdir()
    truncated.write_bytes((root / "cm3" / "cm3.pt").read_bytes()[:1000])
    assert main(["draw", str(truncated), "a large red star"]) == 2
    assert "not a readable torch checkpoint" in _error(capsys)
