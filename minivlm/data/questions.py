"""Questions about a scene, answered from its metadata: the shapes world's stand-in for LLaVA's instruction data.

LLaVA (Liu et al. 2023, Sec. 3) asks a text-only model to write conversations from an image's captions and boxes;
here `ask` writes them from a `Scene`, so every answer is true by construction. `make_vqa` renders one question per
scene, `vqa_correct` grades a model's answer, and `vqa_accuracy` reports it by question kind.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np
import torch

from minivlm.data.tokenizer import IMAGE, Tokenizer
from minivlm.data.world import (COLOURS, INVERSE, SHAPES, WORDS, Obj, Scene, allowed, caption_meaning, render,
                                sample_scene)

KINDS = ("colour", "shape", "size", "position", "count", "relation", "yes/no", "describe")
QUESTION_WORDS = ("what", "colour", "shape", "size", "is", "object", "where", "relative", "on", "at", "or", "top",
                  "bottom", "how", "many", "objects", "are", "there", "in", "image", "one", "two", "yes", "no", "?")
# Evaluation sets are drawn from their own fixed seeds, never from a training seed.
VQA_EVAL_SETS = {
    "vqa": dict(n=1600, p_two=0.5, split="train", seed="eval-vqa"),  # 200 questions of each kind, seen pairs
    "vqa-heldout": dict(n=800, p_two=0.5, split="heldout", seed="eval-vqa-heldout"),  # 100 of each, unseen pairs
}
_HALVES = {"x": ("left", "right"), "y": ("top", "bottom")}
_WHERE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}


def instruction_tokenizer(max_len: int = 24) -> Tokenizer:
    """The world's words plus QUESTION_WORDS. The longest exchange, "<image> what is in the image?" and a
    12-word caption, is 21 tokens with <bos>/<eos>."""
    return Tokenizer(WORDS + QUESTION_WORDS, max_len)


@dataclass(frozen=True)
class QA:
    """One question about a scene, its answer and its kind (one of KINDS)."""
    question: str
    answer: str
    kind: str


def half(o: Obj, axis: str, res: int) -> str | None:
    """The half of the image the whole object lies in along `axis` ("left"/"right" for "x", "top"/"bottom" for "y"),
    or None when it crosses the middle line."""
    centre = o.x if axis == "x" else o.y
    if centre + o.r <= res / 2:
        return _HALVES[axis][0]
    if centre - o.r >= res / 2:
        return _HALVES[axis][1]
    return None


def _refer(scene: Scene, i: int, hide: str) -> str:
    """Names object i by its attributes other than `hide` ("the small circle"); when those fit both objects too,
    adds which one along the relation's axis ("the small circle on the left")."""
    o = scene.objects[i]
    attrs = [a for a in ("size", "colour", "shape") if a != hide]
    words = ["the"] + [getattr(o, a) for a in attrs] + (["object"] if hide == "shape" else [])
    if len(scene.objects) == 2:
        other = scene.objects[1 - i]
        if all(getattr(o, a) == getattr(other, a) for a in attrs):
            axis = "x" if scene.relation in ("to the left of", "to the right of") else "y"
            first = getattr(o, axis) < getattr(other, axis)
            words.append(_WHERE[_HALVES[axis][0 if first else 1]])
    return " ".join(words)


def _yes_no(scene: Scene, rng: random.Random, split: str) -> QA:
    """Half the time a present colour+shape ("yes"); else an absent one allowed in `split` ("no"), preferring one
    that shares its colour or shape with an object, so the answer needs both words bound to one object."""
    present = {(o.colour, o.shape) for o in scene.objects}
    if rng.random() < 0.5:
        (colour, shape), answer = rng.choice(sorted(present)), "yes"
    else:
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present and allowed(c, s, split)]
        near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
        (colour, shape), answer = rng.choice(near or absent), "no"
    return QA(f"is there a {colour} {shape}?", answer, "yes/no")


