"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1), multi-head self/cross-attention, a pre-LN block.

softmax(Q K^T / sqrt(d) + mask) V, first in NumPy, then in torch; masks are boolean, True = may attend.
For generation, a `KVCache` keeps the keys and values of the tokens already seen, so each new token costs one
query against them instead of recomputing the whole sequence.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minivlm.concepts.validate import check_broadcasts, check_divides, check_positive, check_tensor


def attention_np(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv), mask broadcastable to (..., Tq, Tk) -> (..., Tq, dv)."""
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)  # stable softmax
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)  # (..., Tq, Tk)
    return weights @ v  # (..., Tq, dv)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              return_weights: bool = False):
    """The torch twin of `attention_np`; equals F.scaled_dot_product_attention(q, k, v, attn_mask=mask).

    A query row whose mask is all False has no defined softmax (0/0); we return NaN there, so a mask that hides
    everything from a token is noticed. F.scaled_dot_product_attention (torch >= 2.5) returns zeros there instead.
    """
    dims = check_tensor("q", q, ("...", "Tq", "d"), "float")
    check_tensor("k", k, ("...", "Tk", "d"), q.dtype, dims=dims)
    check_tensor("v", v, ("...", "Tk", "dv"), q.dtype, dims=dims)
    if mask is not None:
        check_broadcasts("mask", mask, (*dims["..."], dims["Tq"], dims["Tk"]), torch.bool)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (..., Tq, Tk)
    out = weights @ v  # (..., Tq, dv)
    return (out, weights) if return_weights else out


def causal_mask(t: int, device=None, past: int = 0) -> torch.Tensor:
    """(T, past + T) bool: token i, the (past + i)-th of the sequence, may attend to tokens 0..past + i.
    With past = 0 (no cache) it is (T, T), True on and below the diagonal."""
    check_positive("t", t)
    check_positive("past", past, zero=True)
    return torch.ones(t, past + t, dtype=torch.bool, device=device).tril(diagonal=past)  # (T, past + T)


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """tokens (B, T) -> (B, 1, 1, T) bool, True where a key is a real token; broadcasts over heads and queries."""
    check_tensor("tokens", tokens, "B T", "int")
    return (tokens != pad_id)[:, None, None, :]  # (B, 1, 1, T)


class KVCache:
    """The keys and values one self-attention layer has seen, (B, H, S, D/H) each, grown by `append` at every
    generation step (what Hugging Face's DynamicCache.update does per layer)."""

    def __init__(self):
        self.k = self.v = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new tokens' keys and values (B, H, S_new, D/H); return all of them so far."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)  # (B, H, S_past + S_new, D/H)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)  # (B, H, S_past + S_new, D/H)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """Multi-head attention. Self-attention: `mha(x)`. Cross-attention: `mha(x, context)`, queries from x and
    keys/values from context. The heads run through the fused F.scaled_dot_product_attention, which computes
    exactly `attention` above (tests check they agree) but faster, except on a fully masked query row (zeros, where
    `attention` gives NaN); `last_weights` keeps the attention map when `keep_weights` is set, for plotting.
    With a `cache` (self-attention only), x holds just the new tokens and they attend to the cached ones too.
    `q_pos` (T, D/H) and `k_pos` (S, D/H), when given, are added to every head's queries and keys after the
    projections, never to the values: position codes that steer who attends to whom, not what is read.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        check_divides("heads", heads, "dim", dim)
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.keep_weights, self.last_weights = False, None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: KVCache | None = None, q_pos: torch.Tensor | None = None,
                k_pos: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        context = x if context is None else context
        H, S = self.heads, context.shape[1]
        q = self.q(x).reshape(B, T, H, D // H).transpose(1, 2)  # (B, H, T, D/H)
        k, v = self.kv(context).reshape(B, S, 2, H, D // H).permute(2, 0, 3, 1, 4)  # 2 × (B, H, S, D/H)
        if q_pos is not None:
            q = q + q_pos  # (B, H, T, D/H)
        if k_pos is not None:
            k = k + k_pos  # (B, H, S, D/H)
        if cache is not None:
            k, v = cache.append(k, v)  # 2 × (B, H, S_past + S, D/H)
        if self.keep_weights:
            y, self.last_weights = attention(q, k, v, mask, return_weights=True)  # (B, H, T, D/H), (B, H, T, S)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D/H)
        return self.out(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)


class TransformerBlock(nn.Module):
    """Pre-LN transformer block (Xiong et al. 2020): x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask=mask, cache=cache)  # (B, T, D)
        return x + self.mlp(self.ln2(x))  # (B, T, D)
