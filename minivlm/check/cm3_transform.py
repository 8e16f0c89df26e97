"""Grader for lessons/exercises/cm3_transform.py (CM3, Aghajanyan et al. 2022, Sec. 2, Fig. 1):
`causal_mask_transform` and `undo_transform` against minivlm.concepts.causal_masking, on the lesson's example,
spans given out of order, no span, adjacent spans, a span over the whole document and random documents. Every
case is valid input; only the returned lists are graded."""
from __future__ import annotations

import numpy as np

from minivlm.check import Wrong, compare
from minivlm.concepts.causal_masking import causal_mask_transform, sample_spans, undo_transform
from minivlm.data.tokenizer import SPECIALS, Tokenizer

LESSON = "lessons/08_discrete_tokens.md"
FUNCTIONS = ("causal_mask_transform", "undo_transform")
FORBIDDEN = ()  # plain Python lists
TOK = Tokenizer()
SENTINELS = [TOK.index[f"<mask:{i}>"] for i in range(8)]
EXAMPLE = [TOK.index[w] for w in "<bos> a large green star above a small red circle".split()]
EXAMPLE_SPANS = [(2, 4), (8, 9)]  # "large green", "red"


def _documents(seed, count):
    """`count` random documents of words (no special token), spans drawn as in CM3: n = clamp(Poisson(1), 1, 8)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        tokens = rng.integers(len(SPECIALS), len(TOK), int(rng.integers(1, 30))).tolist()
        n = min(max(int(rng.poisson(1)), 1), 8, len(tokens))
        yield tokens, sample_spans(len(tokens), n, rng, max_span=int(rng.integers(1, 10)))


def _same(expected, got, what):
    if not isinstance(got, (list, tuple)):
        raise Wrong(f"{what}: expected a list of ints, got {type(got).__name__}")
    compare(np.array(expected, dtype=np.int64), np.array(got, dtype=np.int64), what=what)


def _transform(cases):
    def check(student):
        for tokens, spans, sentinels in cases():
            _same(causal_mask_transform(tokens, spans, sentinels),
                  student.causal_mask_transform(list(tokens), list(spans), list(sentinels)),
                  what=f"causal_mask_transform(tokens of length {len(tokens)}, spans={spans})")
    return check


def _undo(cases):
    def check(student):
        for tokens, spans, sentinels in cases():
            transformed = causal_mask_transform(tokens, spans, sentinels)
            _same(tokens, student.undo_transform(transformed, list(sentinels)),
                  what=f"undo_transform({transformed})")
    return check


def example():
    yield EXAMPLE, EXAMPLE_SPANS, SENTINELS


def out_of_order():
    yield list(range(20, 30)), [(7, 9), (0, 2), (4, 5)], SENTINELS


def no_span():
    yield EXAMPLE, [], SENTINELS
    yield [], [], SENTINELS


def edges():
    yield [20, 21, 22, 23], [(0, 1), (1, 2), (2, 4)], SENTINELS  # adjacent spans, the first and the last token
    yield [20, 21, 22], [(0, 3)], SENTINELS[:1]  # the whole document, one sentinel


def random_documents():
    for tokens, spans in _documents(0, 30):
        yield tokens, spans, SENTINELS


CASES = [
    ("causal_mask_transform: the lesson's example, 'large green' and 'red' masked", _transform(example)),
    ("causal_mask_transform: spans given out of order, numbered in document order", _transform(out_of_order)),
    ("causal_mask_transform: no span (the plain causal LM), and an empty document", _transform(no_span)),
    ("causal_mask_transform: adjacent spans at both ends; a span over the whole document", _transform(edges)),
    ("causal_mask_transform: 30 random documents, n = clamp(Poisson(1), 1, 8) spans", _transform(random_documents)),
    ("undo_transform: the lesson's example", _undo(example)),
    ("undo_transform: no sentinel, and an empty document", _undo(no_span)),
    ("undo_transform: adjacent spans at both ends; a span over the whole document", _undo(edges)),
    ("undo_transform: 30 random documents", _undo(random_documents)),
]
