"""Grader for lessons/exercises/splice.py: `splice` and `expand` against minivlm.concepts.projector (LLaVA, Liu et
al. 2023, Fig. 1 and eq. 3): visual tokens in place of each row's <image> placeholder, and the loss mask and
targets stretched to match; and `sincos_2d`, the grid code on the visual tokens, against
minivlm.concepts.positions. Every case is valid input, one placeholder a row; only values and shapes are graded."""
from __future__ import annotations

import torch

from minivlm.check import compare, compare_grads
from minivlm.concepts.positions import sincos_2d
from minivlm.concepts.projector import expand, splice

LESSON = "lessons/06_prefix_and_splice.md"
FUNCTIONS = ("splice", "expand", "sincos_2d")
FORBIDDEN = ()  # no fused op does the splice
IMAGE_ID, PAD_ID, V = 4, 0, 20


def _tokens(seed, T, places):
    """(B, T) random ids other than <image>, with <image> at places[b] in row b."""
    tokens = torch.randint(5, V, (len(places), T), generator=torch.Generator().manual_seed(seed))  # (B, T)
    tokens[torch.arange(len(places)), torch.tensor(places)] = IMAGE_ID
    return tokens


def _splice(seed, T, places, N, D=8):
    """Random embeds (B, T, D) and visual tokens (B, N, D); checks the spliced sequence and its gradients."""
    def check(student):
        tokens = _tokens(seed, T, places)  # (B, T)
        g = torch.Generator().manual_seed(seed)
        embeds, visual = torch.randn(len(places), T, D, generator=g), torch.randn(len(places), N, D, generator=g)
        compare(splice(embeds, visual, tokens, IMAGE_ID), student.splice(embeds, visual, tokens, IMAGE_ID),
                what="splice")
        compare_grads(splice, student.splice, {"embeds": embeds, "visual": visual}, tokens, IMAGE_ID)
    return check


def _expand(seed, T, places, N, what):
    """Checks `expand` on the targets (the tokens, <pad> at visual positions) or on a loss mask (False there)."""
    def check(student):
        tokens = _tokens(seed, T, places)  # (B, T)
        if what == "targets":
            x, fill = tokens, PAD_ID
        else:
            x, fill = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(seed)) < 0.5, False  # (B, T)
        compare(expand(x, tokens, IMAGE_ID, N, fill), student.expand(x, tokens, IMAGE_ID, N, fill),
                what=f"expand of the {what}")
    return check


def _sincos(grid, dim, base):
    """The (grid*grid, dim) code table (any float dtype)."""
    def check(student):
        compare(sincos_2d(grid, dim, base), student.sincos_2d(grid, dim, base), what="sincos_2d")
    return check


CASES = [
    ("splice: B=2, T=6, N=4, <image> at positions 1 and 3", _splice(0, 6, [1, 3], 4)),
    ("splice: <image> first in one row, last in another, T=5, N=3", _splice(1, 5, [0, 4, 2], 3)),
    ("splice: N=1, one visual token (the length does not change)", _splice(2, 6, [2, 5], 1)),
    ("splice: batch of 1, T=1, only the placeholder", _splice(3, 1, [0], 4)),
    ("expand: the targets, <pad> at the visual positions, <image> at 1 and 3",
     _expand(4, 6, [1, 3], 4, "targets")),
    ("expand: a loss mask, False at the visual positions, <image> first and last",
     _expand(5, 5, [0, 4, 2], 3, "loss mask")),
    ("expand: a loss mask with N=1", _expand(6, 6, [2, 5], 1, "loss mask")),
    ("sincos_2d: the course's 4x4 grid, D=128, base 10", _sincos(4, 128, 10.0)),
    ("sincos_2d: a 3x3 grid, D=8 (two frequencies a block)", _sincos(3, 8, 10.0)),
    ("sincos_2d: a 5x5 grid, D=16, the Transformer's base 10000", _sincos(5, 16, 10000.0)),
]
