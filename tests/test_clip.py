"""Toy CLIP: shapes, size, determinism, a loss that falls on a tiny batch, edge cases and bad inputs."""
import math

import pytest
import torch

import minivlm.models.clip as clip_module
from minivlm.concepts.info_nce import caption_groups
from minivlm.data import preprocess
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.recipes.clip import clip_config
from minivlm.train import build


@pytest.fixture(scope="module")
def model(tiny_cfg):
    return build(CLIP, tiny_cfg, seed=0).eval()


@pytest.fixture(scope="module")
def batch(small_data):
    """Eight pairs with eight different captions."""
    idx = [small_data.captions.index(c) for c in dict.fromkeys(small_data.captions)][:8]
    return preprocess(small_data.images[idx]), small_data.tokens[idx]


def test_output_shapes_and_unit_norm(model, tiny_cfg, small_data):
    images, tokens = preprocess(small_data.images[:3]), small_data.tokens[:5]
    with torch.no_grad():
        img, txt = model.encode_image(images), model.encode_text(tokens)
        logits = model(images, tokens)
        grid = model.visual(images, tokens=True)
    assert img.shape == (3, tiny_cfg.embed_dim) and txt.shape == (5, tiny_cfg.embed_dim)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3)) and torch.allclose(txt.norm(dim=-1), torch.ones(5))
    assert logits.shape == (3, 5)
    assert torch.allclose(logits, model.logit_scale() * img @ txt.T, atol=1e-5)
    assert grid.shape == (3, 16, tiny_cfg.vision_dim)  # (B, N, D), N = (32 / 8)^2


def test_default_config_has_about_225k_parameters(tokenizer):
    cfg = clip_config(tokenizer)
    assert cfg == CLIPConfig()  # the dataclass defaults are the recipe's model
    n = sum(p.numel() for p in CLIP(cfg).parameters())
    assert 215_000 <= n <= 235_000, n


def test_build_is_deterministic_and_leaves_global_rng_alone(tiny_cfg):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = build(CLIP, tiny_cfg, 0), build(CLIP, tiny_cfg, 0), build(CLIP, tiny_cfg, 1)
    assert torch.rand(1) == before
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["visual.pos"], sc["visual.pos"])


def test_text_embedding_ignores_padding(model, small_data):
    tokens = small_data.tokens[:16]
    longest = int((tokens != 0).sum(dim=1).max())
    with torch.no_grad():
        full, trimmed = model.encode_text(tokens), model.encode_text(tokens[:, :longest])
    assert longest < 16 and torch.allclose(full, trimmed, atol=1e-5)


def test_logit_scale_starts_at_one_over_temperature_and_is_clamped(tiny_cfg):
    m = CLIP(tiny_cfg)
    assert m.logit_scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        m.log_scale.fill_(10.0)  # exp(10) ≈ 22026
    m.logit_scale().backward()
    assert m.log_scale.grad.item() == pytest.approx(math.exp(10.0))  # past the cap, the gradient still flows
    m.after_step()  # what the trainer calls after each optimiser step (open_clip's clamp)
    assert m.logit_scale().item() == pytest.approx(100.0)
    with torch.no_grad():
        m.log_scale.fill_(-1.0)
    m.after_step()
    assert m.log_scale.item() == 0.0


def test_vision_config_is_the_vision_part_of_a_clip_config(tiny_cfg):
    from dataclasses import asdict

    from minivlm.models.clip import VisionConfig
    vision = VisionConfig.of(tiny_cfg)
    assert vision == tiny_cfg.vision and vision.grid == tiny_cfg.grid
    assert VisionConfig.of(asdict(tiny_cfg)) == vision  # an old checkpoint's whole CLIPConfig, as a dict
    assert VisionConfig.of(vision) is vision
    with pytest.raises(TypeError, match="vision: expected a VisionConfig, CLIPConfig or dict, got int"):
        VisionConfig.of(3)
    with pytest.raises(ValueError, match="patch: 5 does not divide image_size 32"):
        VisionConfig(patch=5)
    with pytest.raises(ValueError, match="heads: 3 does not divide text_dim 64"):
        CLIPConfig(heads=3, vision_dim=66)
    with pytest.raises(ValueError, match="init_temperature: expected > 0, got -0.1"):
        CLIPConfig(init_temperature=-0.1)


def test_loss_passes_groups_to_info_nce_and_defaults_to_one_hot(tiny_cfg, batch, monkeypatch):
    seen = []
    monkeypatch.setattr(clip_module, "info_nce", lambda i, t, s, groups=None: seen.append(groups) or i.sum() * 0)
    images, tokens = batch[0][:4], batch[1][:4]
    model = build(CLIP, tiny_cfg, seed=0)
    model.loss(images, tokens)
    model.loss(images, tokens, torch.tensor([0, 1, 0, 2]))
    assert seen[0] is None and seen[1].tolist() == [0, 1, 0, 2]


