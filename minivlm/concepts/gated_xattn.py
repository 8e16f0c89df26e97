"""Flamingo's GATED XATTN-DENSE block (Alayrac et al. 2022, Sec. 2.2, Fig. 4) and its image-causal mask (Sec. 2.3,
Fig. 7, Appendix A.1.3).

Inserted before a frozen LM block, it lets the text tokens y read the visual tokens x:
    y = y + tanh(alpha_xattn) * XAttn(q=LN(y), kv=x)      y = y + tanh(alpha_dense) * FFW(LN(y))
With both alphas at 0, tanh(0) = 0 and the block is exactly the identity: the LM starts as it was trained.
`media_mask` lets each text token see only the R visual tokens of the last <image> at or before it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from minivlm.concepts.attention import MultiHeadAttention
from minivlm.concepts.validate import check_positive, check_tensor


def gated_residual(y: torch.Tensor, update: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """y + tanh(alpha) * update (Fig. 4), y and update (B, T, D), alpha a scalar: y itself while alpha = 0."""
    return y + torch.tanh(alpha) * update  # (B, T, D)


def media_mask_np(tokens: np.ndarray, image_id: int, n_latents: int, n_images: int) -> np.ndarray:
    """NumPy twin of `media_mask`: tokens (B, T) -> (B, 1, T, n_images * n_latents) bool."""
    seen = np.cumsum(tokens == image_id, axis=1)  # (B, T): images at or before each token
    image_of_key = np.arange(n_images * n_latents) // n_latents  # (M*R,): which image each visual token is from
    return (seen[:, :, None] - 1 == image_of_key)[:, None]  # (B, 1, T, M*R)


def media_mask(tokens: torch.Tensor, image_id: int, n_latents: int, n_images: int | None = None) -> torch.Tensor:
    """The image-causal cross-attention mask (Sec. 2.3): tokens (B, T) with <image> placeholders, visual tokens laid
    out as (B, M*R), image i's R latents at i*R..(i+1)*R-1 -> (B, 1, T, M*R) bool, True = may attend.

    Token t sees the latents of the last <image> at or before t (the placeholder sees its own image), none of an
    earlier or later one; a token before any image sees nothing. M is `n_images`, by default the most any row has.
    """
    check_tensor("tokens", tokens, "B T", "int")
    check_positive("n_latents", n_latents)
    seen = (tokens == image_id).long().cumsum(dim=1)  # (B, T): images at or before each token
    most = int(seen[:, -1].max()) if seen.numel() else 0
    n_images = most if n_images is None else n_images
    if n_images < most:
        raise ValueError(f"n_images: a row holds {most} <image> placeholders (id {image_id}), got n_images={n_images}")
    image_of_key = torch.arange(n_images * n_latents, device=tokens.device) // n_latents  # (M*R,)
    return (seen[:, :, None] - 1 == image_of_key)[:, None]  # (B, 1, T, M*R); seen = 0 matches no image


class GatedCrossAttentionBlock(nn.Module):
    """GATED XATTN-DENSE (Fig. 4): text y (B, T, D) reads visual tokens x (B, M*R, D_v) through tanh-gated cross-
    attention and a tanh-gated feed-forward. The gates alpha start at `init_gate` (0 in the paper: identity)."""

    def __init__(self, dim: int, heads: int, visual_dim: int | None = None, mlp_ratio: int = 4,
                 init_gate: float = 0.0):
        super().__init__()
        self.dim, self.visual_dim = dim, visual_dim or dim
        self.ln_xattn, self.ln_dense = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.xattn = MultiHeadAttention(dim, heads, context_dim=self.visual_dim)
        self.dense = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.alpha_xattn = nn.Parameter(torch.tensor(float(init_gate)))
        self.alpha_dense = nn.Parameter(torch.tensor(float(init_gate)))

    def gates(self) -> dict[str, float]:
        """The current gate values tanh(alpha): how much of each branch reaches the LM (0 = none)."""
        return {"xattn": torch.tanh(self.alpha_xattn).item(), "dense": torch.tanh(self.alpha_dense).item()}

    def cross_attend(self, y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The ungated XAttn(q=LN(y), kv=x) (B, T, D); exactly 0 at a token whose mask row is all False."""
        if x.shape[1] == 0:  # no image in the batch: nothing to read
            return torch.zeros_like(y)  # (B, T, D)
        if mask is None:
            return self.xattn(self.ln_xattn(y), x)  # (B, T, D)
        sees = mask.any(dim=-1, keepdim=True)  # (B, 1, T, 1): does the token see any visual token?
        # a row with no key has no softmax (NaN, or zeros in some torch versions, with NaN gradients); let it see
        # every key, then zero its output, so its value and its gradients are exactly 0
        out = self.xattn(self.ln_xattn(y), x, mask | ~sees)  # (B, T, D)
        return out.masked_fill(~sees[:, 0], 0.0)  # (B, T, D)

    def forward(self, y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """y (B, T, D) text, x (B, M*R, D_v) visual tokens, mask (B, 1, T, M*R) from `media_mask` -> (B, T, D)."""
        dims = check_tensor("y", y, ("B", "T", self.dim), "float")
        check_tensor("x", x, ("B", "M*R", self.visual_dim), y.dtype, dims=dims, empty=("M*R",))
        if mask is not None:
            check_tensor("mask", mask, ("B", 1, "T", "M*R"), torch.bool, dims=dims, empty=("M*R",),
                         hint="as media_mask gives")
        y = gated_residual(y, self.cross_attend(y, x, mask), self.alpha_xattn)  # (B, T, D)
        return gated_residual(y, self.dense(self.ln_dense(y)), self.alpha_dense)  # (B, T, D)
