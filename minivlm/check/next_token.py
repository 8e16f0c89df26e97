"""Grader for lessons/exercises/next_token.py: `next_token_loss` against minivlm.concepts.next_token (GPT, Radford
et al. 2018, eq. 1; LLaVA's answer-only loss, Liu et al. 2023, eq. 3): the shift, padding, a loss mask, gradients."""
from __future__ import annotations

import torch

from minivlm.check import compare, compare_grads
from minivlm.concepts.next_token import next_token_loss
from minivlm.data.questions import instruction_tokenizer, make_vqa

LESSON = "lessons/05_causal_lm.md"
FUNCTIONS = ("next_token_loss",)
FORBIDDEN = ()  # F.cross_entropy is allowed (the stub says so): the exercise is the shift and the masks
TOKENIZER = instruction_tokenizer()
VQA = make_vqa(4, 0, TOKENIZER)  # "<bos> <image> question answer <eos> <pad>...", answer_mask on answer and <eos>


def _tokens(seed, B, T, V, pad_id, lengths=None):
    """Random (B, T) ids other than pad_id; row b padded with pad_id after lengths[b] tokens, if given."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V - 1, (B, T), generator=g)  # (B, T)
    tokens = tokens + (tokens >= pad_id).long()  # skips pad_id
    if lengths is not None:
        tokens[torch.arange(T)[None] >= torch.tensor(lengths)[:, None]] = pad_id
    return tokens


def _case(seed, tokens, V, pad_id, loss_mask=None, scale=1.0):
    """Random logits (B, T, V) for `tokens`; checks the loss and its gradient with respect to the logits."""
    def check(student):
        logits = torch.randn(tokens.shape + (V,), generator=torch.Generator().manual_seed(seed)) * scale  # (B, T, V)
        compare(next_token_loss(logits, tokens, pad_id, loss_mask),
                student.next_token_loss(logits, tokens, pad_id, loss_mask), what="loss")
        compare_grads(next_token_loss, student.next_token_loss, {"logits": logits}, tokens, pad_id, loss_mask)
    return check


CASES = [
    ("B=3, T=6, V=11, no padding", _case(0, _tokens(0, 3, 6, 11, 0), 11, 0)),
    ("padded rows of lengths 6, 4 and 2: <pad> is never a target",
     _case(1, _tokens(1, 3, 6, 11, 0, [6, 4, 2]), 11, 0)),
    ("pad_id = 5, not 0", _case(2, _tokens(2, 3, 7, 9, 5, [7, 3, 5]), 9, 5)),
    ("a loss_mask that keeps only the answer tokens (VQA prompts of the shapes world)",
     _case(3, VQA.tokens, len(TOKENIZER), TOKENIZER.pad_id, VQA.answer_mask)),
    ("a loss_mask that keeps one target a row", _case(4, _tokens(4, 2, 5, 7, 0), 7, 0,
                                                       torch.eye(5, dtype=torch.bool)[torch.tensor([2, 4])])),
    ("batch of 1, T=2: a single target", _case(5, _tokens(5, 1, 2, 6, 0), 6, 0)),
    ("large logits (times 30) stay finite", _case(6, _tokens(6, 2, 6, 11, 0, [6, 3]), 11, 0, scale=30.0)),
]
