"""Grader for lessons/exercises/flamingo.py (Flamingo, Alayrac et al. 2022): `resampler_attention` against the
package's MultiHeadAttention run on the student's weights (Fig. 5), `gated_residual` and `media_mask` against
minivlm.concepts.gated_xattn (Fig. 4, Sec. 2.3), and `gated_cross_attention`, the two together: a text token that
sees no image must get y back bit for bit, its update exactly 0 (seen with y = 0 there, where no rounding into y can
hide a leak), and send no gradient (zeros, not NaN) to the visual tokens. Every case is valid input; only values,
shapes, dtypes and gradients are graded."""
from __future__ import annotations

import torch
from torch.func import functional_call

from minivlm.check import compare, compare_grads
from minivlm.concepts.attention import MultiHeadAttention, attention
from minivlm.concepts.gated_xattn import gated_residual, media_mask

LESSON = "lessons/07_flamingo.md"
FUNCTIONS = ("resampler_attention", "gated_residual", "media_mask", "gated_cross_attention")
# torch's fused attention, which would also hide what a fully masked row gives
FORBIDDEN = ("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")
IMAGE_ID = 4
EXACT = dict(atol=0.0, rtol=0.0)
# text before the first image, two images; a row with no image; the placeholder first (B, T) = (3, 7)
DOCUMENTS = [[1, 5, IMAGE_ID, 6, 7, IMAGE_ID, 8], [1, 5, 6, 7, 8, 9, 10], [IMAGE_ID, 5, 6, IMAGE_ID, 8, 9, 10]]


def _reference_attention(x_f, latents, w_q, w_k, w_v, w_o, heads):
    """attention(q=x, kv=concat([x_f, x])) with weights used as `x @ w`: a MultiHeadAttention without biases."""
    D = latents.shape[-1]
    zeros = torch.zeros(D, dtype=latents.dtype)
    params = {"q.weight": w_q.T, "q.bias": zeros, "kv.weight": torch.cat([w_k, w_v], dim=1).T,
              "kv.bias": torch.cat([zeros, zeros]), "out.weight": w_o.T, "out.bias": zeros}
    return functional_call(MultiHeadAttention(D, heads), params, (latents, torch.cat([x_f, latents], dim=1)))


def _resampler(seed, B, N, R, D, heads, grads=False):
    def check(student):
        g = torch.Generator().manual_seed(seed)
        x_f, latents = torch.randn(B, N, D, generator=g), torch.randn(B, R, D, generator=g)  # (B, N, D), (B, R, D)
        w = {name: torch.randn(D, D, generator=g) / D ** 0.5 for name in ("w_q", "w_k", "w_v", "w_o")}
        inputs = {"x_f": x_f, "latents": latents, **w}
        compare(_reference_attention(*inputs.values(), heads), student.resampler_attention(*inputs.values(), heads),
                what="resampler_attention")
        if grads:
            compare_grads(_reference_attention, student.resampler_attention, inputs, heads)
    return check


def _gate(seed, alpha, grads=False):
    def check(student):
        g = torch.Generator().manual_seed(seed)
        y, update = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)  # (B, T, D)
        alpha_ = torch.tensor(alpha)
        exact = EXACT if alpha == 0 else {}  # at alpha = 0 the block is the identity, bit for bit
        compare(gated_residual(y, update, alpha_), student.gated_residual(y, update, alpha_), what="gated_residual",
                **exact)
        if grads:
            compare_grads(gated_residual, student.gated_residual, {"y": y, "update": update, "alpha": alpha_})
    return check


def _mask(rows, R, n_images):
    def check(student):
        tokens = torch.tensor(rows)  # (B, T)
        compare(media_mask(tokens, IMAGE_ID, R, n_images), student.media_mask(tokens, IMAGE_ID, R, n_images),
                what="media_mask")
    return check


def _reference_xattn(y, x, mask, alpha):
    """y + tanh(alpha) XAttn(q=y, kv=x), one head, no LayerNorm or projections; exactly y at a token whose mask row
    is all False (as GatedCrossAttentionBlock.cross_attend: let it see every key, then zero its update)."""
    sees = mask.any(dim=-1, keepdim=True)  # (B, 1, T, 1)
    update = attention(y[:, None], x[:, None], x[:, None], mask | ~sees)[:, 0]  # (B, T, D)
    return gated_residual(y, update.masked_fill(~sees[:, 0], 0.0), alpha)  # (B, T, D)


def _xattn_inputs(seed, R, D=8):
    """Text y (B, T, D), visual tokens x (B, 2R, D) of two images, the package's mask, a gate alpha = 0.7."""
    tokens = torch.tensor(DOCUMENTS)  # (B, T)
    g = torch.Generator().manual_seed(seed)
    y, x = torch.randn(*tokens.shape, D, generator=g), torch.randn(len(tokens), 2 * R, D, generator=g)
    return tokens, y, x, media_mask(tokens, IMAGE_ID, R, 2), torch.tensor(0.7)


def _xattn(seed, R):
    def check(student):
        tokens, y, x, mask, alpha = _xattn_inputs(seed, R)
        compare(_reference_xattn(y, x, mask, alpha), student.gated_cross_attention(y, x, mask, alpha),
                what="gated_cross_attention")
        compare_grads(_reference_xattn, student.gated_cross_attention, {"y": y, "x": x}, mask, alpha)
    return check


