"""The next-token loss of a causal language model (Radford et al. 2018, eq. 1): maximise sum_t log P(x_t+1 | x_<=t).

The logits at position t predict token t + 1, so logits and tokens are shifted by one against each other.
Padding is never a target, and a `loss_mask` can keep only some targets (a captioner's or VQA model's answer
tokens, not its prompt).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from minivlm.concepts.validate import check_ids, check_tensor


def next_token_loss_np(logits: np.ndarray, tokens: np.ndarray, pad_id: int,
                       loss_mask: np.ndarray | None = None) -> float:
    """NumPy reference: logits (B, T, V), tokens (B, T) ints, loss_mask (B, T) bool or None -> mean loss."""
    pred, target = logits[:, :-1], tokens[:, 1:]  # (B, T-1, V), (B, T-1)
    keep = target != pad_id  # (B, T-1)
    if loss_mask is not None:
        keep = keep & loss_mask[:, 1:]
    z = pred - pred.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B, T-1, V)
    picked = np.take_along_axis(log_probs, target[..., None], axis=-1)[..., 0]  # (B, T-1): log P(target)
    return float(-picked[keep].mean())


def next_token_targets(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int,
                       loss_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Line the predictions up with what they predict: logits (B, T, V) and tokens (B, T) -> the logits (N, V)
    and target ids (N,) of the N targets that count (not padding; where loss_mask (B, T) is True, if given)."""
    dims = check_tensor("logits", logits, "B T V", "float")
    check_ids("tokens", tokens, dims["V"], "B T", dims=dims)  # every id a class of the logits, targets included
    if loss_mask is not None:
        check_tensor("loss_mask", loss_mask, "B T", torch.bool, dims=dims, hint="like tokens")
    pred, target = logits[:, :-1], tokens[:, 1:]  # (B, T-1, V), (B, T-1): position t predicts token t + 1
    keep = target != pad_id  # (B, T-1)
    if loss_mask is not None:
        keep = keep & loss_mask[:, 1:]  # the mask marks targets, i.e. the tokens to be predicted
    if not keep.any():
        raise ValueError("tokens, loss_mask: no target left to predict (all padding or masked out)")
    return pred[keep], target[keep]  # (N, V), (N,)


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int,
                    loss_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of each kept target token given the logits one position earlier (see
    `next_token_targets`): every target token counts once, whatever the length of its sequence."""
    return F.cross_entropy(*next_token_targets(logits, tokens, pad_id, loss_mask))
