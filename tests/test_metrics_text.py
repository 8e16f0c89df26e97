"""Metrics for generated text on hand-worked cases: token cross-entropy and accuracy, semantic exact match (and
its breakdown by number of objects), and corpus BLEU-4 with values computed by hand in the comments."""
import math

import numpy as np
import pytest
import torch

from minivlm.data.world import Obj, Scene
from minivlm.evaluate import bleu, by_kind, is_sentence, meaning_matches, token_metrics

RED, BLUE = Obj("circle", "red", "small", 8, 8, 4), Obj("square", "blue", "large", 24, 8, 6)
ONE = Scene((RED,))
TWO = Scene((RED, BLUE), "to the left of")  # the red circle is left of the blue square


def test_token_metrics_on_hand_built_logits():
    tokens = torch.tensor([[1, 5, 2, 0]])  # targets 5, 2 (the <pad> does not count)
    logits = torch.zeros(1, 4, 6)
    logits[0, 0, 5] = 10.0  # right
    logits[0, 1, 3] = math.log(5)  # wrong: id 3 gets p = 5/10, the target 2 gets 1/10
    logits[0, 2, :] = 50.0  # predicts the pad: ignored
    m = token_metrics(logits, tokens, pad_id=0)
    first = -torch.tensor([10.0, 0, 0, 0, 0, 0]).log_softmax(0)[0].item()  # about 2.3e-4
    assert m["token_acc"] == 0.5
    assert m["ce"] == pytest.approx((first + math.log(10)) / 2)


def test_meaning_matches_any_wording_and_never_crashes_on_nonsense():
    captions = ["a small red circle", "a large blue square to the right of a small red circle",  # right
                "a small red circle to the right of a large blue square",  # the relation is wrong
                "a small red circle", "", "a small red", "a a a a", "<unk> small red circle",
                "a small red circle to the left of a large blue", "a small red circle to the left of"]
    scenes = [ONE, TWO, TWO, TWO] + [ONE] * 3 + [ONE] + [TWO] * 2
    assert meaning_matches(captions, scenes).tolist() == [True, True] + [False] * 8
    assert [is_sentence(c) for c in captions] == [True] * 4 + [False] * 6


def test_by_kind_breaks_scores_down_by_number_of_objects():
    scenes = [ONE, ONE, TWO, TWO, TWO, ONE]
    scores = np.array([True, True, False, True, False, False])
    assert by_kind(scores, scenes) == {"all": 0.5, "1obj": pytest.approx(2 / 3), "2obj": pytest.approx(1 / 3)}
    assert by_kind(np.array([0.25, 0.75]), [ONE, ONE]) == {"all": 0.5, "1obj": 0.5}  # no 2-object scene


def test_meaning_matches_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="captions, scenes: expected one caption per scene, got 2 and 1"):
        meaning_matches(["a small red circle"] * 2, [ONE])


CAND = "a small red circle above a large blue square"
REF = "a small red circle above a small blue square"


def test_bleu_perfect_and_partial():
    assert bleu([REF], [[REF]]) == pytest.approx(1.0)
    # CAND vs REF, both 9 words (brevity penalty 1):
    # 1-grams: all but "large" found; "a" twice in each, so clipped at 2: 8/9
    # 2-grams: a small, small red, red circle, circle above, above a, blue square found; a large, large blue not: 6/8
    # 3-grams: a small red, small red circle, red circle above, circle above a: 4/7
    # 4-grams: a small red circle, small red circle above, red circle above a: 3/6
    # BLEU = (8/9 · 6/8 · 4/7 · 3/6)^(1/4) = (4/21)^(1/4) ≈ 0.66063
    assert bleu([CAND], [[REF]]) == pytest.approx((4 / 21) ** 0.25)
    assert bleu([CAND], [[REF]]) == pytest.approx(0.66063, abs=1e-5)


def test_bleu_brevity_penalty():
    # "a small red circle" (c = 4) against the 9-word REF: every n-gram of the candidate is found, p1..p4 = 1,
    # but BP = exp(1 - r/c) = exp(1 - 9/4) = exp(-1.25) ≈ 0.28650
    assert bleu(["a small red circle"], [[REF]]) == pytest.approx(math.exp(-1.25))
    # BLEU-2 of "a red circle" (c = 3) vs "a small red circle" (r = 4): p1 = 3/3, p2 = 1/2 ("red circle"),
    # BP = exp(1 - 4/3) ≈ 0.71653, BLEU = 0.71653 · sqrt(1/2) ≈ 0.50666
    assert bleu(["a red circle"], [["a small red circle"]], max_n=2) == pytest.approx(0.50666, abs=1e-5)
    # longer than the reference: no penalty (and no bonus): REF plus "square" again: c = 10 > r = 9
    assert bleu([REF + " square"], [[REF]]) < 1.0


def test_bleu_zero_matches_and_clipping():
    assert bleu(["blue square"], [["a small red circle"]]) == 0.0  # no word in common
    assert bleu(["a small red"], [["a small red"]]) == 0.0  # no 4-gram at all: p4 = 0/0, scored 0, not an error
    assert bleu(["a small red"], [["a small red"]], max_n=3) == pytest.approx(1.0)
    # clipping (Papineni's example): 7 × "the" against "the cat is on the mat": "the" counts at most 2 times,
    # p1 = 2/7; c = 7 > r = 6, so BLEU-1 = 2/7 ≈ 0.28571
    assert bleu(["the the the the the the the"], [["the cat is on the mat"]], max_n=1) == pytest.approx(2 / 7)


def test_bleu_is_corpus_level_not_a_mean_of_sentences():
    # CAND/REF (8/9, 6/8, 4/7, 3/6) plus a perfect "a large blue square" (4/4, 3/3, 2/2, 1/1), summed:
    # p = 12/13, 9/11, 6/9, 4/7; c = r = 13; BLEU = (12·9·6·4 / (13·11·9·7))^(1/4) = (288/1001)^(1/4) ≈ 0.73239
    corpus = bleu([CAND, "a large blue square"], [[REF], ["a large blue square"]])
    assert corpus == pytest.approx((288 / 1001) ** 0.25) and corpus == pytest.approx(0.73239, abs=1e-5)
    assert corpus != pytest.approx((0.66063 + 1.0) / 2, abs=1e-3)  # the mean of the sentence scores is 0.83032


def test_bleu_with_several_references():
    flipped, plain = "a large blue square to the right of a small red circle", TWO.caption()
    assert bleu([flipped], [[plain, flipped]]) == pytest.approx(1.0)  # either wording is a reference
    assert bleu([flipped], [[plain]]) < 0.5
    # the reference length is the one closest to the candidate's, the shorter on a tie: c = 5 between r = 4 and 6
    # gives r = 4, no penalty; every n-gram of "a b c d e" is in the 6-word reference, so BLEU = 1
    assert bleu(["a b c d e"], [["a b c d", "a b c d e f"]]) == pytest.approx(1.0)
    assert bleu(["a b c d e"], [["a b c d e f"]]) == pytest.approx(math.exp(1 - 6 / 5))


@pytest.mark.parametrize("candidates, references", [([], []), (["a"], []), (["a", "b"], [["a"]]), (["a"], [[]])],
                         ids=["empty", "no references", "lengths differ", "a candidate without a reference"])
def test_bleu_refuses_bad_inputs(candidates, references):
    with pytest.raises(ValueError, match="candidates, references: expected one or more references for each of"):
        bleu(candidates, references)
