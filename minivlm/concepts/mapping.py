"""The mapping network F of ClipCap (Mokady et al. 2021, Sec. 3): p_1, ..., p_k = F(CLIP(x)) turns one CLIP
image embedding into k prefix embeddings that a language model reads before the caption.

The paper has two F ("Mapping Network Architecture"): an MLP with one hidden layer (tanh), enough when the language
model is fine-tuned with it; and a transformer, for a frozen language model, whose input is the CLIP embedding
projected to a few tokens next to k learned constants: through attention the constants fetch what they need from
the image, and their outputs are the prefix.
"""
from __future__ import annotations

import torch
from torch import nn

from minivlm.concepts.attention import TransformerBlock


class MLPMapper(nn.Module):
    """F as an MLP: (B, E) CLIP embeddings -> Linear -> tanh -> Linear -> (B, k, D) prefix embeddings."""

    def __init__(self, embed_dim: int, dim: int, prefix_len: int, hidden: int | None = None):
        super().__init__()
        self.prefix_len, self.dim = prefix_len, dim
        hidden = hidden or prefix_len * dim // 2  # between E and k·D, as the paper's code sizes it
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.Tanh(), nn.Linear(hidden, prefix_len * dim))

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.mlp(embeds).reshape(len(embeds), self.prefix_len, self.dim)  # (B, k, D)


class TransformerMapper(nn.Module):
    """F as a transformer: the CLIP embedding (B, E) -> `clip_len` tokens (B, c, D), followed by k learned constants
    (k, D); bidirectional pre-LN blocks over the c + k tokens; the outputs at the constants are the prefix (B, k, D).
    Each image is mapped on its own: no token attends across the batch."""

    def __init__(self, embed_dim: int, dim: int, prefix_len: int, clip_len: int = 4, layers: int = 2,
                 heads: int = 4):
        super().__init__()
        self.clip_len, self.dim = clip_len, dim
        self.project = nn.Linear(embed_dim, clip_len * dim)
        self.constants = nn.Parameter(torch.randn(1, prefix_len, dim) * 0.02)  # the paper's "learned constant"
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        B = len(embeds)
        x = self.project(embeds).reshape(B, self.clip_len, self.dim)  # (B, c, D)
        x = torch.cat([x, self.constants.expand(B, -1, -1)], dim=1)  # (B, c + k, D)
        for block in self.blocks:
            x = block(x)  # (B, c + k, D)
        return x[:, self.clip_len:]  # (B, k, D): the constants' positions
