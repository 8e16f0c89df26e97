"""Exercise 2, attention (lessons/02_attention.md). Check with `python -m minivlm.check attention`.

Fill in both functions in torch, without F.scaled_dot_product_attention or nn.MultiheadAttention (the grader
refuses a file that uses them or imports from minivlm). Masks are boolean: True = may attend.
"""
import torch


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v (Vaswani et al. 2017, eq. 1) -> (..., Tq, dv).

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv); `...` is any leading batch dims, e.g. (B, H) or none.
    mask: bool, broadcastable to (..., Tq, Tk), False where a query may not see a key; None = see everything.
    """
    raise NotImplementedError("attention: scores, mask, softmax over the keys, weighted sum of the values")


def causal_mask(t: int) -> torch.Tensor:
    """(T, T) bool: True where query i may attend to key j, that is j <= i."""
    raise NotImplementedError("causal_mask: a lower-triangular boolean matrix")
