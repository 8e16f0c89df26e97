"""GATED XATTN-DENSE (Flamingo, Fig. 4) and the image-causal mask (Sec. 2.3): the identity at init, so a frozen LM
with such blocks gives its own logits bit for bit; gates that open; gradients (gradcheck, and at alpha = 0); the
mask by hand, against NumPy, and its effect: no token reads an image other than its last preceding one."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.attention import attention, causal_mask
from minivlm.concepts.gated_xattn import GatedCrossAttentionBlock, gated_residual, media_mask, media_mask_np
from minivlm.models.lm import CausalLM, LMConfig

IMG, R, D, DV = 9, 2, 16, 12


def _block(init_gate=0.0, seed=0) -> GatedCrossAttentionBlock:
    torch.manual_seed(seed)
    return GatedCrossAttentionBlock(D, heads=4, visual_dim=DV, init_gate=init_gate)


def _tokens():
    """Row 0: two text tokens, an image, text, a second image, text. Row 1: one image at the start. Row 2: none."""
    return torch.tensor([[1, 5, IMG, 6, 7, IMG, 8],
                         [IMG, 5, 6, 7, 8, 3, 3],
                         [1, 5, 6, 7, 8, 3, 3]])


def test_media_mask_by_hand():
    mask = media_mask(_tokens(), IMG, R)
    assert mask.shape == (3, 1, 7, 2 * R) and mask.dtype == torch.bool
    image = lambda i: [j // R == i for j in range(2 * R)]
    none = [False] * (2 * R)
    assert mask[0, 0].tolist() == [none, none, image(0), image(0), image(0), image(1), image(1)]
    assert mask[1, 0].tolist() == [image(0)] * 7  # the placeholder sees its own image
    assert not mask[2].any()


@pytest.mark.parametrize("n_images", [None, 0, 1, 3])
def test_media_mask_agrees_with_numpy_for_0_1_or_3_images(n_images):
    tokens = torch.randint(1, 8, (4, 10), generator=torch.Generator().manual_seed(0))
    tokens[0, [1, 4, 8]] = IMG  # 3 images
    tokens[1, 0] = IMG  # 1 image
    if n_images is not None and n_images < 3:
        tokens[tokens == IMG] = 1
        tokens[1, 0] = IMG if n_images == 1 else 1
    mask = media_mask(tokens, IMG, R, n_images)
    M = 3 if n_images is None else n_images
    assert mask.shape == (4, 1, 10, M * R)
    assert np.array_equal(mask.numpy(), media_mask_np(tokens.numpy(), IMG, R, M))
    assert (mask.sum(-1) <= R).all()  # never more than one image


def test_media_mask_refuses_bad_inputs():
    with pytest.raises(ValueError, match=r"n_images: a row holds 2 <image> placeholders \(id 9\), got n_images=1"):
        media_mask(_tokens(), IMG, R, n_images=1)
    with pytest.raises(ValueError, match=r"tokens: expected \(B, T\) int, got \(7,\) torch.int64"):
        media_mask(_tokens()[0], IMG, R)
    with pytest.raises(ValueError, match=r"n_latents: expected > 0, got 0"):
        media_mask(_tokens(), IMG, 0)


def test_block_at_init_is_exactly_the_identity():
    block = _block()
    y, x = torch.randn(3, 7, D), torch.randn(3, 2 * R, DV)
    assert torch.equal(block(y, x, media_mask(_tokens(), IMG, R)), y)
    assert torch.equal(block(y, x), y)
    assert block.gates() == {"xattn": 0.0, "dense": 0.0}


def test_frozen_lm_with_gated_blocks_at_init_gives_its_own_logits():
    torch.manual_seed(0)
    lm = CausalLM(LMConfig(vocab_size=12, max_len=8, dim=D, layers=2, heads=4)).eval()
    gated = [_block(seed=i) for i in range(2)]
    tokens = _tokens()
    visual = torch.randn(3, 2 * R, DV)
    vmask = media_mask(tokens, IMG, R)
    x = lm.tok(tokens) + lm.pos[:, :7]
    for g, block in zip(gated, lm.blocks):  # Fig. 4: the gated block before each frozen LM block
        x = block(g(x, visual, vmask), causal_mask(7))
    logits = F.linear(lm.ln(x), lm.tok.weight)
    assert torch.equal(logits, lm(tokens))


def test_open_gates_change_the_output_and_are_reported():
    block = _block(init_gate=0.5)
    y, x = torch.randn(3, 7, D), torch.randn(3, 2 * R, DV)
    assert not torch.allclose(block(y, x, media_mask(_tokens(), IMG, R)), y)
    assert block.gates() == pytest.approx({"xattn": math.tanh(0.5), "dense": math.tanh(0.5)})
    torch.testing.assert_close(gated_residual(y, x[:, :1, :1], torch.tensor(0.3)), y + math.tanh(0.3) * x[:, :1, :1])


def test_at_alpha_zero_gradients_reach_the_gates_but_not_the_branches():
    block = _block()
    y, x = torch.randn(3, 7, D), torch.randn(3, 2 * R, DV)
    block(y, x, media_mask(_tokens(), IMG, R)).square().sum().backward()
    assert block.alpha_xattn.grad.abs() > 0 and block.alpha_dense.grad.abs() > 0
    assert torch.equal(block.xattn.q.weight.grad, torch.zeros(D, D))
    assert torch.equal(block.dense[0].weight.grad, torch.zeros(4 * D, D))


def test_cross_attention_is_plain_attention_where_a_token_sees_an_image_and_zero_elsewhere():
    block = _block(init_gate=1.0)
    y, x = torch.randn(3, 7, D), torch.randn(3, 2 * R, DV)
    mask = media_mask(_tokens(), IMG, R)
    got = block.cross_attend(y, x, mask)
    a = block.xattn
    q = a.q(block.ln_xattn(y)).reshape(3, 7, 4, 4).transpose(1, 2)
    k, v = a.kv(x).reshape(3, 2 * R, 2, 4, 4).permute(2, 0, 3, 1, 4)
    expected = a.out(attention(q, k, v, mask).transpose(1, 2).reshape(3, 7, D))  # NaN on the rows that see nothing
    sees = mask[:, 0].any(-1)
    torch.testing.assert_close(got[sees], expected[sees])
    assert torch.equal(got[~sees], torch.zeros(int((~sees).sum()), D))
    assert torch.isfinite(block(y, x, mask)).all()


def test_each_token_reads_only_its_last_preceding_image():
    block = _block(init_gate=1.0)
    tokens = _tokens()
    mask = media_mask(tokens, IMG, R)
    y, x = torch.randn(3, 7, D), torch.randn(3, 2 * R, DV)
    out = block(y, x, mask)
    first_changed = x.clone()
    first_changed[:, :R] = torch.randn(3, R, DV)  # a different first image in every row
    other = block(y, first_changed, mask)
    assert torch.equal(other[0, 5:], out[0, 5:])  # after the second image: the first one is not seen
    assert not torch.allclose(other[0, 2:5], out[0, 2:5])  # between the two: it is
    anything = block(y, torch.randn(3, 2 * R, DV) * 10, mask)
    assert torch.equal(anything[0, :2], out[0, :2]) and torch.equal(anything[2], out[2])  # before any image
    no_images = block(y, torch.zeros(3, 0, DV), media_mask(tokens[2:], IMG, R).expand(3, -1, -1, -1))
    torch.testing.assert_close(no_images[2], out[2], atol=0, rtol=0)  # no image in the batch: the dense branch only


def test_gradcheck_in_float64():
    block = _block(init_gate=0.4).double()
    mask = media_mask(_tokens()[:2, :5], IMG, R, n_images=2)  # row 0: two tokens that see nothing
    y = torch.randn(2, 5, D, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 2 * R, DV, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y, x: block(y, x, mask), (y, x))


@pytest.mark.parametrize("y, x, mask, message", [
    ((3, 7, 8), (3, 4, DV), None, r"y: expected \(B, T, 16\) float, got \(3, 7, 8\) torch.float32"),
    ((3, 7, D), (2, 4, DV), None, r"x: expected \(B, M\*R, 12\) torch.float32 with B = 3, got \(2, 4, 12\)"),
    ((3, 7, D), (3, 4, D), None, r"x: expected \(B, M\*R, 12\) .*got \(3, 4, 16\)"),
    ((3, 7, D), (3, 4, DV), (3, 1, 7, 6),
     r"mask: expected \(B, 1, T, M\*R\) torch.bool with B = 3, T = 7, M\*R = 4, got \(3, 1, 7, 6\) torch.bool "
     r"\(as media_mask gives\)"),
    ((3, 7, D), (3, 4, DV), (3, 7, 4), r"mask: expected \(B, 1, T, M\*R\) torch.bool .* got \(3, 7, 4\)"),
])
def test_bad_inputs_are_refused(y, x, mask, message):
    with pytest.raises(ValueError, match=message):
        _block()(torch.zeros(y), torch.zeros(x), None if mask is None else torch.ones(mask, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask: expected \(B, 1, T, M\*R\) torch.bool with B = 3, T = 7, M\*R = 4, "
                                         r"got \(3, 1, 7, 4\) torch.float32"):
        _block()(torch.zeros(3, 7, D), torch.zeros(3, 4, DV), torch.ones(3, 1, 7, 4))