def _blind_tokens(seed, R):
    """The tokens that see no image (before the first <image>, or in a row without one) get y, bit for bit."""
    def check(student):
        tokens, y, x, mask, alpha = _xattn_inputs(seed, R)
        blind = ~mask.any(dim=-1)[:, 0]  # (B, T)
        got = student.gated_cross_attention(y, x, mask, alpha)
        if not isinstance(got, torch.Tensor) or got.shape != y.shape:
            compare(y, got, what="gated_cross_attention")  # says what came instead of a (B, T, D) tensor
        compare(y[blind], got[blind], what="output of the tokens that see no image (y exactly)", **EXACT)
        compare(_reference_xattn(y, x, mask, alpha), got, what="gated_cross_attention")
    return check


def _blind_updates(seed, R):
    """With y = 0 at the tokens that see no image, their output is tanh(alpha) * update alone: it must be exactly 0.
    A tiny leak (an epsilon added for safety, say) is lost in rounding when added to y, and shows here."""
    def check(student):
        tokens, y, x, mask, alpha = _xattn_inputs(seed, R)
        blind = ~mask.any(dim=-1)[:, 0]  # (B, T)
        y = y.masked_fill(blind[..., None], 0.0)  # (B, T, D)
        got = student.gated_cross_attention(y, x, mask, alpha)
        if not isinstance(got, torch.Tensor) or got.shape != y.shape:
            compare(y, got, what="gated_cross_attention")  # says what came instead of a (B, T, D) tensor
        compare(torch.zeros_like(y[blind]), got[blind],
                what="cross-attention update of the tokens that see no image, with y = 0 there (exactly 0)", **EXACT)
    return check


def _blind_gradients(seed, R):
    """From the tokens that see no image, exactly no gradient reaches x, and y's own comes back unchanged."""
    def check(student):
        tokens, y, x, mask, alpha = _xattn_inputs(seed, R)
        blind = ~mask.any(dim=-1)[:, 0]  # (B, T)
        y, x = y.clone().requires_grad_(), x.clone().requires_grad_()
        out = student.gated_cross_attention(y, x, mask, alpha)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)) * blind[..., None]
        grad_y, grad_x = torch.autograd.grad((out * weights).sum(), (y, x), allow_unused=True)
        compare(torch.zeros_like(x), torch.zeros_like(x) if grad_x is None else grad_x,
                what="gradient reaching x from the tokens that see no image (exactly 0)", **EXACT)
        compare(weights, grad_y, what="gradient of y from the tokens that see no image (the residual's alone, "
                                      "exactly: none through the cross-attention)", **EXACT)
    return check


def _mask_then_xattn(seed, R):
    """The student's media_mask into the student's gated_cross_attention: the text before the first <image> is y."""
    def check(student):
        tokens, y, x, _, alpha = _xattn_inputs(seed, R)
        out = student.gated_cross_attention(y, x, student.media_mask(tokens, IMAGE_ID, R, 2), alpha)
        compare(y[0, :2], out[0, :2], what="output of the two tokens before the first <image> (y exactly)", **EXACT)
    return check


CASES = [
    ("resampler_attention: B=2, N=6 features, R=3 latents, D=8, one head", _resampler(0, 2, 6, 3, 8, 1)),
    ("resampler_attention: 4 heads of width 2, R=5 > N=2", _resampler(1, 2, 2, 5, 8, 4)),
    ("resampler_attention: gradients of the features, latents and weights, 2 heads",
     _resampler(2, 2, 4, 3, 8, 2, grads=True)),
    ("resampler_attention: batch of 1, one feature, one latent", _resampler(3, 1, 1, 1, 4, 1)),
    ("gated_residual: alpha = 0 gives y exactly", _gate(4, 0.0)),
    ("gated_residual: alpha = 0.8", _gate(5, 0.8)),
    ("gated_residual: gradients of y, the update and alpha at alpha = -0.3", _gate(6, -0.3, grads=True)),
    ("media_mask: two images in a row, R=2, text before the first",
     _mask([[1, 5, IMAGE_ID, 6, 7, IMAGE_ID, 8]], 2, 2)),
    ("media_mask: rows with 0, 1 and 3 images, R=3",
     _mask([[1, 5, 6, 7, 8, 9], [IMAGE_ID, 5, 6, 7, 8, 9], [IMAGE_ID, 5, IMAGE_ID, IMAGE_ID, 8, 9]], 3, 3)),
    ("media_mask: more image slots than images (n_images=3), <image> last",
     _mask([[1, 5, 6, IMAGE_ID], [1, IMAGE_ID, 6, 7]], 2, 3)),
    ("media_mask: no image in the batch (n_images=0)", _mask([[1, 5, 6], [1, 7, 8]], 4, 0)),
    ("media_mask: T=1, only the placeholder, R=1", _mask([[IMAGE_ID]], 1, 1)),
    ("gated_cross_attention: 3 rows, two images, R=2, alpha = 0.7, values and gradients", _xattn(7, 2)),
    ("gated_cross_attention: a token that sees no image gets y back exactly (not NaN, not an average of the images)",
     _blind_tokens(8, 3)),
    ("gated_cross_attention: with y = 0 where a token sees no image, its output is exactly 0 (no leak, however small)",
     _blind_updates(11, 2)),
    ("gated_cross_attention: no gradient reaches the images from a token that sees none (zeros, not NaN)",
     _blind_gradients(9, 2)),
    ("media_mask then gated_cross_attention: the text before the first <image> is y exactly", _mask_then_xattn(10, 2)),
]
