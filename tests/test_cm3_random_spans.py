"""The paper's random spans for the CM3 recipe (`span_mix` kind "random", CM3 Sec. 2): valid spans the transform
accepts; every set of n non-overlapping spans equally likely (against an enumeration of them all); the number of
spans distributed as clamp(Poisson(1), 1, 8) (against the pmf from `math`); the default recipe's training documents
unchanged, byte for byte, from before the option existed; the model long enough for them; bad mixes refused."""
import collections
import dataclasses
import hashlib
import itertools
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from minivlm.concepts.causal_masking import causal_mask_transform, sample_spans, undo_transform
from minivlm.data.datasets import make_shapes
from minivlm.models.cm3 import CM3
from minivlm.models.vqvae import VQVAE, VQConfig
from minivlm.recipes.cm3 import (MIX_KINDS, CM3Recipe, check_span_mix, choose_span, cm3_config, document_batches,
                                 random_spans, recipe_config, span_count, train_cm3, words_of)
from minivlm.recipes.dalle import text_tokenizer
from minivlm.train import TrainConfig, build

VQ = SimpleNamespace(cfg=SimpleNamespace(codes=512, grid=8))  # all `cm3_config` reads of a tokenizer


def clamped_poisson_pmf(most: int, mean: float = 1.0) -> np.ndarray:
    """P(n = k) for k = 0..most of n = clamp(Poisson(mean), 1, most), from the Poisson pmf e^-m m^k / k!."""
    p = np.array([math.exp(-mean) * mean ** k / math.factorial(k) for k in range(most)])
    out = np.zeros(most + 1)
    out[1] = p[0] + p[1]
    out[2:most] = p[2:most]
    out[most] = 1.0 - p.sum()  # the whole tail, k >= most
    return out


@pytest.mark.parametrize("length", [1, 2, 3, 7, 20, 77])
def test_random_spans_are_valid_and_the_transform_accepts_them(length):
    rng = random.Random(length)
    sentinels = list(range(1000, 1008))
    doc = list(range(length))
    for _ in range(400):
        spans = random_spans(length, rng)
        assert 1 <= len(spans) <= min(8, length)
        assert all(0 <= a < b <= length for a, b in spans)  # non-empty, inside the document
        assert all(b0 <= a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))  # sorted, non-overlapping
        assert undo_transform(causal_mask_transform(doc, spans, sentinels), sentinels) == doc


def test_the_count_is_the_clamped_poisson():
    rng = random.Random(0)
    draws = 100_000
    for most in (8, 3):
        counts = np.bincount([span_count(rng, most) for _ in range(draws)], minlength=most + 1) / draws
        expected = clamped_poisson_pmf(most)
        # 0.006 is 4.3 standard errors of the largest share (0.736) at 100k draws; a count that is not clamped at 1
        # (P(0) = 0.368), Poisson(2) (P(1) = 0.406) or a clamp at 16 instead of `most` is off by > 0.05 somewhere.
        assert np.abs(counts - expected).max() < 0.006, (most, counts.round(4), expected.round(4))
        assert counts[0] == 0 and abs(counts @ np.arange(most + 1) - expected @ np.arange(most + 1)) < 0.01
    lengths = collections.Counter(len(random_spans(77, rng)) for _ in range(20_000))  # the count random_spans uses
    assert abs(lengths[1] / 20_000 - clamped_poisson_pmf(8)[1]) < 0.015 and max(lengths) <= 8


def all_span_sets(length: int, n: int) -> list[tuple]:
    """Every set of n non-empty, non-overlapping spans [a, b) of [0, length], by brute force."""
    pairs = [(a, b) for a in range(length) for b in range(a + 1, length + 1)]
    return [c for c in itertools.combinations(pairs, n) if all(b0 <= a1 for (_, b0), (a1, _) in zip(c, c[1:]))]


def test_every_set_of_spans_is_equally_likely():
    """What drawing two uniform end points per span, again until no two overlap, gives (the paper's rule)."""
    length, draws = 5, 120_000
    rng = random.Random(1)
    seen = collections.defaultdict(collections.Counter)
    for _ in range(draws):
        spans = random_spans(length, rng)
        seen[len(spans)][tuple(spans)] += 1
    for n in (1, 2, 3):
        sets = all_span_sets(length, n)
        assert len(sets) == math.comb(length + n, 2 * n)
        assert set(seen[n]) == set(sets)  # each one comes up, and nothing else
        counts = np.array([seen[n][s] for s in sets])
        chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
        assert chi2 < 3 * len(sets) + 30, (n, chi2)  # uniform: chi2 about len(sets) - 1
    # the test can fail: the concept's `sample_spans` (uniform among the free pairs, one span after the other) does
    # not give every pair of spans the same chance
    other = collections.Counter(tuple(sample_spans(length, 2, rng)) for _ in range(20_000))
    counts = np.array([other[s] for s in all_span_sets(length, 2)])
    assert ((counts - counts.mean()) ** 2 / counts.mean()).sum() > 3 * len(counts) + 30


def documents(n=256, seed=0):
    """What `train_cm3` makes of n scenes, with made-up codes instead of a tokenizer's (a test needs no VQ)."""
    tok = text_tokenizer()
    data = make_shapes(n, seed, tok, p_two=0.5)
    codes = torch.randint(0, 512, (n, 64), generator=torch.Generator().manual_seed(seed))  # (N, grid²)
    return [words_of(t, tok) for t in data.tokens], codes, data.scenes


