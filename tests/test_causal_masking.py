"""The CM3 causally masked transform (Sec. 2, Fig. 1): the lesson's example by hand; every token kept exactly once
(undo gives the document back) and each sentinel exactly twice, for many seeds; no span is the plain causal LM;
sampled spans are non-overlapping, avoid protected positions and repeat with the seed; bad spans are refused."""
import random

import numpy as np
import pytest

from minivlm.concepts.causal_masking import causal_mask_transform, sample_spans, undo_transform
from minivlm.data.tokenizer import SPECIALS, Tokenizer

TOK = Tokenizer(max_len=32)
SENTINELS = [TOK.index[f"<mask:{i}>"] for i in range(8)]


def test_the_lessons_example_by_hand():
    words = "<bos> a large green star above a small red circle".split()
    tokens = [TOK.index[w] for w in words]
    out = causal_mask_transform(tokens, [(2, 4), (8, 9)], SENTINELS)
    assert [TOK.vocab[i] for i in out] == ("<bos> a <mask:0> star above a small <mask:1> circle "
                                           "<mask:0> large green <mask:1> red").split()
    assert undo_transform(out, SENTINELS) == tokens


def test_spans_are_numbered_in_document_order_whatever_order_they_come_in():
    tokens = list(range(100, 107))
    out = causal_mask_transform(tokens, [(4, 5), (1, 3)], [5, 6])
    assert out == [100, 5, 103, 6, 105, 106, 5, 101, 102, 6, 104]
    assert causal_mask_transform(tokens, [(1, 3), (4, 5)], [5, 6]) == out


def test_whole_document_and_adjacent_spans():
    tokens = [20, 21, 22]
    assert causal_mask_transform(tokens, [(0, 3)], SENTINELS) == [5, 5, 20, 21, 22]
    out = causal_mask_transform(tokens, [(0, 1), (1, 2), (2, 3)], SENTINELS)
    assert out == [5, 6, 7, 5, 20, 6, 21, 7, 22]
    assert undo_transform(out, SENTINELS) == tokens


@pytest.mark.parametrize("seed", range(200))
def test_every_token_kept_exactly_once_and_each_sentinel_twice(seed):
    rng = np.random.default_rng(seed)
    length = int(rng.integers(1, 40))
    tokens = rng.integers(len(SPECIALS), len(TOK), length).tolist()
    n = min(int(rng.poisson(1)), 8, length)
    spans = sample_spans(length, n, rng, max_span=int(rng.integers(1, 12)))
    out = causal_mask_transform(tokens, spans, SENTINELS)
    assert len(out) == length + 2 * n
    assert sorted(t for t in out if t not in SENTINELS) == sorted(tokens)
    assert all(out.count(s) == (2 if i < n else 0) for i, s in enumerate(SENTINELS))
    assert undo_transform(out, SENTINELS) == tokens


def test_no_span_is_the_plain_causal_lm():
    tokens = [1, 20, 21, 22, 2]
    assert causal_mask_transform(tokens, [], SENTINELS) == tokens
    assert undo_transform(tokens, SENTINELS) == tokens
    assert sample_spans(5, 0, np.random.default_rng(0)) == []


@pytest.mark.parametrize("make", [lambda s: np.random.default_rng(s), lambda s: random.Random(s)])
def test_sampled_spans_are_sorted_disjoint_short_unprotected_and_seeded(make):
    for seed in range(50):
        spans = sample_spans(30, 4, make(seed), max_span=5, protect={0, 29})
        assert spans == sample_spans(30, 4, make(seed), max_span=5, protect={0, 29})
        assert len(spans) == 4 and spans == sorted(spans)
        assert all(0 < s < e < 30 and e - s <= 5 for s, e in spans)
        assert all(e0 <= s1 for (_, e0), (s1, _) in zip(spans, spans[1:]))
    assert len({tuple(sample_spans(30, 4, make(seed))) for seed in range(20)}) > 1
    for seed in range(50):  # as many spans as free positions: every free position is a span of its own
        assert sample_spans(6, 4, make(seed), protect={0, 5}) == [(1, 2), (2, 3), (3, 4), (4, 5)]


def test_bad_spans_are_refused_naming_spans():
    tokens = list(range(20, 30))
    with pytest.raises(ValueError, match=r"spans: expected non-overlapping spans, got \(2, 5\) and \(4, 6\)"):
        causal_mask_transform(tokens, [(4, 6), (2, 5)], SENTINELS)
    with pytest.raises(ValueError, match=r"spans: .*0 <= start < end <= 10 .*got a span out of range \(8, 11\)"):
        causal_mask_transform(tokens, [(8, 11)], SENTINELS)
    with pytest.raises(ValueError, match=r"spans: .*got a span out of range \(-1, 2\)"):
        causal_mask_transform(tokens, [(-1, 2)], SENTINELS)
    with pytest.raises(ValueError, match=r"spans: .*got an empty span \(3, 3\)"):
        causal_mask_transform(tokens, [(3, 3)], SENTINELS)
    with pytest.raises(ValueError, match=r"spans: expected at most 2 spans \(one per sentinel\), got 3"):
        causal_mask_transform(tokens, [(0, 1), (2, 3), (4, 5)], SENTINELS[:2])
    with pytest.raises(ValueError, match=r"tokens: expected no sentinel ids in the document, got \[5\]"):
        causal_mask_transform([20, 5, 21], [(0, 1)], SENTINELS)
    with pytest.raises(ValueError, match=r"sentinel_ids: expected distinct ids"):
        causal_mask_transform(tokens, [(0, 1)], [5, 5])


def test_bad_arguments_to_sample_spans_and_undo():
    with pytest.raises(ValueError, match=r"n: expected at most 2 spans \(the unprotected positions of a document of "
                                         r"4\), got 3"):
        sample_spans(4, 3, np.random.default_rng(0), protect={1, 3})
    with pytest.raises(ValueError, match=r"generator: expected numpy.random.Generator or random.Random, got int"):
        sample_spans(10, 1, 0)
    with pytest.raises(ValueError, match=r"max_span: expected None or an integer >= 1, got 0"):
        sample_spans(10, 1, random.Random(0), max_span=0)
    with pytest.raises(ValueError, match=r"transformed: expected the sentinels \[5\] once in the document"):
        undo_transform([20, 5, 21], SENTINELS)
    with pytest.raises(ValueError, match=r"transformed: expected the sentinels \[5, 6\] .*got \[5, 6, 6, 5\]"):
        undo_transform([5, 6, 6, 20, 5, 21], SENTINELS)
