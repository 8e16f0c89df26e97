"""The CM3-style model and recipe: document layouts in both orders, the masked training sequence, the loss mask on
sentinels in place, the spans of each kind, the three prompts (captioning, generation, infilling) and errors."""
import random

import pytest
import torch

from minivlm.concepts.causal_masking import undo_transform
from minivlm.data.world import Obj, Scene
from minivlm.models.cm3 import CM3, CM3Config
from minivlm.recipes.cm3 import (SPAN_KINDS, caption_images, choose_span, infill_images, object_rows, pad_rows,
                                 recolour)
from minivlm.recipes.dalle import text_tokenizer
from minivlm.train import build

CFG = CM3Config(codes=16, grid=2, max_len=24, dim=32, layers=1, heads=2)
TOK = text_tokenizer()
WORDS = TOK.encode("a large red star")[1:-1]


def test_document_in_both_orders():
    model = CM3(CFG)
    codes = [0, 1, 2, 15]
    image = [CFG.image_id, 37, 38, 39, 52]
    assert model.document(WORDS, codes, image_first=False) == WORDS + image
    assert model.document(WORDS, codes, image_first=True) == image + WORDS
    with pytest.raises(ValueError, match=r"codes: expected 4 image tokens \(a 2x2 grid\), got 3"):
        model.document(WORDS, codes[:3], image_first=False)
    with pytest.raises(ValueError, match=r"codes: expected values in \[0, 16\), got 0..16 \(codebook indices\)"):
        model.document(WORDS, [0, 1, 2, 16], image_first=False)


def test_masked_sequence_moves_the_span_and_undoes():
    model = CM3(CFG)
    body = model.document(WORDS, [0, 1, 2, 3], image_first=False)  # 4 words, marker, 4 codes
    seq = model.masked(body, [(5, 9)])  # the whole image
    s0 = CFG.sentinel_ids[0]
    assert seq == [CFG.bos_id] + WORDS + [CFG.image_id, s0, s0, 37, 38, 39, 40, CFG.eos_id]
    assert undo_transform(seq[1:-1], list(CFG.sentinel_ids)) == body
    assert model.masked(body, []) == [CFG.bos_id] + body + [CFG.eos_id]  # no span: the plain causal LM
    with pytest.raises(ValueError, match="body: 31 tokens once masked, more than max_len=24"):
        model.masked(body * 3, [(0, 1)])
    with pytest.raises(ValueError, match="spans: expected non-overlapping spans"):
        model.masked(body, [(0, 3), (2, 4)])


def test_loss_mask_drops_only_the_sentinel_in_place():
    model = CM3(CFG)
    body = model.document(WORDS, [0, 1, 2, 3], image_first=True)
    seq = torch.tensor([model.masked(body, [(1, 3)])])
    keep = model.loss_mask(seq)
    s0 = CFG.sentinel_ids[0]
    where = (seq[0] == s0).nonzero().flatten().tolist()
    assert len(where) == 2 and not keep[0, where[0]] and keep[0, where[1]] and keep.sum() == seq.shape[1] - 1


def test_loss_is_the_next_token_loss_with_that_mask():
    from minivlm.concepts.next_token import next_token_loss
    model = build(CM3, CFG, 0)
    rows = [model.masked(model.document(WORDS, [0, 1, 2, 3], f), s) for f, s in ((False, [(0, 2)]), (True, []))]
    tokens = pad_rows(rows, CFG.pad_id)
    expected = next_token_loss(model.lm(tokens), tokens, CFG.pad_id, model.loss_mask(tokens))
    assert torch.allclose(model.loss(tokens), expected)
    assert not torch.allclose(model.loss(tokens), model.lm.loss(tokens))  # the sentinel in place is not trained


def test_object_rows_cover_the_object():
    obj = Obj("star", "red", "large", x=10.0, y=13.0, r=6.4)  # rows of 4 px at grid 8: y 6.6..19.4 -> rows 1..4
    assert object_rows(obj, 8) == (1, 5)
    assert object_rows(Obj("star", "red", "large", 16, 1.0, 6.4), 8) == (0, 2)  # y - r < 0: clipped at row 0


@pytest.mark.parametrize("image_first", [False, True])
def test_spans_of_each_kind(image_first):
    rng = random.Random(0)
    scene = Scene((Obj("star", "red", "large", 16.0, 13.0, 6.4),))
    body = CM3(CFG).document(WORDS, [0, 1, 2, 3], image_first)
    words0, codes0 = (5, 1) if image_first else (0, 5)
    assert choose_span("none", 4, image_first, scene, 2, rng) == []
    assert choose_span("caption", 4, image_first, scene, 2, rng) == [(words0, words0 + 4)]
    assert choose_span("image", 4, image_first, scene, 2, rng) == [(codes0, codes0 + 4)]
    (a, b), = choose_span("region", 4, image_first, scene, 2, rng)
    assert (a - codes0, b - codes0) == (0, 4)  # at grid 2 this large object touches both rows
    for _ in range(20):
        (a, b), = choose_span("phrase", 4, image_first, scene, 2, rng)
        assert words0 <= a < b <= words0 + 4 and b - a <= 2 and all(t in WORDS for t in body[a:b])
    assert set(SPAN_KINDS) == {"none", "caption", "image", "region", "phrase"}
    with pytest.raises(ValueError, match="kind: expected one of"):
        choose_span("word", 4, image_first, scene, 2, rng)


def test_complete_text_stops_at_eos_and_image_draws_exactly_n_codes():
    model = build(CM3, CFG, 0).eval()
    prompts = [[CFG.bos_id, CFG.image_id], [CFG.bos_id, CFG.sentinel_ids[0], CFG.image_id]]  # two lengths
    words = model.complete(prompts, 5, "text")
    assert len(words) == 2 and all(len(w) <= 5 and CFG.eos_id not in w for w in words)
    assert all(t not in (CFG.pad_id, CFG.bos_id, CFG.unk_id, CFG.image_id, *CFG.sentinel_ids) for w in words for t in w)
    codes = model.complete(prompts, 4, "image", temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert all(len(c) == 4 and all(0 <= x < 16 for x in c) for c in codes)
    with pytest.raises(ValueError, match="prompts: expected at least one prompt"):
        model.complete([], 4, "image")


def test_infilling_changes_only_the_span_and_captioning_reads_text():
    model = build(CM3, CFG, 0).eval()
    codes = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    out = infill_images(model, ["a large red star", "a small blue circle"], codes, [(2, 4), (0, 2)], seed=0)
    assert torch.equal(out[0, :2], codes[0, :2]) and torch.equal(out[1, 2:], codes[1, 2:])
    assert out.shape == codes.shape and out.min() >= 0 and out.max() < 16
    said = caption_images(model, codes)
    assert len(said) == 2 and all(isinstance(s, str) for s in said)


def test_recolour_changes_the_colour_to_a_seen_pair():
    scene = Scene((Obj("star", "red", "large", 16.0, 16.0, 6.4),))
    for seed in range(10):
        caption, colour = recolour(scene, random.Random(seed))
        assert colour != "red" and caption == f"a large {colour} star" and colour != "green"  # green star: held out


def test_recolour_of_two_objects_changes_the_second_only():
    a, b = Obj("star", "red", "large", 8.0, 16.0, 6.4), Obj("circle", "blue", "small", 24.0, 16.0, 4.2)
    caption, colour = recolour(Scene((a, b), "to the left of"), random.Random(0))
    assert caption == f"a large red star to the left of a small {colour} circle" and colour != "blue"
