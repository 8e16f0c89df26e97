"""`python -m minivlm train clipcap`, `eval clipcap` and `caption`, run as a user runs them: one 2-step training run
on a tiny CLIP checkpoint the module makes (so no CLIP is trained here), then captions of PNG files."""
import json
from pathlib import Path

import pytest
from PIL import Image

from minivlm.__main__ import main
from minivlm.models.clip import CLIP
from minivlm.train import TrainConfig, build, save_checkpoint
from cli_run import run_cli as _run

SAMPLE = str(Path(__file__).parents[1] / "data_samples" / "000.png")
SETTING = ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em", "bleu4")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tokenizer, tiny_cfg):
    tmp = tmp_path_factory.mktemp("cli-clipcap")
    save_checkpoint(tmp / "clip.pt", build(CLIP, tiny_cfg, 0), "clip", tiny_cfg, TrainConfig(steps=1),
                    extra={"vocab": tokenizer.vocab})
    result = _run("train", "clipcap", "--steps", 2, "--clip", tmp / "clip.pt", "--prefix-len", 3, "--out", tmp / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp / "run", result


def test_train_writes_metrics_and_checkpoint(trained_run):
    out, result = trained_run
    m = json.loads((out / "metrics.json").read_text())
    for key in SETTING:
        assert 0 <= m[key] <= 1, key
    assert m["mapper"] == "mlp" and m["prefix_len"] == 3 and m["freeze_lm"] is False and m["seed"] == 0
    assert m["samples_seen"] == 2 * 128 and m["train_seconds"] > 0 and m["lm_pretrain_seconds"] == 0
    assert m["params"] > m["trainable_params"] > 403_584  # the CLIP is frozen; LM and mapper train
    assert (out / "clipcap.pt").is_file() and (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "caption_em" in result.stdout and len(m["samples"]) == 8


def test_eval_reproduces_the_training_metrics(trained_run, capsys):
    out, _ = trained_run
    assert main(["eval", "clipcap", str(out / "clipcap.pt")]) == 0
    again = json.loads(capsys.readouterr().out)
    trained = json.loads((out / "metrics.json").read_text())
    for key in SETTING + ("samples", "val_ce", "mapper", "prefix_len", "samples_seen", "params", "seed"):
        assert again[key] == trained[key], key


def test_caption_a_png_and_refuse_another_size(trained_run, tmp_path, capsys):
    ckpt = str(trained_run[0] / "clipcap.pt")
    assert main(["caption", ckpt, SAMPLE]) == 0
    first = capsys.readouterr().out
    assert main(["caption", ckpt, SAMPLE]) == 0
    assert capsys.readouterr().out == first and len(first.splitlines()) == 1  # greedy: the same caption again
    Image.new("RGB", (48, 40)).save(tmp_path / "big.png")
    assert main(["caption", ckpt, str(tmp_path / "big.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is 48x40, expected 32x32" in err[0] and "--resize" in err[0], err
    assert main(["caption", ckpt, str(tmp_path / "big.png"), "--resize"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_caption_refuses_a_missing_image_and_a_clip_checkpoint(trained_run, tmp_path, capsys):
    out = trained_run[0]
    assert main(["caption", str(out / "clipcap.pt"), str(tmp_path / "none.png")]) == 2
    assert main(["caption", str(out.parent / "clip.pt"), SAMPLE]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "image: cannot read" in err[0] and "holds a 'clip' model, expected 'clipcap'" in err[1]


def test_a_frozen_lm_is_pretrained_for_a_tenth_of_a_steps_budget(trained_run, tmp_path, capsys):
    clip = trained_run[0].parent / "clip.pt"
    assert main(["train", "clipcap", "--steps", "20", "--clip", str(clip), "--freeze-lm", "--mapper", "transformer",
                 "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["freeze_lm"] is True and m["lm_pretrain_steps"] == 2 and m["lm_pretrain_seconds"] > 0
    assert m["steps"] == 20 and m["params"] > m["trainable_params"]
