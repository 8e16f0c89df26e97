"""Solution of lessons/exercises/attention.py, written out in torch."""
import math

import torch


def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # a hidden key gets weight exp(-inf) = 0
    return scores.softmax(dim=-1) @ v  # (..., Tq, dv); softmax subtracts the row's max, so large scores stay finite


def causal_mask(t):
    return torch.ones(t, t, dtype=torch.bool).tril()  # (T, T): query i sees keys j <= i
