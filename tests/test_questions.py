"""Questions about scenes: answers checked against the geometry and attributes, balance, held-out pairs, tokens,
fixed evaluation sets, bad arguments and the grader."""
import collections
import random
import re

import numpy as np
import pytest
import torch

from minivlm.data import (COLOURS, EVAL_SETS, HELD_OUT, KINDS, QA, QUESTION_WORDS, SHAPES, SIZES, VQA_EVAL_SETS,
                          Tokenizer, ask, caption_meaning, instruction_tokenizer, make_vqa, vqa_accuracy,
                          vqa_correct, vqa_eval_set)
from minivlm.data.tokenizer import SPECIALS
from minivlm.data.world import WORDS, Obj, Scene

LONGEST = "<image> what is in the image? a small purple triangle to the right of a large orange diamond"


@pytest.fixture(scope="module")
def tok():
    return instruction_tokenizer()


@pytest.fixture(scope="module")
def train(tok):
    return make_vqa(n=800, seed="test", tokenizer=tok)


def _named(scene: Scene, phrase: str) -> list[Obj]:
    """The objects a phrase such as "the small circle on the left" fits, read from its words alone."""
    words = phrase.split()
    fits = [o for o in scene.objects if all(w in (o.size, o.colour, o.shape) for w in words
                                            if w in SIZES or w in COLOURS or w in SHAPES)]
    for word, pick in [("left", min), ("right", max)]:
        if word in words:
            fits = [pick(fits, key=lambda o: o.x)]
    for word, pick in [("top", min), ("bottom", max)]:
        if word in words:
            fits = [pick(fits, key=lambda o: o.y)]  # image y grows downwards
    return fits


def _one(scene: Scene, phrase: str) -> Obj:
    fits = _named(scene, phrase)
    assert len(fits) == 1, (phrase, scene)
    return fits[0]


def _true_answer(qa: QA, scene: Scene) -> str:
    """The answer recomputed from the question's words and the scene's attributes and x/y, not from its relation."""
    q = qa.question
    if qa.kind in ("colour", "shape", "size"):
        attr, phrase = re.fullmatch(r"what (colour|shape|size) is (.+)\?", q).groups()
        assert attr == qa.kind and qa.answer not in phrase.split()  # the question does not give the answer away
        return getattr(_one(scene, phrase), attr)
    if qa.kind == "position":
        phrase, axis = re.fullmatch(r"is (.+) (on the left or on the right|at the top or at the bottom)\?", q).groups()
        o = _one(scene, phrase)
        c = o.x if "left" in axis else o.y
        assert c + o.r <= 16 or c - o.r >= 16  # only asked when the whole object is in one half
        return ("left", "right")[c > 16] if "left" in axis else ("top", "bottom")[c > 16]
    if qa.kind == "relation":
        s, a = (_one(scene, p) for p in re.fullmatch(r"where is (.+) relative to (.+)\?", q).groups())
        dx, dy = s.x - a.x, s.y - a.y
        return ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
    if qa.kind == "yes/no":
        colour, shape = re.fullmatch(r"is there a (\w+) (\w+)\?", q).groups()
        return "yes" if _named(scene, f"{colour} {shape}") else "no"
    if qa.kind == "count":
        assert q == "how many objects are there?"
        return ["one", "two"][len(scene.objects) - 1]
    assert q == "what is in the image?" and caption_meaning(qa.answer) == scene.meaning()
    return qa.answer


def _pairs_named(qa: QA) -> set[tuple[str, str]]:
    """(colour, shape) pairs a question and its answer name together, e.g. "what colour is the circle?" "green"."""
    words = f"{qa.question} {qa.answer}".replace("?", "").split()
    colours, shapes = [w for w in words if w in COLOURS], [w for w in words if w in SHAPES]
    if qa.kind in ("colour", "shape"):
        return set(zip(colours, shapes))
    return {(a, b) for a, b in zip(words, words[1:]) if a in COLOURS and b in SHAPES}


def test_same_seed_gives_same_questions_and_images(tok):
    a, b, c = (make_vqa(n=40, seed=s, tokenizer=tok) for s in (5, 5, 6))
    assert np.array_equal(a.images, b.images) and a.qas == b.qas and a.scenes == b.scenes
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.answer_mask, b.answer_mask)
    assert not np.array_equal(a.images, c.images) and a.qas != c.qas


