"""The causally masked transform of CM3 (Aghajanyan et al. 2022, Sec. 2, Fig. 1): choose a few spans of a document,
replace each by a sentinel <mask:i> where it stood, and move it to the end after the same sentinel, in document
order; then train with the plain next-token loss. The model sees both sides of a span before it writes it.

    a b c d e f g,  spans [1, 3) and [4, 5)  ->  a <mask:0> d <mask:1> f g <mask:0> b c <mask:1> e

The paper ends the transformed document with one end-of-document token; we add none, so that the transform keeps
every token exactly once and adds only sentinels: a caller appends the tokenizer's <eos> after it. With no span
the document is unchanged, and the objective is the plain causal LM. The paper also gives the loss on the
sentinels weight 0 (they stand at random places): that is the caller's loss mask, not part of the transform.
"""
from __future__ import annotations

import random

import numpy as np


def _check_spans(spans: list[tuple[int, int]], length: int, n_sentinels: int) -> list[tuple[int, int]]:
    """The spans sorted by start, or a ValueError naming `spans`: empty, out of [0, length), overlapping, too many."""
    if len(spans) > n_sentinels:
        raise ValueError(f"spans: expected at most {n_sentinels} spans (one per sentinel), got {len(spans)}")
    for start, end in spans:
        if not 0 <= start < end <= length:
            what = "an empty span" if start >= end else "a span out of range"
            raise ValueError(f"spans: expected [start, end) with 0 <= start < end <= {length} (the document's "
                             f"length), got {what} ({start}, {end})")
    spans = sorted((int(s), int(e)) for s, e in spans)
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ValueError(f"spans: expected non-overlapping spans, got ({s0}, {e0}) and ({s1}, {e1})")
    return spans


def causal_mask_transform(tokens: list[int], spans: list[tuple[int, int]], sentinel_ids: list[int]) -> list[int]:
    """tokens (T,) ints -> (T + 2n,) list: the i-th span [start, end) in document order is replaced by
    sentinel_ids[i] and appended at the end after sentinel_ids[i] again (Sec. 2, Fig. 1). No span: tokens unchanged."""
    tokens = [int(t) for t in tokens]
    if len(set(sentinel_ids)) != len(sentinel_ids):
        raise ValueError(f"sentinel_ids: expected distinct ids, got {list(sentinel_ids)}")
    clash = sorted(set(tokens) & set(sentinel_ids))
    if clash:
        raise ValueError(f"tokens: expected no sentinel ids in the document, got {clash}")
    spans = _check_spans(spans, len(tokens), len(sentinel_ids))
    document, moved, last = [], [], 0
    for sentinel, (start, end) in zip(sentinel_ids, spans):
        document += tokens[last:start] + [sentinel]
        moved += [sentinel] + tokens[start:end]
        last = end
    return document + tokens[last:] + moved


def undo_transform(transformed: list[int], sentinel_ids: list[int]) -> list[int]:
    """The inverse of `causal_mask_transform`: put each span at the end back in place of its first sentinel."""
    transformed = [int(t) for t in transformed]
    n = sum(1 for s in sentinel_ids if s in transformed)
    used = list(sentinel_ids[:n])
    where = [i for i, t in enumerate(transformed) if t in sentinel_ids]  # positions of every sentinel
    if [transformed[i] for i in where] != used + used:
        raise ValueError(f"transformed: expected the sentinels {used} once in the document and once more at the end, "
                         f"in that order, got {[transformed[i] for i in where]}")
    if n == 0:
        return transformed
    bounds = where[n:] + [len(transformed)]  # the tail: sentinel i, then span i, up to the next sentinel
    spans = [transformed[a + 1:b] for a, b in zip(bounds, bounds[1:])]
    document, last = [], 0
    for hole, span in zip(where[:n], spans):
        document += transformed[last:hole] + span
        last = hole + 1
    return document + transformed[last:where[n]]


def sample_spans(length: int, n: int, generator: np.random.Generator | random.Random, max_span: int | None = None,
                 protect: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """n non-overlapping spans [start, end) of a document of `length` tokens, sorted, each at most `max_span` long
    and containing no position of `protect` (e.g. 0 for <bos>). Each span is drawn uniformly among the (start, end)
    pairs still free, close to CM3's two uniform end points (Sec. 2). CM3 draws n ~ clamp(Poisson(1), 1, 16); with
    our 8 sentinels, `n = min(max(rng.poisson(1), 1), 8)`. Deterministic for a given seed of `generator`."""
    if isinstance(generator, np.random.Generator):
        below = lambda k: int(generator.integers(k))
    elif isinstance(generator, random.Random):
        below = generator.randrange
    else:
        raise ValueError(f"generator: expected numpy.random.Generator or random.Random, got {type(generator).__name__}")
    if length < 0 or n < 0:
        raise ValueError(f"length, n: expected two integers >= 0, got length={length}, n={n}")
    max_span = length if max_span is None else max_span
    if max_span < 1:
        raise ValueError(f"max_span: expected None or an integer >= 1, got {max_span}")
    free = [i not in protect for i in range(length)]
    if n > sum(free):
        raise ValueError(f"n: expected at most {sum(free)} spans (the unprotected positions of a document of "
                         f"{length}), got {n}")
    spans = []
    for left in range(n - 1, -1, -1):
        longest = min(max_span, sum(free) - left)  # leave one free position for each span still to place
        candidates = []  # every (start, end) of free positions, at most `longest` long
        for start in range(length):
            end = start
            while end < min(start + longest, length) and free[end]:
                end += 1
                candidates.append((start, end))
        start, end = candidates[below(len(candidates))]
        free[start:end] = [False] * (end - start)
        spans.append((start, end))
    return sorted(spans)
