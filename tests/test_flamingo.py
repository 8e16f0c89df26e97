"""Flamingo: the frozen LM's logits exactly while the gates are 0, images reaching only the text after them, any
number of images and frames, which parameters train, a loss that falls on a tiny batch, determinism, greedy
generation, checkpoint round trip, bad inputs and their messages."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.gated_xattn import media_mask
from minivlm.data import make_shapes, preprocess
from minivlm.models.flamingo import Flamingo, FlamingoConfig
from minivlm.models.lm import LMConfig
from minivlm.train import TrainConfig, build, load_checkpoint, save_checkpoint

R = 4  # latents per image in these tests


@pytest.fixture(scope="module")
def cfg(tiny_cfg, tokenizer) -> FlamingoConfig:
    """The tiny CLIP's vision tower, an LM of width 32 with 2 blocks, one resampler layer, clips of up to 2 frames."""
    lm = LMConfig(vocab_size=len(tokenizer), max_len=20, dim=32, layers=2, heads=2)
    return FlamingoConfig(vision=tiny_cfg, lm=lm, latents=R, resampler_depth=1, max_frames=2, heads=2,
                          image_id=tokenizer.image_id)


@pytest.fixture(scope="module")
def open_cfg(cfg) -> FlamingoConfig:
    return dataclasses.replace(cfg, init_gate=0.1)


def _media(b: int, m: int, t: int = 1, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.randn(b, m, t, 3, size, size, generator=torch.Generator().manual_seed(seed))  # (B, M, T, 3, S, S)


def _tokens(tokenizer, *texts: str, eos: bool = True) -> torch.Tensor:
    """<bos> text <eos> (just <bos> text, a prompt, with eos=False) for texts of one length -> (B, L)."""
    return torch.tensor([tokenizer.encode(t)[:None if eos else -1] for t in texts])  # (B, L)


TWO = "a red circle <image> a blue square <image> a green star"  # <bos> at 0: <image> at 4 and 8


@pytest.mark.parametrize("m", [0, 1, 2])
def test_closed_gates_give_the_frozen_lm_exactly(cfg, tokenizer, m):
    """tanh(0) = 0: every gated block is the identity, so any images leave the LM's logits bit for bit (Sec. 2.2)."""
    model = build(Flamingo, cfg, seed=0).eval()
    tokens = _tokens(tokenizer, " ".join(["<image> a red circle"] * m + ["a star"]))
    with torch.no_grad():
        for seed in (0, 1):
            assert torch.equal(model(tokens, _media(1, m, seed=seed)), model.lm(tokens))
    assert model.gates() == [{"xattn": 0.0, "dense": 0.0}] * 2


def test_xattn_every_places_gated_blocks_before_every_kth_lm_block(cfg, tokenizer):
    model = build(Flamingo, dataclasses.replace(cfg, xattn_every=2), seed=0).eval()
    assert len(model.xattn) == 1  # before block 0 only
    tokens = _tokens(tokenizer, TWO)
    with torch.no_grad():
        assert torch.equal(model(tokens, _media(1, 2)), model.lm(tokens))
    with pytest.raises(ValueError, match=r"xattn_every: expected > 0, got 0"):
        dataclasses.replace(cfg, xattn_every=0)


def test_each_image_reaches_only_the_text_after_it(open_cfg, tokenizer):
    """Changing image 1 leaves the text before it as it was; text before any image ignores every image, although the
    dense branch changes it; image 0 changes the text after it, after image 1 too, through the LM's self-attention."""
    model = build(Flamingo, open_cfg, seed=0).eval()
    tokens = _tokens(tokenizer, TWO)
    a, b = _media(1, 2, seed=0), _media(1, 2, seed=1)
    new_first, new_second = torch.cat([b[:, :1], a[:, 1:]], 1), torch.cat([a[:, :1], b[:, 1:]], 1)
    with torch.no_grad():
        base = model(tokens, a)  # (1, 13, V)
        assert not torch.allclose(base[:, :4], model.lm(tokens)[:, :4], atol=1e-4)  # the dense branch is open
        assert torch.allclose(model(tokens, b)[:, :4], base[:, :4], atol=1e-6)  # before any image: no image matters
        later = model(tokens, new_second)
        assert torch.allclose(later[:, :8], base[:, :8], atol=1e-6) and not torch.allclose(later[:, 8:], base[:, 8:])
        earlier = model(tokens, new_first)
        assert torch.allclose(earlier[:, :4], base[:, :4], atol=1e-6)
        assert not torch.allclose(earlier[:, 4:8], base[:, 4:8]) and not torch.allclose(earlier[:, 8:], base[:, 8:])


def test_a_token_cross_attends_to_its_last_image_only(open_cfg, tokenizer):
    """The first gated block, before any self-attention mixes tokens: text after image 1 reads image 1 alone, so
    changing image 0 leaves it unchanged (Sec. 2.3, Fig. 7)."""
    model = build(Flamingo, open_cfg, seed=0).eval()
    tokens = _tokens(tokenizer, TWO)
    y = model.lm.tok(tokens) + model.lm.pos[:, :tokens.shape[1]]  # (1, 13, D)
    mask = media_mask(tokens, tokenizer.image_id, R, 2)  # (1, 1, 13, 2R)
    a = _media(1, 2, seed=0)
    b = torch.cat([_media(1, 1, seed=1), a[:, 1:]], 1)  # image 0 changed
    with torch.no_grad():
        out_a, out_b = (model.xattn[0](y, model.visual_tokens(m), mask) for m in (a, b))  # (1, 13, D) each
    assert torch.allclose(out_a[:, 8:], out_b[:, 8:], atol=1e-6) and torch.allclose(out_a[:, :4], out_b[:, :4])
    assert not torch.allclose(out_a[:, 4:8], out_b[:, 4:8])


@pytest.mark.parametrize("m, t", [(1, 1), (2, 1), (3, 1), (2, 2)], ids=["1 image", "2 images", "3 images", "2 clips"])
def test_any_number_of_images_and_frames_give_r_tokens_each(cfg, tokenizer, m, t):
    model = build(Flamingo, cfg, seed=0).eval()
    tokens = _tokens(tokenizer, " ".join(["<image> a red circle"] * m), " ".join(["a blue <image> star"] * m))
    media = _media(2, m, t)
    with torch.no_grad():
        assert model.visual_tokens(media).shape == (2, m * R, 32)
        assert model(tokens, media).shape == (2, tokens.shape[1], len(tokenizer))


def test_resampler_gives_r_tokens_whatever_the_patch_count(cfg):
    """16x16 images have 4 patches instead of 16; still R visual tokens per image."""
    model = build(Flamingo, dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, image_size=16)), 0)
    with torch.no_grad():
        assert model.visual_tokens(_media(2, 3, 2, size=16)).shape == (2, 3 * R, 32)