def test_groups_change_the_loss_when_different_texts_share_a_group(model, batch):
    """Unlike identical captions (test_info_nce), different texts grouped together, as "A left of B" and
    "B right of A" are by meaning, change the loss."""
    images, tokens = batch[0][:4], batch[1][:4]
    with torch.no_grad():
        plain, grouped = model.loss(images, tokens), model.loss(images, tokens, torch.tensor([0, 1, 0, 2]))
    assert not torch.isclose(plain, grouped)


def test_text_is_pooled_at_the_eos_token(model, small_data):
    tokens = small_data.tokens[:6]
    eos = [len(c.split()) + 1 for c in small_data.captions[:6]]  # <bos> + words, then <eos>
    text = model.text
    with torch.no_grad():
        x = text.tok(tokens) + text.pos  # (B, T, D)
        for block in text.blocks:
            x = block(x, (tokens != 0)[:, None, None, :])
        x = text.ln(x)
        assert torch.allclose(text(tokens), x[torch.arange(6), eos], atol=1e-6)
        assert not torch.allclose(text(tokens), x[:, 0], atol=1e-3)


def test_loss_falls_on_a_tiny_overfit_batch(tiny_cfg, batch):
    images, tokens = batch
    assert len(set(caption_groups(tokens).tolist())) == 8  # eight different captions
    model = build(CLIP, tiny_cfg, seed=0).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.loss(images, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(8), abs=0.5)  # chance level at initialisation
    assert losses[-1] < 0.5 * losses[0], losses[::10]  # about 0.33 here


@pytest.mark.parametrize("what", ["identical captions", "black images", "both"])
def test_loss_is_finite_at_the_clamp_for_degenerate_batches(tiny_cfg, batch, what):
    images, tokens = batch
    if what in ("identical captions", "both"):
        tokens = tokens[:1].expand(8, -1).contiguous()
    if what in ("black images", "both"):
        images = torch.full_like(images, -1.0)
    m = build(CLIP, tiny_cfg, seed=0)
    with torch.no_grad():
        m.log_scale.fill_(math.log(100.0) + 1)  # past the clamp
    loss = m.loss(images, tokens)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("images, got", [
    (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), r"got \(2, 32, 32, 3\) torch.uint8"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), r"got \(2, 3, 32, 32\) torch.uint8"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.float64), r"got \(2, 3, 32, 32\) torch.float64"),
    (torch.zeros(2, 3, 16, 16), r"got \(2, 3, 16, 16\) torch.float32"),
    (torch.zeros(2, 1, 32, 32), r"got \(2, 1, 32, 32\) torch.float32"),
    (torch.zeros(3, 32, 32), r"got \(3, 32, 32\) torch.float32"),
    (torch.zeros(0, 3, 32, 32), r"got \(0, 3, 32, 32\) torch.float32"),
], ids=["uint8 HWC", "uint8", "float64", "size", "channels", "no batch dim", "empty"])
def test_encode_image_refuses_bad_images(model, images, got):
    with pytest.raises(ValueError, match=r"images: expected \(B, 3, 32, 32\) torch.float32.*" + got):
        model.encode_image(images)


def test_encode_image_accepts_the_model_dtype(tiny_cfg, batch):
    m = build(CLIP, tiny_cfg, seed=0).double().eval()
    with torch.no_grad():
        assert m.encode_image(batch[0].double()).dtype == torch.float64


@pytest.mark.parametrize("tokens, message", [
    (torch.ones(2, 16), r"tokens: expected \(B, T\) torch.int64, got \(2, 16\) torch.float32"),
    (torch.full((2, 17), 2), r"tokens: expected \(B, T\) with T <= max_len=16, got \(2, 17\) torch.int64"),
    (torch.zeros(0, 16, dtype=torch.long), r"tokens: expected \(B, T\) torch.int64 with B >= 1, got \(0, 16\)"),
    (torch.tensor([[1, 40, 2]]), r"tokens: expected values in \[0, 37\), got 1..40"),
    (torch.tensor([[1, -1, 2]]), r"tokens: expected values in \[0, 37\), got -1..2"),
    (torch.tensor([[1, 13, 27, 0]]), "tokens: every caption needs an <eos> token"),
], ids=["float", "too long", "empty", "id too large", "negative id", "no eos"])
def test_encode_text_refuses_bad_tokens(model, tokens, message):
    with pytest.raises(ValueError, match=message):
        model.encode_text(tokens)


def test_loss_refuses_mismatched_batches(model, batch):
    images, tokens = batch
    with pytest.raises(ValueError, match=r"images, tokens: batch sizes differ \(8 vs 5\)"):
        model.loss(images, tokens[:5])
