"""Grader for lessons/exercises/retrieval.py: `ranks`, the step under recall@K, against minivlm.evaluate.ranks."""
from __future__ import annotations

import torch

from minivlm.check import compare
from minivlm.data.world import caption_meaning
from minivlm.evaluate import ranks

LESSON = "lessons/04_toy_clip.md"
FUNCTIONS = ("ranks",)
FORBIDDEN = ()  # no torch or NumPy op ranks by key
CAPTIONS = ["a small red circle to the left of a large blue square", "a large green star",
            "a large blue square to the right of a small red circle", "a small red circle above a large blue square",
            "a large green star", "a small white cross"]  # 0 and 2 mean the same, so do 1 and 4
MEANINGS = [caption_meaning(c) for c in CAPTIONS]


def _case(seed, query_keys, item_keys):
    def check(student):
        g = torch.Generator().manual_seed(seed)
        sim = torch.randn(len(query_keys), len(item_keys), generator=g)  # (Q, N)
        compare(ranks(sim, query_keys, item_keys), student.ranks(sim, query_keys, item_keys), what="ranks")
    return check


CASES = [
    ("one right item per query: Q = N = 6, keys 0..5", _case(0, list(range(6)), list(range(6)))),
    ("several right items: the best-ranked one counts", _case(1, [0, 1, 2, 3], [0, 1, 0, 2, 1, 3, 0, 2])),
    ("a query with no right item gets rank N", _case(2, ["a", "b", "z"], ["a", "b", "c", "a"])),
    ("non-square: 4 text queries among 9 images", _case(3, [5, 0, 8, 2], list(range(9)))),
    ("a single query", _case(4, [2], [0, 1, 2, 3, 4])),
    ("caption meanings as keys: 'A left of B' is 'B right of A'", _case(5, MEANINGS, MEANINGS)),
]