def ask(scene: Scene, kind: str, rng: random.Random, res: int = 32, split: str = "train") -> QA | None:
    """A random question of `kind` about the scene with its true answer, or None where the scene has none
    ("position": every object crosses both middle lines; "relation": one object). `split` limits yes/no negatives."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    i = rng.randrange(len(scene.objects))
    o = scene.objects[i]
    if kind in ("colour", "shape", "size"):
        return QA(f"what {kind} is {_refer(scene, i, hide=kind)}?", getattr(o, kind), kind)
    if kind == "position":
        options = [(j, axis) for j, p in enumerate(scene.objects) for axis in "xy" if half(p, axis, res)]
        if not options:
            return None
        j, axis = rng.choice(options)
        low, high = (_WHERE[h] for h in _HALVES[axis])
        return QA(f"is {_refer(scene, j, hide='size')} {low} or {high}?", half(scene.objects[j], axis, res), kind)
    if kind == "count":
        return QA("how many objects are there?", ("one", "two")[len(scene.objects) - 1], kind)
    if kind == "relation":
        if len(scene.objects) == 1:
            return None
        relation = scene.relation if i == 0 else INVERSE[scene.relation]  # where object i is relative to the other
        answer = relation.removeprefix("to the ").removesuffix(" of")  # left, right, above, below
        subject, anchor = _refer(scene, i, hide="size"), _refer(scene, 1 - i, hide="size")
        return QA(f"where is {subject} relative to {anchor}?", answer, kind)
    if kind == "yes/no":
        return _yes_no(scene, rng, split)
    flip = len(scene.objects) == 2 and rng.random() < 0.5  # either wording of a two-object scene is right
    return QA("what is in the image?", scene.caption(flip), kind)


@dataclass
class VQAData:
    """N rendered scenes with one question each: images (N, res, res, 3) uint8, the QAs, tokens (N, L) of
    "<bos> <image> question answer <eos>", answer_mask (N, L) True on the answer and <eos> (the tokens a model
    learns to say; LLaVA Sec. 4.2 trains on the answers only) and the scenes' metadata."""
    images: np.ndarray
    qas: list[QA]
    tokens: torch.Tensor
    answer_mask: torch.Tensor
    scenes: list[Scene]

    def __len__(self) -> int:
        return len(self.qas)


def _tokens(qas: list[QA], tokenizer: Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) token ids of "<image> question answer" and the (N, L) mask of answer tokens and <eos>."""
    tokens = tokenizer.encode_batch([f"{IMAGE} {qa.question} {qa.answer}" for qa in qas])  # (N, L)
    start = torch.tensor([2 + len(tokenizer.split(qa.question)) for qa in qas])  # after <bos> <image> question
    mask = (torch.arange(tokenizer.max_len) >= start[:, None]) & (tokens != tokenizer.pad_id)  # (N, L)
    return tokens, mask


def make_vqa(n: int, seed, tokenizer: Tokenizer, res: int = 32, p_two: float = 0.5, split: str = "train",
             kinds: tuple[str, ...] = KINDS) -> VQAData:
    """Render n scenes from `seed` and ask question i of kind kinds[i % len(kinds)], so the kinds are balanced.
    A scene that has no question of its kind (see `ask`) is drawn again."""
    if n <= 0:
        raise ValueError(f"n: expected a positive number of questions, got {n}")
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds: expected a non-empty tuple of {KINDS}, got {kinds!r}")
    if "relation" in kinds and p_two <= 0:
        raise ValueError(f"p_two: relation questions need two-object scenes, got p_two={p_two}")
    missing = [w for w in QUESTION_WORDS if w not in tokenizer.index]
    if missing:
        raise ValueError(f"tokenizer: lacks the question words {missing}; build it with instruction_tokenizer()")
    rng = random.Random(f"vqa:{split}:{seed}")  # "vqa:" keeps these scenes apart from make_shapes' at the same seed
    images = np.empty((n, res, res, 3), dtype=np.uint8)  # (N, res, res, 3)
    scenes, qas = [], []
    for i in range(n):
        qa = None
        while qa is None:
            scene = sample_scene(rng, res, p_two, split)
            qa = ask(scene, kinds[i % len(kinds)], rng, res, split)
        images[i] = render(scene, rng, res)
        scenes.append(scene)
        qas.append(qa)
    return VQAData(images, qas, *_tokens(qas, tokenizer), scenes)


def vqa_eval_set(name: str, tokenizer: Tokenizer, res: int = 32) -> VQAData:
    """One of the fixed evaluation sets in VQA_EVAL_SETS, identical on every call and machine."""
    if name not in VQA_EVAL_SETS:
        raise ValueError(f"name: expected one of {sorted(VQA_EVAL_SETS)}, got {name!r}")
    return make_vqa(tokenizer=tokenizer, res=res, **VQA_EVAL_SETS[name])


def vqa_correct(answer_text: str, qa: QA) -> bool:
    """Whether a model's answer is right: the same words, ignoring case and punctuation; for "describe", a caption
    with the same meaning (either wording of a relation). Text that is not a caption is wrong."""
    words = " ".join(re.findall(r"[a-z]+", answer_text.lower()))
    if qa.kind != "describe":
        return words == qa.answer
    try:
        return caption_meaning(words) == caption_meaning(qa.answer)
    except ValueError:
        return False


def vqa_accuracy(answers: list[str], qas: list[QA]) -> dict[str, float]:
    """Fraction of answers `vqa_correct`, per question kind (in KINDS order) and over "all"."""
    if len(answers) != len(qas) or not qas:
        raise ValueError(f"answers: expected one per question ({len(qas)}, at least one), got {len(answers)}")
    right = {}
    for answer, qa in zip(answers, qas):
        right.setdefault(qa.kind, []).append(vqa_correct(answer, qa))
    acc = {k: float(np.mean(right[k])) for k in KINDS if k in right}
    return acc | {"all": float(np.mean([r for rs in right.values() for r in rs]))}
