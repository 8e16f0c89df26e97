"""Symmetric InfoNCE, the CLIP loss (Radford et al. 2021, Figure 3 pseudo-code).

    I_e, T_e = l2_normalize(I_f), l2_normalize(T_f)
    logits   = I_e @ T_e^T * exp(t)              # exp(t) = 1/temperature = logit_scale
    loss     = (CE(logits, labels) + CE(logits^T, labels)) / 2

With `groups`, images and texts that share a group id (e.g. identical captions) are all positives of each
other: the target of each row is uniform over its positives instead of one-hot on the diagonal.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from minivlm.concepts.validate import check_positive, check_tensor


def _log_softmax_np(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def info_nce_np(image_emb: np.ndarray, text_emb: np.ndarray, logit_scale: float,
                groups: np.ndarray | None = None) -> float:
    """NumPy reference: image_emb (B, E), text_emb (B, E), groups (B,) ints or None -> scalar loss."""
    i = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    t = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    logits = logit_scale * i @ t.T  # (B, B)
    n = len(logits)
    pos = np.eye(n) if groups is None else (groups[:, None] == groups[None, :]).astype(float)  # (B, B)
    target = pos / pos.sum(axis=1, keepdims=True)
    loss_i = (target * -_log_softmax_np(logits)).sum(axis=1).mean()  # cross-entropy: sum of y * (-log p)
    loss_t = (target * -_log_softmax_np(logits.T)).sum(axis=1).mean()
    return float((loss_i + loss_t) / 2)


def info_nce(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """image_emb (B, E) and text_emb (B, E), row i of each a matching pair; logit_scale a scalar > 0 (1/τ);
    groups (B,) int or None. Returns the mean of the image->text and text->image cross-entropies."""
    dims = check_tensor("image_emb", image_emb, "B E", "float", finite=True)
    check_tensor("text_emb", text_emb, "B E", image_emb.dtype, finite=True, dims=dims)
    if isinstance(logit_scale, torch.Tensor):
        check_tensor("logit_scale", logit_scale, (), "float", finite=True)
    check_positive("logit_scale", float(torch.as_tensor(logit_scale).detach()))
    if groups is not None:
        check_tensor("groups", groups, ("B",), "int", dims=dims)
    i = F.normalize(image_emb, dim=-1)  # (B, E)
    t = F.normalize(text_emb, dim=-1)  # (B, E)
    logits = logit_scale * i @ t.T  # (B, B): row = image, column = text
    if groups is None:
        labels = torch.arange(len(logits), device=logits.device)  # (B,)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    pos = (groups[:, None] == groups[None, :]).float()  # (B, B), symmetric
    target = pos / pos.sum(dim=1, keepdim=True)  # each row: uniform over its positives
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def caption_groups(tokens: torch.Tensor) -> torch.Tensor:
    """(B, L) token ids -> (B,) group ids, equal exactly where two captions are the same token sequence."""
    check_tensor("tokens", tokens, "B L", "int")
    return torch.unique(tokens, dim=0, return_inverse=True)[1]  # (B,)
