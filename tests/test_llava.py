"""LLaVA: the projector, the splice at <image> and its loss mask, which parameters train in each stage, the loss on
answer tokens only, the fixed grid code on visual tokens, deterministic answers, a loss that falls on a tiny batch,
checkpoint round trip, bad inputs."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.positions import sincos_2d
from minivlm.concepts.projector import Projector, expand, splice
from minivlm.data import instruction_tokenizer, make_vqa, preprocess
from minivlm.models.llava import LLaVA, LLaVAConfig
from minivlm.recipes.llava import llava_config, load_llava, prompts
from minivlm.train import TrainConfig, build, make_optimizer, save_checkpoint

N = 16  # visual tokens: (32 / 8)² patches


@pytest.fixture(scope="module")
def tok():
    return instruction_tokenizer()


@pytest.fixture(scope="module")
def cfg(tiny_cfg, tok) -> LLaVAConfig:
    """The tiny CLIP's vision tower and an LM of width 32, one block."""
    c = llava_config(tiny_cfg, tok)
    return dataclasses.replace(c, lm=dataclasses.replace(c.lm, dim=32, layers=1, heads=2))


@pytest.fixture(scope="module")
def data(tok):
    return make_vqa(n=16, seed="test-llava", tokenizer=tok)  # two questions of each kind


@pytest.fixture(scope="module")
def images(data):
    return preprocess(data.images)  # (16, 3, 32, 32)


def _model(cfg, stage: int) -> LLaVA:
    model = build(LLaVA, cfg, seed=0).train()
    model.set_stage(stage)
    return model


@pytest.mark.parametrize("kind, layers", [("linear", 1), ("mlp", 2)])
def test_projector_maps_vision_width_to_lm_width(kind, layers):
    proj = Projector(32, 48, kind)
    assert proj(torch.randn(2, N, 32)).shape == (2, N, 48)
    assert sum(isinstance(m, torch.nn.Linear) for m in proj.modules()) == layers
    assert any(isinstance(m, torch.nn.GELU) for m in proj.modules()) == (kind == "mlp")
    with pytest.raises(ValueError, match=r"kind: expected one of \('linear', 'mlp'\), got 'conv'"):
        Projector(32, 48, "conv")


def test_splice_puts_the_visual_tokens_at_the_placeholder_and_expands_the_mask(tok):
    tokens = tok.encode_batch(["<image> how many objects are there? one", "is there a red circle <image>? no"])
    positions = [1, 6]  # after <bos>; after "is there a red circle"
    embeds, visual = torch.randn(2, 24, 8), torch.randn(2, 3, 8)
    out = splice(embeds, visual, tokens, tok.image_id)
    assert out.shape == (2, 24 - 1 + 3, 8)
    for b, p in enumerate(positions):
        assert torch.equal(out[b], torch.cat([embeds[b, :p], visual[b], embeds[b, p + 1:]]))
    mask = tokens == tok.index["no"]  # the answer of row 1
    targets, wide = expand(tokens, tokens, tok.image_id, 3, tok.pad_id), expand(mask, tokens, tok.image_id, 3, False)
    assert wide.shape == targets.shape == (2, 26) and wide.dtype == torch.bool
    for b, p in enumerate(positions):
        assert torch.equal(targets[b], torch.cat([tokens[b, :p], torch.zeros(3, dtype=torch.long), tokens[b, p + 1:]]))
        assert not wide[b, p:p + 3].any()  # visual positions are never targets
    assert torch.equal(targets[wide], tokens[mask])  # the same answer tokens, in order


@pytest.mark.parametrize("text, count", [("how many objects are there?", 0), ("<image> <image> how many?", 2)])
def test_splice_refuses_rows_without_exactly_one_placeholder(tok, text, count):
    tokens = tok.encode_batch(["<image> how many?", text])
    with pytest.raises(ValueError, match=rf"tokens: expected exactly one <image> placeholder \(id 4\) per row, "
                                         rf"row 1 has {count}"):
        splice(torch.zeros(2, 24, 8), torch.zeros(2, 3, 8), tokens, tok.image_id)
    with pytest.raises(ValueError, match=r"tokens: expected exactly one"):
        expand(tokens, tokens, tok.image_id, 3, 0)