def digest(batches) -> str:
    h = hashlib.sha1()
    for b in batches:
        h.update(str(tuple(b.shape)).encode())
        h.update(b.numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("mix, seed, expected", [
    (None, 0, "780a79780b3952df5624e128bea5a3810466dc0f"),
    (None, 1, "ddafadb262534301895a6125b2794f92140e5614"),
    ({"none": 1.0}, 0, "12ad2171a45579f0b0a78b2512b70840c307a66e"),
])
def test_the_default_recipes_documents_are_unchanged(mix, seed, expected):
    """The first three batches, as `train_cm3` drew them before the "random" kind existed (recorded then, from the
    same scenes and codes): the same generator calls in the same order, so the same documents."""
    recipe = CM3Recipe(n=256) if mix is None else CM3Recipe(n=256, span_mix=mix)
    words, codes, scenes = documents(seed=seed)
    model = CM3(recipe_config(VQ, recipe))
    assert model.cfg == cm3_config(VQ)  # no random spans: the model of before, too
    next_batch = document_batches(model, words, codes, scenes, recipe, seed)
    assert digest([next_batch()[0] for _ in range(3)]) == expected


def test_random_documents_fit_the_model_and_undo():
    recipe = CM3Recipe(n=256, span_mix={"random": 1.0})
    cfg = recipe_config(VQ, recipe)
    assert cfg.max_len == 14 + 1 + 64 + 16 == 95  # <bos> 12 words <eos>, <image>, 64 codes, 8 spans' sentinels
    model = CM3(cfg)
    words, codes, scenes = documents()
    sentinels = list(cfg.sentinel_ids)
    counts = collections.Counter()
    next_batch = document_batches(model, words, codes, scenes, recipe, 0)
    for tokens, in (next_batch() for _ in range(4)):
        for row in tokens.tolist():
            row = row[:row.index(cfg.eos_id) + 1]  # drop the padding
            used = sum(t in sentinels for t in row) // 2
            counts[used] += 1
            body = undo_transform(row[1:-1], sentinels)
            assert row[0] == cfg.bos_id and body.count(cfg.image_id) == 1 and len(body) <= 77
    assert min(counts) >= 1 and sum(counts.values()) == 256 and counts[1] > counts[2] > 0
    too_short = document_batches(CM3(cm3_config(VQ)), words, codes, scenes, recipe, 0)
    with pytest.raises(ValueError, match="more than max_len=84"):  # the default model is too short for them
        for _ in range(4):
            too_short()


def test_choose_span_random_covers_the_whole_body():
    rng = random.Random(0)
    starts, ends = set(), set()
    for _ in range(3000):
        spans = choose_span("random", 4, False, None, 2, rng, max_spans=3)  # body: 4 words, <image>, 4 codes
        assert 1 <= len(spans) <= 3 and all(0 <= a < b <= 9 for a, b in spans)
        starts |= {a for a, _ in spans}
        ends |= {b for _, b in spans}
    assert starts == set(range(9)) and ends == set(range(1, 10))


def test_two_training_steps_on_random_spans():
    vq = build(VQVAE, VQConfig(hidden=16, codes=16, code_dim=8), 0)
    recipe = CM3Recipe(n=128, span_mix={"random": 0.5, "none": 0.5})
    cfg = dataclasses.replace(recipe_config(vq, recipe), dim=32, layers=1, heads=2)
    model, history = train_cm3(TrainConfig(steps=2, seed=0, device="cpu"), vq, recipe, model_cfg=cfg)
    assert len(history.steps) >= 1 and all(math.isfinite(s["loss"]) for s in history.steps)


@pytest.mark.parametrize("mix, message", [
    ({"word": 1.0}, r"span_mix: expected kinds among \('none', .*'random'\), got \['word'\]"),
    ({}, r"span_mix: expected a non-empty dict of kind -> weight, got \{\}"),
    ([("random", 1.0)], r"span_mix: expected a non-empty dict of kind -> weight, got \[\('random', 1.0\)\]"),
    ({"random": -1.0, "none": 1.0}, r"span_mix: expected finite weights >= 0, got \{'random': -1.0\}"),
    ({"random": "1"}, r"span_mix: expected finite weights >= 0, got \{'random': '1'\}"),
    ({"random": float("nan")}, r"span_mix: expected finite weights >= 0, got \{'random': nan\}"),
    ({"random": True}, r"span_mix: expected finite weights >= 0, got \{'random': True\}"),
    ({"random": 0, "none": 0.0}, r"span_mix: expected at least one weight > 0, got"),
])
def test_bad_span_mixes_are_refused(mix, message):
    with pytest.raises(ValueError, match=message):
        CM3Recipe(span_mix=mix)
    with pytest.raises(ValueError, match=message):
        check_span_mix(mix)


def test_the_kinds_and_an_unknown_kind():
    assert MIX_KINDS == ("none", "caption", "image", "region", "phrase", "random")
    CM3Recipe(span_mix={"random": 1})  # an int weight is a weight
    with pytest.raises(ValueError, match=r"kind: expected one of \(.*'random'\), got 'word'"):
        choose_span("word", 4, False, None, 2, random.Random(0))
