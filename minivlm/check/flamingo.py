"""Grader for lessons/exercises/flamingo.py (Flamingo, Alayrac et al. 2022): `resampler_attention` against the
package's MultiHeadAttention run on the student's weights (Fig. 5), `gated_residual` and `media_mask` against
minivlm.concepts.gated_xattn (Fig. 4, Sec. 2.3). Every case is valid input; only values, shapes, dtypes and
gradients are graded."""
from __future__ import annotations

import torch
from torch.func import functional_call

from minivlm.check import compare, compare_grads
from minivlm.concepts.attention import MultiHeadAttention
from minivlm.concepts.gated_xattn import gated_residual, media_mask

LESSON = "lessons/07_flamingo.md"
FUNCTIONS = ("resampler_attention", "gated_residual", "media_mask")
IMAGE_ID = 4


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
        exact = dict(atol=0.0, rtol=0.0) if alpha == 0 else {}  # at alpha = 0 the block is the identity, bit for bit
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
]