def test_lm_decode_is_forward_on_embeddings(cfg, data):
    lm = build(LLaVA, cfg, seed=0).lm.eval()
    tokens = data.tokens[:4, :20]
    with torch.no_grad():
        assert torch.allclose(lm.decode(lm.tok(tokens)), lm(tokens), atol=1e-6)
    with pytest.raises(ValueError, match=r"embeds: expected 0 cached \+ S <= max_len=39, got S=40"):
        lm.decode(torch.zeros(1, 40, 32))


def test_loss_is_cross_entropy_on_the_answer_tokens_only(cfg, data, images):
    model = build(LLaVA, cfg, seed=0).eval()
    tokens, mask = data.tokens, data.answer_mask
    with torch.no_grad():
        loss = model.loss(images, tokens, mask)
        logits = model.lm.decode(model.embed(images, tokens))  # (B, 24 - 1 + N, V): <image> is at index 1
    # answer token t (t > 1) sits at t - 1 + N after the splice and is predicted one position earlier
    pred = torch.cat([logits[b, t - 2 + N][None] for b, t in mask.nonzero().tolist()])
    assert torch.allclose(loss, F.cross_entropy(pred, tokens[mask]), atol=1e-6)


@pytest.mark.parametrize("stage", [1, 2])
def test_stages_train_the_right_parameters(cfg, data, images, stage):
    model = _model(cfg, stage)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, TrainConfig(steps=1))
    model.loss(images, data.tokens, data.answer_mask).backward()
    opt.step()
    trains = {"vision": False, "projector": True, "lm": stage == 2}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        assert (p.grad is not None and p.grad.abs().sum() > 0) == trains[part], name
        assert torch.equal(p, before[name]) != trains[part], name  # frozen parts stay bit-identical
    assert not model.vision.training and model.lm.training  # the frozen encoder stays in eval mode
    with pytest.raises(ValueError, match=r"stage: expected 1 \(alignment\) or 2 \(end to end\), got 3"):
        model.set_stage(3)


def test_unfrozen_vision_trains_with_the_rest(cfg, data, images):
    """The from-scratch baseline (freeze_vision=False): every parameter gets a gradient and the tower trains."""
    model = _model(dataclasses.replace(cfg, freeze_vision=False, feature_layer=-1), stage=2)
    model.loss(images, data.tokens, data.answer_mask).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.vision.training


@pytest.mark.parametrize("layer", [-1, -2])
def test_feature_layer_picks_the_vit_tokens_it_names(cfg, images, layer):
    """-1: the last block's tokens after the final LayerNorm, as CLIP pools them; -2: the block before's, raw
    (with the tiny config's one block, that is the patch embeddings plus positions)."""
    model = build(LLaVA, dataclasses.replace(cfg, feature_layer=layer), seed=0).eval()
    vit = model.vision
    x = vit.patch_embed(images) + vit.pos  # (B, N, D)
    expected = vit.ln(vit.blocks[0](x)) if layer == -1 else x
    with torch.no_grad():
        assert torch.allclose(vit(images, tokens=True, layer=layer), expected, atol=1e-6)
        tokens = make_vqa(n=16, seed="test-llava", tokenizer=instruction_tokenizer()).tokens
        visual = model.embed(images, tokens)[:, 1:1 + N]  # (B, N, D): right after <bos>
        assert torch.allclose(visual, model.projector(expected) + model.visual_pos, atol=1e-6)
    with pytest.raises(ValueError, match=r"layer: expected -1 \(last\) .. -2 \(the patch embeddings\)"):
        vit(images, tokens=True, layer=-3)
    with pytest.raises(ValueError, match="with tokens=True"):
        vit(images, layer=-2)


