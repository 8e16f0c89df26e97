"""Grader for lessons/exercises/info_nce.py: `info_nce` against minivlm.concepts.info_nce (CLIP, Radford et al.
2021, Figure 3), its value and its gradients for both embeddings and the learnable logit_scale."""
from __future__ import annotations

import torch

from minivlm.check import compare, compare_grads
from minivlm.concepts.info_nce import caption_groups, info_nce
from minivlm.data.tokenizer import Tokenizer

LESSON = "lessons/03_info_nce.md"
FUNCTIONS = ("info_nce",)
FORBIDDEN = ()  # torch.nn.functional is allowed (the stub says so): the exercise is the logits and targets
TOKENS = Tokenizer().encode_batch(["a small red circle", "a large blue star", "a small red circle",
                                   "a large red star", "a large blue star", "a small red circle"])  # (6, L)


def _case(seed, B, E, logit_scale=1 / 0.07, groups=None, norms=None):
    """Random (B, E) embedding pairs, with row norms `norms` if given; checks the loss and its gradients."""
    def check(student):
        g = torch.Generator().manual_seed(seed)
        image_emb, text_emb = torch.randn(B, E, generator=g), torch.randn(B, E, generator=g)  # (B, E)
        if norms is not None:
            image_emb, text_emb = image_emb * norms[:, None], text_emb * norms.flip(0)[:, None]  # (B, E)
        scale = torch.tensor(logit_scale)  # a learnable parameter in CLIP: the loss must pass it gradients
        compare(info_nce(image_emb, text_emb, scale, groups), student.info_nce(image_emb, text_emb, scale, groups),
                what="loss")
        compare_grads(info_nce, student.info_nce, {"image_emb": image_emb, "text_emb": text_emb, "logit_scale": scale},
                      groups)
    return check


CASES = [
    ("B=4, E=8, logit_scale = 1/0.07 (CLIP's initial temperature)", _case(0, 4, 8)),
    ("more pairs than dimensions: B=6, E=3", _case(1, 6, 3)),
    ("embeddings that are not unit-norm (norms 0.1 to 50)", _case(2, 5, 8, norms=torch.logspace(-1, 1.7, 5))),
    ("logit_scale = 100 (CLIP's clamp): large logits", _case(3, 8, 16, logit_scale=100.0)),
    ("batch of 1", _case(4, 1, 8)),
    ("groups all distinct, [3, 0, 2, 1]: the same as no groups", _case(5, 4, 8, groups=torch.tensor([3, 0, 2, 1]))),
    ("groups [0, 1, 2, 1]: pairs 1 and 3 share a caption", _case(6, 4, 8, groups=torch.tensor([0, 1, 2, 1]))),
    ("groups [0, 0, 0, 0]: every pair has the same caption", _case(7, 4, 8, groups=torch.zeros(4, dtype=torch.long))),
    ("groups from caption_groups: 6 captions, rows 0, 2, 5 and rows 1, 4 identical",
     _case(8, 6, 8, groups=caption_groups(TOKENS))),
]
