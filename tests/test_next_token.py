"""The shifted next-token loss against an explicit loop, F.cross_entropy on hand-shifted tensors and NumPy."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.next_token import next_token_loss, next_token_loss_np, next_token_targets

PAD = 0
TOKENS = torch.tensor([[1, 5, 6, 7, 2, 0, 0],    # <bos> w w w <eos> <pad> <pad>
                       [1, 8, 9, 2, 0, 0, 0],
                       [1, 5, 9, 8, 7, 6, 2]])  # no padding
ANSWER = torch.tensor([[0, 0, 0, 1, 1, 0, 0],   # only "w <eos>" at the end of each row are answer tokens
                       [0, 0, 1, 1, 0, 0, 0],
                       [0, 0, 0, 0, 1, 1, 1]], dtype=torch.bool)


def _logits(seed=0):
    return torch.randn(3, 7, 10, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # (B, T, V)


def _loop_reference(logits, tokens, mask=None):
    """-log softmax(logits[b, t])[tokens[b, t + 1]], averaged over the targets that count, one at a time."""
    terms = []
    for b in range(tokens.shape[0]):
        for t in range(tokens.shape[1] - 1):
            target = int(tokens[b, t + 1])
            if target != PAD and (mask is None or mask[b, t + 1]):
                terms.append(-float(logits[b, t].log_softmax(-1)[target]))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("mask", [None, ANSWER], ids=["all targets", "answer tokens only"])
def test_matches_an_explicit_loop_and_numpy(mask):
    logits = _logits()
    loss = next_token_loss(logits, TOKENS, PAD, mask)
    assert loss.item() == pytest.approx(_loop_reference(logits, TOKENS, mask), abs=1e-12)
    np_mask = None if mask is None else mask.numpy()
    assert next_token_loss_np(logits.numpy(), TOKENS.numpy(), PAD, np_mask) == pytest.approx(loss.item(), abs=1e-12)


def test_matches_cross_entropy_on_hand_shifted_tensors():
    logits = _logits(1)
    # row 0 has targets 5 6 7 2 at positions 0-3, row 1 has 8 9 2 at 0-2, row 2 has 5 9 8 7 6 2 at 0-5: 13 in all
    pred = torch.cat([logits[0, :4], logits[1, :3], logits[2, :6]])  # (13, V)
    target = torch.tensor([5, 6, 7, 2, 8, 9, 2, 5, 9, 8, 7, 6, 2])
    assert torch.allclose(next_token_loss(logits, TOKENS, PAD), F.cross_entropy(pred, target), atol=1e-12)
    kept_logits, kept_target = next_token_targets(logits, TOKENS, PAD)
    assert torch.equal(kept_target, target) and torch.equal(kept_logits, pred)


def test_padding_and_masked_targets_do_not_count():
    logits = _logits(2)
    changed = logits.clone()
    changed[0, 4:] = 99.0  # these positions predict <pad> targets only
    changed[2, 0] = -99.0  # predicts token 1 of row 2, which is not an answer token
    assert next_token_loss(changed, TOKENS, PAD) != next_token_loss(logits, TOKENS, PAD)  # row 2 counts here ...
    assert torch.allclose(next_token_loss(changed, TOKENS, PAD, ANSWER), next_token_loss(logits, TOKENS, PAD, ANSWER))
    only_pads_changed = logits.clone()
    only_pads_changed[0, 4:] = 99.0
    assert torch.allclose(next_token_loss(only_pads_changed, TOKENS, PAD), next_token_loss(logits, TOKENS, PAD))


def test_uniform_logits_give_log_v_and_the_gradient_flows():
    logits = torch.zeros(3, 7, 10, requires_grad=True)
    loss = next_token_loss(logits, TOKENS, PAD)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(10))
    assert (logits.grad[0, 4:] == 0).all() and (logits.grad[:, -1] == 0).all()  # no target, no gradient
    assert logits.grad[0, 0].abs().sum() > 0


@pytest.mark.parametrize("args, message", [
    ((torch.zeros(3, 7), TOKENS), r"logits: expected \(B, T, V\) float, got \(3, 7\) torch.float32"),
    ((torch.zeros(3, 6, 10), TOKENS), r"tokens: expected \(B, T\) int with B = 3, T = 6, got \(3, 7\)"),
    ((torch.zeros(3, 7, 10), TOKENS, ANSWER[:, :5]),
     r"loss_mask: expected \(B, T\) torch.bool with B = 3, T = 7, got \(3, 5\) torch.bool \(like tokens\)"),
    ((torch.zeros(3, 7, 10), TOKENS, ANSWER.long()),
     r"loss_mask: expected \(B, T\) torch.bool with B = 3, T = 7, got \(3, 7\) torch.int64 \(like tokens\)"),
    ((torch.zeros(3, 7, 4), TOKENS), r"tokens: expected values in \[0, 4\), got 0..\d+"),
    ((torch.zeros(3, 7, 10), TOKENS - 1), r"tokens: expected values in \[0, 10\), got -1.."),
    ((torch.zeros(3, 7, 10), TOKENS, torch.zeros(3, 7, dtype=torch.bool)), "no target left to predict"),
    ((torch.zeros(1, 3, 10), torch.tensor([[1, 0, 0]])), "no target left to predict"),
], ids=["2-d logits", "lengths differ", "mask shape", "mask dtype", "target out of the vocab",
                                                  "negative target", "all masked", "all padding"])
def test_bad_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        next_token_loss(*args[:2], PAD, *args[2:])
