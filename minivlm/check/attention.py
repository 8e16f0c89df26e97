"""Grader for lessons/exercises/attention.py: `attention` and `causal_mask` against minivlm.concepts.attention
(Vaswani et al. 2017, eq. 1) without a mask, with padding and causal masks, and their gradients."""
from __future__ import annotations

import torch

from minivlm.check import compare, compare_grads
from minivlm.concepts.attention import attention, causal_mask, padding_mask
from minivlm.data.tokenizer import Tokenizer

LESSON = "lessons/02_attention.md"
FUNCTIONS = ("attention", "causal_mask")
# torch's fused attention
FORBIDDEN = ("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")
TOKENIZER = Tokenizer(max_len=6)
PADDING = padding_mask(TOKENIZER.encode_batch(["a small red circle", "a star"]), TOKENIZER.pad_id)  # (B, 1, 1, T)
ONE_KEY = torch.eye(7, dtype=torch.bool)[torch.tensor([3, 0, 6, 6, 1])]  # (Tq, Tk) = (5, 7): one True a row


def _qkv(seed, q_shape, k_shape, dv, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(q_shape, generator=g) * scale  # (..., Tq, d)
    k = torch.randn(k_shape, generator=g) * scale  # (..., Tk, d)
    v = torch.randn(k_shape[:-1] + (dv,), generator=g)  # (..., Tk, dv)
    return q, k, v


def _attention(seed, q_shape, k_shape, dv, mask=None, scale=1.0):
    def check(student):
        q, k, v = _qkv(seed, q_shape, k_shape, dv, scale)
        compare(attention(q, k, v, mask), student.attention(q, k, v, mask))
    return check


def _gradients(seed, shape, mask):
    def check(student):
        q, k, v = _qkv(seed, shape, shape, shape[-1])
        compare_grads(attention, student.attention, {"q": q, "k": k, "v": v}, mask)
    return check


def _causal(t):
    def check(student):
        compare(causal_mask(t), student.causal_mask(t), what=f"causal_mask({t})")
    return check


CASES = [
    ("attention: self-attention, no mask, (B, H, T, d) = (2, 4, 5, 8)", _attention(0, (2, 4, 5, 8), (2, 4, 5, 8), 8)),
    ("attention: cross-attention, 3 queries on 7 keys, values of width 6 != d = 4",
     _attention(1, (2, 3, 4), (2, 7, 4), 6)),
    ("attention: unbatched q, k, v of shape (T, d)", _attention(2, (5, 8), (5, 8), 8)),
    ("attention: batch of 1, one head, one query, one key", _attention(3, (1, 1, 1, 4), (1, 1, 1, 4), 4)),
    ("attention: padding mask (B, 1, 1, T) hiding the <pad> keys",
     _attention(4, (2, 4, 6, 8), (2, 4, 6, 8), 8, PADDING)),
    ("attention: causal mask (T, T), broadcast over B and H",
     _attention(5, (2, 3, 6, 8), (2, 3, 6, 8), 8, causal_mask(6))),
    ("attention: causal and padding masks together, (B, 1, T, T)",
     _attention(6, (2, 3, 6, 8), (2, 3, 6, 8), 8, causal_mask(6) & PADDING)),
    ("attention: each query may see one key only (all the others masked)",
     _attention(7, (2, 2, 5, 4), (2, 2, 7, 4), 4, ONE_KEY)),
    ("attention: large scores (q and k times 10) stay finite", _attention(8, (2, 5, 8), (2, 5, 8), 8, scale=10.0)),
    ("attention: gradients of q, k and v through a padding mask", _gradients(9, (2, 4, 6, 8), PADDING)),
    ("causal_mask: T=6", _causal(6)),
    ("causal_mask: T=1", _causal(1)),
]