def test_kinds_take_turns(tok, train):
    assert [qa.kind for qa in train.qas[:len(KINDS)]] == list(KINDS)
    assert collections.Counter(qa.kind for qa in train.qas) == {k: 100 for k in KINDS}
    some = make_vqa(n=7, seed=0, tokenizer=tok, kinds=("count", "size"))
    assert [qa.kind for qa in some.qas] == ["count", "size"] * 3 + ["count"]


def test_answers_agree_with_the_scene(train):
    assert train.images.shape == (800, 32, 32, 3) and len(train) == 800 == len(train.scenes)
    for qa, scene in zip(train.qas, train.scenes):
        assert qa.answer == _true_answer(qa, scene), (qa, scene)
    answers = collections.defaultdict(set)
    for qa in train.qas:
        answers[qa.kind].add(qa.answer)
    assert answers["position"] == {"left", "right", "top", "bottom"}
    assert answers["relation"] == {"left", "right", "above", "below"}
    assert answers["count"] == {"one", "two"} and answers["size"] == set(SIZES)
    # objects alike but for the asked attribute are told apart by where they are, and that is checked above
    assert any(" on the " in qa.question or " at the " in qa.question for qa in train.qas if qa.kind == "colour")


def test_scenes_without_such_a_question():
    centred = Scene((Obj("circle", "red", "large", 16.0, 16.0, 6.4),))
    rng = random.Random(0)
    assert ask(centred, "position", rng) is None and ask(centred, "relation", rng) is None
    assert ask(centred, "count", rng) == QA("how many objects are there?", "one", "count")


def test_yes_no_is_balanced_true_and_binds_colour_to_shape(tok):
    data = make_vqa(n=400, seed=1, tokenizer=tok, kinds=("yes/no",))
    answers = [qa.answer for qa in data.qas]
    assert 160 <= answers.count("yes") <= 240 and answers.count("yes") + answers.count("no") == 400
    for qa, scene in zip(data.qas, data.scenes):
        assert qa.answer == _true_answer(qa, scene)
        colour, shape = qa.question.split()[3:5]
        if qa.answer == "no":  # the absent pair shares its colour or its shape with an object in the image
            assert any(o.colour == colour or o.shape == shape.rstrip("?") for o in scene.objects)


def test_train_questions_never_name_a_held_out_pair(tok, train):
    named = set().union(*(_pairs_named(qa) for qa in train.qas))
    assert not named & HELD_OUT and len(named) > 30
    assert not {(o.colour, o.shape) for s in train.scenes for o in s.objects} & HELD_OUT
    heldout = make_vqa(n=200, seed=0, tokenizer=tok, split="heldout")
    assert set().union(*(_pairs_named(qa) for qa in heldout.qas)) <= HELD_OUT
    for qa, scene in zip(heldout.qas, heldout.scenes):
        assert qa.answer == _true_answer(qa, scene)


def test_everything_fits_the_instruction_tokenizer_and_round_trips(tok, train):
    assert tok.max_len == 24 and len(tok.encode(LONGEST)) == 21
    assert torch.equal(train.tokens, tok.encode_batch([f"<image> {qa.question} {qa.answer}" for qa in train.qas]))
    assert max(len(tok.encode(f"<image> {qa.question} {qa.answer}")) for qa in train.qas) == 21  # the longest seen
    for qa, row, mask in zip(train.qas, train.tokens, train.answer_mask):
        assert tok.decode(tok.encode(qa.question)) == " ".join(tok.split(qa.question))  # "?" becomes its own token
        assert tok.decode(row[mask]) == qa.answer and row[mask][-1] == tok.eos_id
        assert row[1] == tok.image_id and tok.decode(row[~mask]) == f"<image> {' '.join(tok.split(qa.question))}"
        assert qa.question == qa.question.lower() and set(tok.split(qa.question + " " + qa.answer)) <= set(tok.index)


