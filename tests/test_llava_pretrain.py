"""LLaVA's optional text-only LM pretraining (`LLaVARecipe.lm_steps`): the blank-image loss against a layout written
out by hand, the pretrained LM is what stage 1 starts from and leaves untouched, lm_steps = 0 is the recipe as it
was, bad values are refused."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from minivlm.data import instruction_tokenizer, make_vqa
from minivlm.models.clip import CLIP
from minivlm.models.lm import CausalLM
from minivlm.models.llava import LLaVA
from minivlm.recipes.llava import (BlankImage, LLaVARecipe, _stage_configs, llava_config, pretrain_llava_lm,
                                   train_llava, vqa_batches)
from minivlm.train import TrainConfig, build, fit, scenes_for

N = 16  # visual tokens: (32 / 8)² patches
BUDGET = TrainConfig(steps=4, batch_size=8, lr=1e-3, seed=0, device="cpu")  # stage 1: 1 step, stage 2: 3


@pytest.fixture(scope="module")
def tok():
    return instruction_tokenizer()


@pytest.fixture(scope="module")
def clip(tiny_cfg):
    return build(CLIP, tiny_cfg, seed=0)


def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_blank_image_loss_is_the_lm_loss_on_the_text_at_the_splice_positions(tiny_cfg, tok):
    data = make_vqa(n=8, seed="test-llava-pretrain", tokenizer=tok)
    tokens = data.tokens[:, :int((data.tokens != tok.pad_id).sum(1).max())]  # (B, T)
    lm = build(CausalLM, llava_config(tiny_cfg, tok).lm, seed=0)
    with torch.no_grad():
        lm.pos.normal_(generator=torch.Generator().manual_seed(1))  # positions that matter: a shift would show
    # by hand: <bos>, N zero embeddings where <image> was, then the rest; the words from the second on are targets,
    # the first word after the image predicted from the last blank slot
    total, count = 0.0, 0
    for row in tokens:
        p = int((row == tok.image_id).nonzero())
        seq = torch.cat([lm.tok(row[:p]), torch.zeros(N, lm.cfg.dim), lm.tok(row[p + 1:])])  # (T - 1 + N, D)
        logits = lm.decode(seq[None])[0]  # (T - 1 + N, V)
        for i in range(len(row)):
            if i == p or i == 0 or row[i] == tok.pad_id:
                continue  # <image> is no word to predict, <bos> has nothing before it
            at = i - 1 if i < p else i + N - 2  # the output that predicts word i (p + 1: the last blank slot)
            total += F.cross_entropy(logits[at][None], row[i][None], reduction="sum")
            count += 1
    expected = total / count
    got = BlankImage(lm, N, tok.image_id).loss(tokens)
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)


def test_pretrained_lm_is_what_stage_1_starts_from_and_leaves_untouched(clip, tok):
    seen = {}
    _, _, stats = train_llava(BUDGET, clip, tok, LLaVARecipe(lm_steps=2),
                              stage1_eval=lambda m: seen.update(lm=_state(m.lm)) or {})
    assert stats["lm_pretrain_steps"] == 2 and stats["lm_pretrain_seconds"] > 0 and stats["lm_loss"] > 0
    # the reference: the same pretraining, called on its own on the same text (both stages' exchanges)
    cfg1, cfg2 = _stage_configs(BUDGET, LLaVARecipe.stage1_frac)
    recipe = LLaVARecipe()
    texts = torch.cat([make_vqa(scenes_for(cfg1, recipe.n_stage1), 0, tok, kinds=("describe",)).tokens,
                       make_vqa(scenes_for(cfg2, recipe.n_stage2), 0, tok).tokens])
    config = llava_config(clip.cfg, tok)
    lm, hist = pretrain_llava_lm(TrainConfig(steps=2, batch_size=8, seed=0, device="cpu"), config, texts)
    assert len(hist.steps) == 2
    assert _same(seen["lm"], _state(lm))  # stage 1 ended with the pretrained LM, unchanged
    assert not _same(seen["lm"], _state(build(CausalLM, config.lm, seed=0)))  # the pretraining moved it
    assert not _same(seen["lm"], _state(build(LLaVA, config, seed=0).lm))  # not what stage 1 starts from without


def test_a_budget_shorter_than_lm_steps_pretrains_a_tenth_of_it(clip, tok):
    _, _, stats = train_llava(BUDGET, clip, tok, LLaVARecipe(lm_steps=300))
    assert stats["lm_pretrain_steps"] == 1  # max(1, 4 // 10): a smoke test stays short, as Flamingo's


def test_lm_steps_0_is_the_recipe_as_it_was(clip, tok):
    assert LLaVARecipe().lm_steps == 0
    model, hist, stats = train_llava(BUDGET, clip, tok, LLaVARecipe(lm_steps=0))
    assert set(stats) == {"stage1_seconds", "stage2_seconds"}  # no pretraining, nothing recorded of one
    # the reference: the two stages as the recipe trained them before the option, written out
    recipe = LLaVARecipe()
    cfg1, cfg2 = _stage_configs(BUDGET, recipe.stage1_frac)
    stage1 = make_vqa(scenes_for(cfg1, recipe.n_stage1), 0, tok, kinds=("describe",))
    stage2 = make_vqa(scenes_for(cfg2, recipe.n_stage2), 0, tok)
    ref = build(LLaVA, llava_config(clip.cfg, tok), seed=0)
    ref.vision.load_state_dict(clip.visual.state_dict())
    gen = torch.Generator().manual_seed(0)
    ref.set_stage(1)
    loss1 = fit(ref, vqa_batches(stage1, cfg1.batch_size, gen, torch.device("cpu")), cfg1).steps
    ref.set_stage(2)
    loss2 = fit(ref, vqa_batches(stage2, cfg2.batch_size, gen, torch.device("cpu")), cfg2).steps
    assert [r["loss"] for r in hist.steps] == [r["loss"] for r in loss1 + loss2]
    assert _same(_state(model), _state(ref))


@pytest.mark.parametrize("bad", [-1, 2.5, True, "300"])
def test_bad_lm_steps_are_refused(bad):
    with pytest.raises(ValueError, match=rf"lm_steps: expected a whole number of steps >= 0 \(0: no pretraining\), "
                                         rf"got {bad!r}"):
        LLaVARecipe(lm_steps=bad)
    with pytest.raises(ValueError, match="lm_steps"):
        dataclasses.replace(LLaVARecipe(), lm_steps=bad)
