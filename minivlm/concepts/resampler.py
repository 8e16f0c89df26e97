"""Flamingo's Perceiver Resampler (Alayrac et al. 2022, Sec. 2.1, Fig. 5 and Appendix A.1.1): any number of
visual features in, a fixed number R of visual tokens out.

R learned latents are the queries. At each layer they read, through attention, the visual features of all T
frames (a time embedding added to each frame, then flattened to T·S tokens) *and themselves*: the keys and values
are concat([x_f, latents]). A feed-forward follows, both pre-LN with residuals; a final LayerNorm. The output is
(B, R, D) whatever T and S were, so the language model's cross-attention always sees R tokens per image.

Not the paper's, off by default: `positions` > 0 makes it position-aware, like Qwen-VL's adapter (Bai et al. 2023,
Sec. 2.1, which puts 2-D sin-cos codes on its resampler's queries and keys). With R = S latents laid on the S-cell
patch grid, a code of each cell (concepts/positions.py) is added to every head's queries (latent r: cell r) and
keys (a patch: its cell, in every frame; latent r: cell r). From the first step each latent then reads mostly its
own cell and the cells next to it, instead of an even average of the whole image, so two objects in different
places stay in different latents; content still moves the attention as it trains.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from minivlm.concepts.attention import MultiHeadAttention, attention_np
from minivlm.concepts.positions import sincos_2d
from minivlm.concepts.validate import check_divides, check_positive, check_tensor


def resampler_attention_np(x_f: np.ndarray, latents: np.ndarray, w_q: np.ndarray, w_k: np.ndarray,
                           w_v: np.ndarray, w_o: np.ndarray, heads: int = 1, q_pos: np.ndarray | None = None,
                           k_pos: np.ndarray | None = None) -> np.ndarray:
    """The update `attention(q=x, kv=concat([x_f, x]))` of one layer of Fig. 5 in NumPy, multi-head, without
    LayerNorm or biases: x_f (N, D) flattened features, latents x (R, D), weights (D, D) used as `x @ w` -> (R, D).
    Position-aware: q_pos (R, D/H) and k_pos (N + R, D/H) added to every head's queries and keys."""
    kv = np.concatenate([x_f, latents], axis=0)  # (N + R, D)
    split = lambda x: x.reshape(len(x), heads, -1).transpose(1, 0, 2)  # (L, D) -> (H, L, D/H)
    q, k = split(latents @ w_q), split(kv @ w_k)  # (H, R, D/H), (H, N + R, D/H)
    if q_pos is not None:
        q, k = q + q_pos, k + k_pos  # (H, R, D/H), (H, N + R, D/H)
    y = attention_np(q, k, split(kv @ w_v))  # (H, R, D/H)
    return y.transpose(1, 0, 2).reshape(len(latents), -1) @ w_o  # (R, D)


class PerceiverLayer(nn.Module):
    """One layer of Fig. 5: latents + Attn(q=LN(latents), kv=concat([LN(x_f), LN(latents)])), then
    latents + MLP(LN(latents)). The features have their own LayerNorm; they are not updated."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.ln_media, self.ln_latents, self.ln_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x_f: torch.Tensor, latents: torch.Tensor, q_pos: torch.Tensor | None = None,
                k_pos: torch.Tensor | None = None) -> torch.Tensor:
        q = self.ln_latents(latents)  # (B, R, D)
        kv = torch.cat([self.ln_media(x_f), q], dim=1)  # (B, T*S + R, D): the latents read themselves too
        latents = latents + self.attn(q, kv, q_pos=q_pos, k_pos=k_pos)  # (B, R, D)
        return latents + self.mlp(self.ln_mlp(latents))  # (B, R, D)


class PerceiverResampler(nn.Module):
    """(B, T, S, D) features of T frames of S patch tokens each -> (B, R, D) visual tokens (Fig. 5).

    A single image is T = 1. Set `keep_weights = True` to keep each layer's attention map; `attention_maps()` then
    gives them, (B, H, R, T*S + R) per layer, the last R columns being the latents' attention to themselves.
    """

    def __init__(self, dim: int, depth: int = 2, latents: int = 8, heads: int = 4, max_frames: int = 1,
                 mlp_ratio: int = 4, positions: float = 0.0):
        super().__init__()
        for name, value in (("depth", depth), ("latents", latents), ("max_frames", max_frames)):
            check_positive(name, value)
        check_divides("heads", heads, "dim", dim)
        grid = math.isqrt(latents)
        if positions and (grid * grid != latents or dim % heads or (dim // heads) % 4):
            raise ValueError(f"positions: a position-aware resampler needs a square number of latents (one per "
                             f"patch) and dim / heads a multiple of 4, got latents={latents}, dim={dim}, heads={heads}")
        self.dim, self.max_frames = dim, max_frames
        code = sincos_2d(grid, dim // heads) * positions if positions else None  # (R, D/H): cell r
        self.register_buffer("grid_code", code, persistent=False)  # a function of the settings: not saved
        self.time = nn.Parameter(torch.randn(max_frames, 1, dim) * 0.02)  # (T_max, 1, D): broadcast over S
        self.latents = nn.Parameter(torch.randn(latents, dim) * 0.02)  # (R, D): the learned queries
        self.layers = nn.ModuleList(PerceiverLayer(dim, heads, mlp_ratio) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)

    @property
    def keep_weights(self) -> bool:
        return self.layers[0].attn.keep_weights

    @keep_weights.setter
    def keep_weights(self, keep: bool) -> None:
        for layer in self.layers:
            layer.attn.keep_weights, layer.attn.last_weights = keep, None

    def attention_maps(self) -> list[torch.Tensor]:
        """The attention weights of the last forward, one (B, H, R, T*S + R) tensor per layer."""
        if not self.keep_weights or self.layers[0].attn.last_weights is None:
            raise ValueError("keep_weights: set `keep_weights = True` and run a forward pass first")
        return [layer.attn.last_weights for layer in self.layers]

    def forward(self, x_f: torch.Tensor) -> torch.Tensor:
        B, T, S = check_tensor("x_f", x_f, ("B", "T", "S", self.dim), "float").values()
        D = self.dim
        if T > self.max_frames:
            raise ValueError(f"x_f: expected T <= max_frames={self.max_frames} frames, got T={T}")
        q_pos = k_pos = None
        if self.grid_code is not None:
            R = len(self.grid_code)
            if S != R:
                raise ValueError(f"x_f: a position-aware resampler of {R} latents needs S = {R} patches, got S={S}")
            q_pos = self.grid_code  # (R, D/H)
            k_pos = torch.cat([self.grid_code.repeat(T, 1), self.grid_code])  # (T*S + R, D/H)
        x_f = (x_f + self.time[:T]).reshape(B, T * S, D)  # (B, T*S, D)
        latents = self.latents.expand(B, -1, -1)  # (B, R, D)
        for layer in self.layers:
            latents = layer(x_f, latents, q_pos, k_pos)  # (B, R, D)
        return self.ln(latents)  # (B, R, D)
