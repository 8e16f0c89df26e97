"""Solution of lessons/exercises/next_token.py, written out in torch (F.cross_entropy, as the stub allows)."""
import torch.nn.functional as F


def next_token_loss(logits, tokens, pad_id, loss_mask=None):
    pred, target = logits[:, :-1], tokens[:, 1:]  # (B, T-1, V), (B, T-1): position t predicts token t + 1
    keep = target != pad_id  # (B, T-1): <pad> is never a target
    if loss_mask is not None:
        keep = keep & loss_mask[:, 1:]  # the mask marks the targets, the tokens to be predicted
    return F.cross_entropy(pred[keep], target[keep])  # the mean over the kept targets, each once
