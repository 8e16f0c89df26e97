"""`python -m minivlm train llava`, `eval llava` and `ask`, through `main(argv)` (one 2-step run for the module, on
an untrained CLIP checkpoint the test writes), and their bad inputs: one line on stderr, exit status 2."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minivlm.__main__ import main
from minivlm.data import KINDS, Tokenizer
from minivlm.models.clip import CLIP
from minivlm.recipes.clip import clip_config
from minivlm.train import TrainConfig, build, save_checkpoint

QUESTION = "what colour is the circle?"
SAMPLE = str(Path(__file__).parent.parent / "data_samples" / "000.png")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-llava")
    tokenizer = Tokenizer()
    clip = build(CLIP, clip_config(tokenizer), seed=0)
    save_checkpoint(tmp / "clip.pt", clip, "clip", clip.cfg, TrainConfig(steps=1), extra={"vocab": tokenizer.vocab})
    assert main(["train", "llava", "--clip", str(tmp / "clip.pt"), "--steps", "2", "--seed", "1",
                 "--projector", "linear", "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def _err(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_train_writes_metrics_and_checkpoint(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    assert m["samples_seen"] == 2 * 128 and m["steps"] == 2 and m["seed"] == 1  # one step per stage
    assert m["stage1_seconds"] > 0 and m["stage2_seconds"] > 0
    assert m["train_seconds"] == pytest.approx(m["stage1_seconds"] + m["stage2_seconds"])
    assert 400_000 < m["params"] < 600_000
    for name in ("vqa", "vqa_heldout"):
        assert 0 <= m[f"{name}_acc"] <= 1 and list(m[f"{name}_acc_by_type"]) == list(KINDS)
    assert (trained_run / "llava.pt").is_file() and (trained_run / "curves.png").is_file()


def test_eval_reproduces_the_training_metrics(trained_run, capsys):
    assert main(["eval", "llava", str(trained_run / "llava.pt")]) == 0
    again = json.loads(capsys.readouterr().out)
    trained = json.loads((trained_run / "metrics.json").read_text())
    for key in ("vqa_acc", "vqa_acc_by_type", "vqa_heldout_acc", "stage1_seconds", "samples_seen", "params"):
        assert again[key] == trained[key], key


def test_ask_answers_a_sample_image(trained_run, capsys):
    args = ["ask", str(trained_run / "llava.pt"), SAMPLE, QUESTION]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0 and capsys.readouterr().out == first and len(first.splitlines()) == 1  # deterministic


@pytest.fixture(scope="module")
def big_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("png") / "big.png"
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(path)
    return path


def test_ask_refuses_or_resizes_an_image_of_another_size(trained_run, big_png, capsys):
    assert main(["ask", str(trained_run / "llava.pt"), str(big_png), QUESTION]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "is 48x40, expected 32x32" in err[0], err
    assert main(["ask", str(trained_run / "llava.pt"), str(big_png), QUESTION, "--resize"]) == 0


@pytest.mark.parametrize("question, flags, message", [
    ("<image> <image> what colour is the circle?", [], "prompts[0]: expected exactly one <image>"),
    ("what colour is the blob?", [], "unknown word 'blob'"),
    ("what colour is the blob?", [], "(pass --unk to map unknown words to <unk>)"),  # the flag, not unk=True
    ("what colour is the blob?", ["--unk"], None),
], ids=["two placeholders", "unknown word", "unknown word names --unk", "unknown word as <unk>"])
def test_ask_bad_questions(trained_run, capsys, question, flags, message):
    status = main(["ask", str(trained_run / "llava.pt"), SAMPLE, question, *flags])
    if message is None:
        assert status == 0 and len(capsys.readouterr().out.splitlines()) == 1
    else:
        err = _err(capsys)
        assert status == 2 and len(err) == 1 and message in err[0], err


def test_ask_refuses_a_checkpoint_of_another_kind(tmp_path, capsys):
    save_checkpoint(tmp_path / "lm.pt", build(CLIP, clip_config(Tokenizer()), 0), "lm", TrainConfig(steps=1),
                    TrainConfig(steps=1))
    assert main(["ask", str(tmp_path / "lm.pt"), SAMPLE, QUESTION]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "holds a 'lm' model, expected 'llava'" in err[0], err
