"""LLaVA's modality projector and how its visual tokens enter the language model's input.

The projector maps each vision patch token Z_v to a word-embedding-sized token H_v: H_v = W · Z_v, a linear layer
in LLaVA (Liu et al. 2023, Sec. 4.1, eq. 1), a 2-layer MLP with GELU in LLaVA-1.5 (Liu et al. 2023b, Sec. 3.1).
`splice` puts those N tokens where the single <image> placeholder was in the embedded prompt, and `expand` stretches
any per-token tensor (targets, loss mask) the same way, so that visual positions are never a target.
"""
from __future__ import annotations

import torch
from torch import nn

from minivlm.concepts.validate import check_positive, check_tensor

PROJECTORS = ("linear", "mlp")


class Projector(nn.Module):
    """(B, N, D_vision) patch tokens -> (B, N, D_lm) visual tokens: "linear" (LLaVA) or "mlp" (LLaVA-1.5)."""

    def __init__(self, vision_dim: int, lm_dim: int, kind: str = "mlp"):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"kind: expected one of {PROJECTORS}, got {kind!r}")
        self.net = (nn.Linear(vision_dim, lm_dim) if kind == "linear" else
                    nn.Sequential(nn.Linear(vision_dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, N, D_lm)


def image_positions(tokens: torch.Tensor, image_id: int) -> torch.Tensor:
    """tokens (B, T) -> (B,) the index of each row's <image> placeholder; a row with none or several is an error."""
    counts = (tokens == image_id).sum(dim=1)  # (B,)
    bad = (counts != 1).nonzero()
    if len(bad):
        row = int(bad[0])
        raise ValueError(f"tokens: expected exactly one <image> placeholder (id {image_id}) per row, row {row} "
                         f"has {int(counts[row])}")
    return (tokens == image_id).int().argmax(dim=1)  # (B,)


def _layout(tokens: torch.Tensor, image_id: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each of the T - 1 + N output positions reads from: (B, T-1+N) bool "is visual", the text index and
    the visual index (each clamped into range where unused)."""
    B, T = tokens.shape
    p = image_positions(tokens, image_id)[:, None]  # (B, 1)
    j = torch.arange(T - 1 + n, device=tokens.device)[None]  # (1, T-1+N)
    visual = (j >= p) & (j < p + n)  # (B, T-1+N)
    text_idx = torch.where(j < p, j, j - n + 1).clamp(0, T - 1)  # (B, T-1+N): skips the placeholder
    return visual, text_idx, (j - p).clamp(0, n - 1)


def splice(embeds: torch.Tensor, visual: torch.Tensor, tokens: torch.Tensor, image_id: int) -> torch.Tensor:
    """Token embeddings (B, T, D) with the visual tokens (B, N, D) in place of the <image> placeholder of
    tokens (B, T) -> (B, T-1+N, D), as LLaVA feeds its LM (Liu et al. 2023, Fig. 1)."""
    dims = check_tensor("embeds", embeds, "B T D", "float")
    check_tensor("visual", visual, "B N D", embeds.dtype, dims=dims)
    check_tensor("tokens", tokens, "B T", "int", dims=dims)
    is_visual, text_idx, visual_idx = _layout(tokens, image_id, visual.shape[1])
    D = embeds.shape[2]
    text = embeds.gather(1, text_idx[..., None].expand(-1, -1, D))  # (B, T-1+N, D)
    vis = visual.gather(1, visual_idx[..., None].expand(-1, -1, D))  # (B, T-1+N, D)
    return torch.where(is_visual[..., None], vis, text)  # (B, T-1+N, D)


def expand(x: torch.Tensor, tokens: torch.Tensor, image_id: int, n: int, fill) -> torch.Tensor:
    """A per-token tensor x (B, T) (target ids, a loss mask) laid out like `splice`'s output -> (B, T-1+N), with
    `fill` at the N visual positions (<pad> for targets, False for a mask: visual tokens are never predicted)."""
    dims = check_tensor("tokens", tokens, "B T", "int")
    check_tensor("x", x, "B T", dims=dims, hint="like tokens")
    check_positive("n", n)
    is_visual, text_idx, _ = _layout(tokens, image_id, n)
    return torch.where(is_visual, torch.tensor(fill, dtype=x.dtype, device=x.device), x.gather(1, text_idx))