def test_default_tokenizer_is_unchanged():
    default = Tokenizer()
    assert len(default) == 37 and default.vocab == list(SPECIALS) + sorted(WORDS) and default.max_len == 16
    assert not set(QUESTION_WORDS) & set(WORDS) and len(set(QUESTION_WORDS)) == len(QUESTION_WORDS)
    assert instruction_tokenizer().vocab == list(SPECIALS) + sorted(WORDS + QUESTION_WORDS)
    assert len(instruction_tokenizer()) == 37 + len(QUESTION_WORDS)


def test_eval_sets_are_fixed_balanced_and_apart_from_training(tok):
    a, b = vqa_eval_set("vqa", tok), vqa_eval_set("vqa", tok)
    assert np.array_equal(a.images, b.images) and a.qas == b.qas and len(a) == VQA_EVAL_SETS["vqa"]["n"]
    assert collections.Counter(qa.kind for qa in a.qas) == {k: 200 for k in KINDS}
    heldout = vqa_eval_set("vqa-heldout", tok)
    assert {(o.colour, o.shape) for s in heldout.scenes for o in s.objects} == set(HELD_OUT)
    seeds = [spec["seed"] for spec in (*VQA_EVAL_SETS.values(), *EVAL_SETS.values())]
    assert len(set(seeds)) == len(seeds) and all(s.startswith("eval-") for s in seeds)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n: expected a positive number of questions, got 0"),
    (dict(n=-3), "n: expected a positive number of questions, got -3"),
    (dict(kinds=("colour", "height")), r"kinds: expected a non-empty tuple of .*got \('colour', 'height'\)"),
    (dict(kinds=()), r"kinds: expected a non-empty tuple of .*got \(\)"),
    (dict(p_two=0.0), "p_two: relation questions need two-object scenes, got p_two=0.0"),
    (dict(tokenizer=Tokenizer()), r"tokenizer: lacks the question words \['what', .*instruction_tokenizer\(\)"),
    (dict(split="test"), "split: expected 'train', 'heldout' or 'any', got 'test'"),
], ids=["zero", "negative", "unknown kind", "no kinds", "no two-object scenes", "caption tokenizer", "split"])
def test_make_vqa_refuses_bad_arguments(tok, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_vqa(**(dict(n=8, seed=0, tokenizer=tok) | kwargs))


def test_other_bad_arguments(tok):
    with pytest.raises(ValueError, match="kind: expected one of .*got 'height'"):
        ask(Scene((Obj("circle", "red", "large", 16.0, 16.0, 6.4),)), "height", random.Random(0))
    with pytest.raises(ValueError, match=r"name: expected one of \['vqa', 'vqa-heldout'\], got 'test'"):
        vqa_eval_set("test", tok)
    with pytest.raises(ValueError, match=r"answers: expected one per question \(1, at least one\), got 2"):
        vqa_accuracy(["yes", "no"], [QA("is there a red circle?", "yes", "yes/no")])


def test_grader_compares_words_and_meanings():
    left = QA("where is the red circle relative to the blue square?", "left", "relation")
    assert vqa_correct("left", left) and vqa_correct(" Left. ", left)
    assert not vqa_correct("right", left) and not vqa_correct("left left", left) and not vqa_correct("", left)
    caption = "a small red circle to the left of a large blue square"
    describe = QA("what is in the image?", caption, "describe")
    assert vqa_correct(caption, describe) and vqa_correct("A large blue square to the right of a small red circle.",
                                                          describe)
    for wrong in ["a large blue square to the left of a small red circle", "a small red circle", "", "?",
                  "<unk> <eos>", "to the left of", "a small red circle to the left of", "a a a a a a a a a a"]:
        assert not vqa_correct(wrong, describe), wrong


def test_accuracy_per_kind(train):
    perfect = vqa_accuracy([qa.answer for qa in train.qas], train.qas)
    assert perfect == {k: 1.0 for k in (*KINDS, "all")}
    yes = vqa_accuracy(["yes"] * len(train), train.qas)
    assert list(yes) == [*KINDS, "all"] and 0.35 <= yes["yes/no"] <= 0.65
    assert all(yes[k] == 0.0 for k in KINDS if k != "yes/no") and yes["all"] == pytest.approx(yes["yes/no"] / 8)
    assert vqa_accuracy(["two"], [QA("how many objects are there?", "two", "count")]) == {"count": 1.0, "all": 1.0}