def test_only_the_resampler_and_gated_blocks_train(open_cfg, tokenizer):
    model = build(Flamingo, open_cfg, seed=0).train()
    assert not model.vision.training and not model.lm.training and model.resampler.training  # frozen: eval mode
    model.loss(_tokens(tokenizer, TWO), _media(1, 2)).backward()
    for name, p in model.named_parameters():
        if name.split(".")[0] in ("vision", "lm"):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name


def test_patch_positions_train_and_leave_the_frozen_lm_intact(cfg, tokenizer):
    """The recipe's learned embedding per patch position (not in the paper) is added before the resampler: it trains
    with it, and with the gates at 0 the logits are still the LM's exactly."""
    model = build(Flamingo, dataclasses.replace(cfg, patch_positions=True), seed=0)
    assert model.patch_pos.shape == ((32 // cfg.vision.patch) ** 2, cfg.vision.vision_dim)
    tokens = _tokens(tokenizer, TWO)
    with torch.no_grad():
        assert torch.equal(model.eval()(tokens, _media(1, 2)), model.lm(tokens))
    opened = build(Flamingo, dataclasses.replace(cfg, patch_positions=True, init_gate=0.1), seed=0).train()
    opened.loss(tokens, _media(1, 2)).backward()
    assert opened.patch_pos.requires_grad and opened.patch_pos.grad.abs().sum() > 0
    assert build(Flamingo, cfg, seed=0).patch_pos is None  # the paper's resampler reads the features as they are


def test_closed_gates_pass_gradients_to_the_alphas_only(cfg, tokenizer):
    """At alpha = 0, d/dW of tanh(alpha) * f_W(y) is 0 but d/dalpha = f(y): training starts by opening the gates."""
    model = build(Flamingo, cfg, seed=0).train()
    model.loss(_tokens(tokenizer, TWO), _media(1, 2)).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert (p.grad.abs().sum() > 0) == ("alpha" in name), name


@pytest.fixture(scope="module")
def batch(tokenizer):
    """8 one-image captions: <bos> <image> caption <eos>, the loss on the caption words only."""
    n, data = 8, make_shapes(n=8, seed=7, tokenizer=tokenizer)
    image = torch.full((n, 1), tokenizer.image_id)  # (n, 1)
    tokens = torch.cat([data.tokens[:, :1], image, data.tokens[:, 1:]], dim=1)  # (n, 17)
    tokens = tokens[:, :int((tokens != tokenizer.pad_id).sum(dim=1).max())]  # (n, L): no all-padding columns
    mask = torch.arange(tokens.shape[1]) >= 2  # (L,): targets after <image>
    return tokens, preprocess(data.images)[:, None, None], mask.expand_as(tokens)  # media (n, 1, 1, 3, 32, 32)


def test_loss_is_cross_entropy_on_the_masked_targets(open_cfg, batch):
    model = build(Flamingo, open_cfg, seed=0).eval()
    tokens, media, mask = batch
    with torch.no_grad():
        logits = model(tokens, media)  # (n, L, V)
        keep = mask & (tokens != 0)  # (n, L)
        pred = torch.stack([logits[b, t - 1] for b, t in keep.nonzero().tolist()])  # (K, V)
        assert torch.allclose(model.loss(tokens, media, mask), F.cross_entropy(pred, tokens[keep]), atol=1e-6)
    with pytest.raises(ValueError,
                       match=r"loss_mask: expected \(B, T\) torch.bool with B = 8, T = 15, got \(8, 15\) torch.int64"):
        model.loss(tokens, media, mask.long())


def test_loss_falls_on_a_tiny_overfit_batch(open_cfg, batch):
    """Only the resampler and gated blocks train. A random LM's tied head (std 0.02) hardly moves its logits, whatever
    its input; a trained LM's embeddings are larger, so the frozen embedding is scaled up to stand in for one."""
    model = build(Flamingo, open_cfg, seed=0).train()
    with torch.no_grad():
        model.lm.tok.weight.mul_(10)
    tokens, media, mask = batch
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.loss(tokens, media, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::6]


def test_build_is_deterministic_at_a_seed(open_cfg, tokenizer):
    one, two = build(Flamingo, open_cfg, seed=3).eval(), build(Flamingo, open_cfg, seed=3).eval()
    assert all(torch.equal(v, two.state_dict()[k]) for k, v in one.state_dict().items())
    tokens = _tokens(tokenizer, TWO)
    with torch.no_grad():
        assert torch.equal(one(tokens, _media(1, 2)), two(tokens, _media(1, 2)))
    assert not torch.equal(build(Flamingo, open_cfg, seed=4).resampler.latents, one.resampler.latents)


def test_generate_is_greedy_decoding_by_the_full_forward(open_cfg, tokenizer):
    model = build(Flamingo, open_cfg, seed=0).eval()
    tokens, media = _tokens(tokenizer, "<image> a red", "a <image> cyan", eos=False), _media(2, 1)
    out = model.generate(tokens, media, max_new_tokens=5)  # (2, 4 + n)
    assert out.shape[0] == 2 and 4 < out.shape[1] <= 9 and torch.equal(out[:, :4], tokens)
    assert not (out[:, 4:] == tokenizer.image_id).any()  # no image would follow it
    with torch.no_grad():
        for t in range(4, out.shape[1]):
            logits = model(out[:, :t], media)[:, -1]  # (2, V)
            logits[:, tokenizer.image_id] = float("-inf")
            ended = (out[:, 4:t] == tokenizer.eos_id).any(dim=1)  # (2,)
            assert torch.equal(out[:, t], logits.argmax(dim=-1).masked_fill(ended, tokenizer.pad_id))
    assert torch.equal(model.generate(tokens, media, 5), out)


def test_generate_stops_at_eos(open_cfg, tokenizer):
    model = build(Flamingo, open_cfg, seed=0).eval()
    with torch.no_grad():  # a final LayerNorm bias along <eos>'s embedding makes <eos> the argmax everywhere
        model.lm.ln.bias.copy_(100 * model.lm.tok.weight[tokenizer.eos_id])
    tokens = _tokens(tokenizer, "<image> a red", "a <image> cyan", eos=False)
    out = model.generate(tokens, _media(2, 1), max_new_tokens=5)
    assert torch.equal(out, torch.cat([tokens, torch.full((2, 1), tokenizer.eos_id)], dim=1))


def test_checkpoint_round_trip(open_cfg, tokenizer, tmp_path):
    model = build(Flamingo, open_cfg, seed=0).eval()
    with torch.no_grad():
        model.xattn[1].alpha_xattn.fill_(0.5)  # trained-looking gates survive too
    save_checkpoint(tmp_path / "flamingo.pt", model, "flamingo", open_cfg, TrainConfig(steps=1),
                    extra={"vocab": tokenizer.vocab})
    ckpt = load_checkpoint(tmp_path / "flamingo.pt", "flamingo")
    loaded_cfg = FlamingoConfig(**ckpt["model_config"])  # vision and lm come back as dicts
    assert loaded_cfg == open_cfg
    loaded = Flamingo(loaded_cfg).eval()
    loaded.load_state_dict(ckpt["state_dict"])
    tokens = _tokens(tokenizer, TWO)
    with torch.no_grad():
        assert torch.equal(loaded(tokens, _media(1, 2)), model(tokens, _media(1, 2)))
    assert loaded.gates() == model.gates() and not loaded.lm.tok.weight.requires_grad


@pytest.mark.parametrize("text, media, message", [
    (TWO, _media(1, 1), r"tokens: row 0 has 2 <image> placeholders \(id 4\), but media gives M=1 images per row"),
    ("a red circle", _media(1, 1), r"tokens: row 0 has 0 <image> placeholders \(id 4\), but media gives M=1"),
    (TWO, _media(1, 2, size=16), r"media: expected \(B, M, T, 3, 32, 32\) torch.float32, "
                                 r"got \(1, 2, 1, 3, 16, 16\) torch.float32 \(M images of T frames"),
    (TWO, _media(1, 2)[..., :16], r"media: expected .* got \(1, 2, 1, 3, 32, 16\)"),
    (TWO, _media(1, 2).double(),
     r"media: expected \(B, M, T, 3, 32, 32\) torch.float32, got \(1, 2, 1, 3, 32, 32\) torch.float64"),
    (TWO, _media(1, 2).to(torch.uint8), r"media: expected \(B, M, T, 3, 32, 32\) torch.float32, got .* torch.uint8"),
    (TWO, _media(1, 2)[:, :, 0], r"media: expected .* got \(1, 2, 3, 32, 32\)"),
    (TWO, _media(1, 2, t=0),
     r"media: expected \(B, M, T, 3, 32, 32\) torch.float32 with T >= 1, got \(1, 2, 0, 3, 32, 32\)"),
    (TWO, _media(1, 2, t=3), r"media: expected T <= max_frames=2 frames per image, got T=3"),
    (TWO, _media(2, 2), r"tokens: expected \(B, L\) torch.int64 with B = 2, got \(1, 13\)"),
    (" ".join(["a"] * 19), _media(1, 0), r"tokens: expected L <= max_len=20 \(the LM's context\), got L=21"),
], ids=["too many placeholders", "no placeholder", "image size", "not square", "float64", "uint8", "no frame axis",
        "no frames", "too many frames", "batch sizes differ", "too long"])
def test_bad_inputs_are_refused(cfg, tokenizer, text, media, message):
    model = build(Flamingo, cfg, seed=0).eval()
    with pytest.raises(ValueError, match=message):
        model(_tokens(tokenizer, text), media)


def test_bad_tokens_and_generation_requests_are_refused(cfg, tokenizer):
    model = build(Flamingo, cfg, seed=0).eval()
    tokens = _tokens(tokenizer, TWO)
    with pytest.raises(ValueError, match=rf"tokens: expected values in \[0, {len(tokenizer)}\), got 1..99"):
        model(torch.cat([tokens, torch.tensor([[99]])], dim=1), _media(1, 2))
    with pytest.raises(ValueError,
                       match=r"tokens: expected \(B, L\) torch.int64 with B = 1, got \(1, 13\) torch.float32"):
        model(tokens.float(), _media(1, 2))
    with pytest.raises(ValueError, match=r"tokens: expected L <= max_len=20 \(the LM's context\), got L=21"):
        model.generate(_tokens(tokenizer, " ".join(["a"] * 19)), _media(1, 0), 3)
    with pytest.raises(ValueError, match=r"max_new_tokens: expected > 0, got 0"):
        model.generate(tokens, _media(1, 2), 0)
