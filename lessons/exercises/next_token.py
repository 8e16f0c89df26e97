"""Exercise 5, the next-token loss (lessons/05_causal_lm.md). Check with `python -m minivlm.check next_token`.

Fill in the function in torch (torch.nn.functional is allowed), so that gradients reach the logits. B batch,
T text length, V vocabulary size.
"""
import torch


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int,
                    loss_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of each target token given the logits one position earlier (GPT, Radford et al. 2018,
    eq. 1): logits (B, T, V) at every position, tokens (B, T) ids padded with pad_id. A <pad> is never a target;
    loss_mask (B, T) bool or None, if given, keeps only the target tokens where it is True. Returns a 0-dim loss,
    each kept target counting once."""
    raise NotImplementedError("next_token_loss: shift by one, drop padding and masked targets, cross-entropy")