@pytest.mark.parametrize("scale", [0.0, 3.0])
def test_visual_positions_add_the_fixed_grid_code(cfg, data, images, scale):
    """Each visual token is the projector's output plus scale x the sin-cos code of its patch (none at 0); the code
    is a buffer the config rebuilds, never a parameter or a checkpoint entry."""
    model = build(LLaVA, dataclasses.replace(cfg, visual_positions=scale), seed=0).eval()
    with torch.no_grad():
        z = model.vision(images, tokens=True, layer=cfg.feature_layer)  # (B, N, D_vision)
        visual = model.embed(images, data.tokens)[:, 1:1 + N]  # (B, N, D): right after <bos>
    assert torch.allclose(visual, model.projector(z) + scale * sincos_2d(4, cfg.lm.dim), atol=1e-5)
    assert "visual_pos" not in model.state_dict() and all("visual_pos" not in n for n, _ in model.named_parameters())
    assert cfg.visual_positions == 3.0  # what the recipe's llava_config sets
    with pytest.raises(ValueError, match=r"visual_positions: a 2-D sin-cos code needs lm.dim a multiple of 4, "
                                         r"got 30"):
        dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, dim=30, heads=1))


def test_loss_falls_on_a_tiny_overfit_batch(cfg, data, images):
    model = _model(cfg, stage=2)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.loss(images, data.tokens, data.answer_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::6]


def test_answer_is_deterministic_and_independent_of_the_batch(cfg, tok, data, images):
    model = build(LLaVA, cfg, seed=0).eval()
    asked = prompts(data)
    answers = model.answer(images, asked, tok)
    assert answers == model.answer(images, asked, tok) and all(isinstance(a, str) for a in answers)
    assert [model.answer(images[i:i + 1], asked[i:i + 1], tok)[0] for i in (0, 5, 9)] == [answers[i] for i in (0, 5, 9)]


def test_checkpoint_round_trip(cfg, tok, data, images, tmp_path):
    model = build(LLaVA, cfg, seed=0).eval()
    save_checkpoint(tmp_path / "llava.pt", model, "llava", cfg, TrainConfig(steps=1), extra={"vocab": tok.vocab})
    loaded, tok2, _ = load_llava(tmp_path / "llava.pt")
    assert loaded.cfg == cfg and tok2.vocab == tok.vocab and tok2.max_len == 24
    assert loaded.answer(images[:4], prompts(data)[:4], tok2) == model.answer(images[:4], prompts(data)[:4], tok)


@pytest.mark.parametrize("prompt, message", [
    ("what colour is the circle?", r"prompts\[0\]: expected exactly one <image> placeholder followed by a question"),
    ("<image> <image> what colour is the circle?", r"prompts\[0\]: expected exactly one <image>"),
    ("what colour is the circle? <image>", r"prompts\[0\]: expected exactly one <image> placeholder followed by"),
    ("<image> what colour is the blob?", r"text: unknown word 'blob'.*\(pass unk=True"),
], ids=["no placeholder", "two placeholders", "placeholder last", "unknown word"])
def test_answer_refuses_bad_prompts(cfg, tok, images, prompt, message):
    model = build(LLaVA, cfg, seed=0).eval()
    with pytest.raises(ValueError, match=message):
        model.answer(images[:1], [prompt], tok)


def test_unknown_words_become_unk_when_asked(cfg, tok, images):
    model = build(LLaVA, cfg, seed=0).eval()
    assert isinstance(model.answer(images[:1], ["<image> what colour is the blob?"], tok, unk=True)[0], str)


def test_bad_images_and_masks_are_refused(cfg, tok, data, images):
    model = build(LLaVA, cfg, seed=0).eval()
    with pytest.raises(ValueError, match=r"images: expected \(B, 3, 32, 32\) torch.float32, got \(1, 3, 16, 16\)"):
        model.answer(torch.zeros(1, 3, 16, 16), ["<image> how many objects are there?"], tok)
    with pytest.raises(ValueError, match=r"prompts: expected a list of 2 strings, one per image, got 1"):
        model.answer(images[:2], ["<image> how many objects are there?"], tok)
    with pytest.raises(ValueError, match=r"answer_mask: expected \(16, 24\) torch.bool, "
                                         r"got \(16, 24\) torch.int64 \(like tokens\)"):
        model.loss(images, data.tokens, data.answer_mask.long())
    with pytest.raises(ValueError, match=r"lm: max_len=30 cannot hold 24 text tokens .* 16 visual tokens"):
        LLaVAConfig(vision=cfg.vision, lm=dataclasses.replace(cfg.lm, max_len=30))
