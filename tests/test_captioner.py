"""The patch-token captioner recipe (LLaVA trained on captions only) and the caption scores every captioner
reports: which parameters train with and without CLIP, its captions are scored by meaning, a tiny run learns."""
import numpy as np
import pytest
import torch

from minivlm.data import instruction_tokenizer, preprocess
from minivlm.data.world import Obj, Scene
from minivlm.evaluate import caption_scores, references
from minivlm.models.clip import CLIP
from minivlm.recipes.captioner import PROMPT, CaptionerRecipe, describe, evaluate_captioner, train_captioner
from minivlm.recipes.clip import eval_sets
from minivlm.train import TrainConfig, build


@pytest.fixture(scope="module")
def tok():
    return instruction_tokenizer()


@pytest.fixture(scope="module")
def clip(tiny_cfg):
    return build(CLIP, tiny_cfg, seed=1)


def test_caption_scores_by_meaning_and_kind():
    one = Scene((Obj("circle", "red", "small", 8, 8, 4),))
    two = Scene((Obj("circle", "red", "small", 8, 16, 4), Obj("square", "blue", "large", 24, 16, 6)), "to the left of")
    assert references(two) == ["a small red circle to the left of a large blue square",
                               "a large blue square to the right of a small red circle"]
    s = caption_scores(["a small red circle", references(two)[1]], [one, two])
    assert s["caption_em"] == s["caption_em_1obj"] == s["caption_em_2obj"] == 1.0 and s["bleu4"] == 1.0
    s = caption_scores(["a small blue circle", "not a sentence"], [one, two])
    assert s["caption_em"] == 0.0 and s["bleu4"] == 0.0


@pytest.mark.parametrize("with_clip", [True, False])
def test_recipe_freezes_clip_or_trains_the_tower_from_scratch(tok, clip, with_clip):
    model, history = train_captioner(TrainConfig(steps=2, batch_size=8, device="cpu"), tok,
                                     clip if with_clip else None, CaptionerRecipe(n_train=64))
    assert len(history.steps) == 2 and np.isfinite(history.steps[-1]["loss"])
    assert all(p.requires_grad != with_clip for p in model.vision.parameters())
    assert all(p.requires_grad for p in (*model.projector.parameters(), *model.lm.parameters()))
    if with_clip:  # the copied tower is bit-identical to CLIP's after training
        for (name, p), q in zip(model.vision.named_parameters(), clip.visual.parameters()):
            assert torch.equal(p, q), name
    assert model.cfg.feature_layer == (-2 if with_clip else -1)  # a tower that trains uses all its layers


def test_captions_answer_the_describe_prompt_and_are_deterministic(tok, clip):
    model, _ = train_captioner(TrainConfig(steps=1, batch_size=8, device="cpu"), tok, clip, CaptionerRecipe(n_train=8))
    data = eval_sets(tok, names=("mixed",))["mixed"]
    images = data.images[:6]
    first = describe(model.eval(), images, tok, batch_size=4)
    assert first == describe(model, images, tok) and len(first) == 6
    assert first[0] == model.answer(preprocess(images[:1]), [PROMPT], tok)[0]


def test_a_short_run_learns_to_caption_single_objects(tok, clip):
    """From scratch, 60 steps on single objects: the loss halves and some single-object captions are right."""
    model, history = train_captioner(TrainConfig(steps=60, batch_size=32, lr=3e-3, device="cpu"), tok, None,
                                     CaptionerRecipe(n_train=2000, p_two=0.0))
    assert history.steps[-1]["loss"] < 0.5 * history.steps[0]["loss"]
    m = evaluate_captioner(model, tok, eval_sets(tok, names=("mixed", "heldout")))
    assert set(m) == {"caption_em", "caption_em_1obj", "caption_em_2obj", "bleu4", "heldout_em"}
    assert m["caption_em_1obj"] > 0
