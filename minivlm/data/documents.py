"""Flamingo's training mixture from the shapes world (Alayrac et al. 2022, Sec. 2.4): image-caption pairs, short
"videos" with captions, and interleaved multi-image documents, plus two-image questions.

Every source is a `Media` set: media (N, M, T, S, S, 3) uint8 (M images of T frames per row), the texts with one
<image> placeholder per image, their tokens, and a `target` per image (what the text says about it, for grading).

- captions: "<image> a small red circle" (M = 1, T = 1), the ALIGN/LTIP pairs of the paper;
- videos: T frames of one object gliding in a direction, "<image> a small red circle moving left" (M = 1), the
  paper's VTP clips, which exercise the resampler's time embeddings;
- documents: M images and after each one the same kind of fact, "<image> red . <image> blue . <image> green ."
  (the document's format: colour, shape, size or colour and shape), the paper's M3W web pages. Read left to right,
  image i comes with i earlier examples of the format: few-shot prompts are documents cut after an <image>;
- pairs: "same shape ? <image> and <image> yes" (M = 2), a question about two images. The question comes first,
  so that a prompt "<image>" alone is never the start of one.

INVENTED words ("dax", "blicket", ...) are in the tokenizer but in no training text: Frozen's fast-binding test
(Tsimpoukelli et al. 2021, Sec. 4.2, recipes/fewshot.py) names shapes with them in a prompt's examples only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from minivlm.data.tokenizer import IMAGE, Tokenizer
from minivlm.data.world import WORDS, Obj, Scene, render, sample_scene

MOTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # direction -> (dx, dy) per frame
FORMATS = {  # a document's format: what it says after each image
    "colour": lambda s: s.objects[0].colour,
    "shape": lambda s: s.objects[0].shape,
    "size": lambda s: s.objects[0].size,
    "colour shape": lambda s: f"{s.objects[0].colour} {s.objects[0].shape}",
}
DOC_WORDS = ("moving", "up", "down", ".", "and", "same", "shape", "?", "yes", "no")
INVENTED = ("dax", "blicket", "wug", "zup")  # Frozen's nonsense words: tokens that no training text contains


def flamingo_tokenizer(max_len: int = 24) -> Tokenizer:
    """The world's words, DOC_WORDS and the INVENTED words. A 5-image "colour shape" document is 1 + 5 x 4 + 1 = 22
    tokens."""
    return Tokenizer(WORDS + DOC_WORDS + INVENTED, max_len)


@dataclass
class Media:
    """N rows of interleaved text and media: media (N, M, T, S, S, 3) uint8, texts, tokens (N, L) with M <image>
    placeholders each, targets[i][j] what text i says about its image j, scenes[i][j] image j's scene (frame 0)."""
    media: np.ndarray
    texts: list[str]
    tokens: torch.Tensor
    targets: list[list[str]]
    scenes: list[list[Scene]]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> "Media":
        idx = np.asarray(idx)
        return Media(self.media[idx], [self.texts[i] for i in idx], self.tokens[torch.as_tensor(idx)],
                     [self.targets[i] for i in idx], [self.scenes[i] for i in idx])


def _check(n: int, name: str = "n") -> None:
    if n <= 0:
        raise ValueError(f"{name}: expected a positive number, got {n}")


def make_captions_media(n: int, seed, tokenizer: Tokenizer, res: int = 32, p_two: float = 0.5,
                        split: str = "train", reading_order: bool = False) -> Media:
    """n image-caption pairs, "<image> caption" (M = T = 1); a two-object caption in either wording, or with
    `reading_order` always naming the left (or top) object first. The scenes are the same either way."""
    _check(n)
    rng = random.Random(f"flamingo-captions:{split}:{seed}")
    media = np.empty((n, 1, 1, res, res, 3), dtype=np.uint8)  # (N, 1, 1, S, S, 3)
    scenes = [sample_scene(rng, res, p_two, split) for _ in range(n)]
    captions = []
    for i, scene in enumerate(scenes):
        media[i, 0, 0] = render(scene, rng, res)
        flip = len(scene.objects) == 2 and rng.random() < 0.5  # drawn in either mode: the next images stay the same
        captions.append(scene.reading_caption() if reading_order else scene.caption(flip=flip))
    texts = [f"{IMAGE} {c}" for c in captions]
    return Media(media, texts, tokenizer.encode_batch(texts), [[c] for c in captions], [[s] for s in scenes])


def moving(scene: Scene, direction: str, t: int, step: float) -> Scene:
    """The one-object scene `scene` after t frames of moving `step` pixels per frame in `direction`."""
    (dx, dy), o = MOTIONS[direction], scene.objects[0]
    return Scene((Obj(o.shape, o.colour, o.size, o.x + t * step * dx, o.y + t * step * dy, o.r),))


def make_videos(n: int, seed, tokenizer: Tokenizer, frames: int = 3, step: float = 4.0, res: int = 32,
                split: str = "train") -> Media:
    """n clips of `frames` frames (M = 1, T = frames): one object moving `step` px per frame, left, right, up or
    down, staying whole in the picture; "<image> a small red circle moving left". Every frame has the same colour."""
    _check(n)
    _check(frames, "frames")
    rng = random.Random(f"flamingo-videos:{split}:{seed}")
    media = np.empty((n, 1, frames, res, res, 3), dtype=np.uint8)  # (N, 1, T, S, S, 3)
    texts, targets, scenes = [], [], []
    travel = (frames - 1) * step
    for i in range(n):
        direction = rng.choice(tuple(MOTIONS))
        while True:  # a start from which the whole path stays in the picture
            scene = sample_scene(rng, res, p_two=0.0, split=split)
            end = moving(scene, direction, frames - 1, step).objects[0]
            if end.r <= end.x <= res - end.r and end.r <= end.y <= res - end.r:
                break
        colour = rng.getstate()
        for t in range(frames):
            rng.setstate(colour)  # the same colour jitter in every frame
            media[i, 0, t] = render(moving(scene, direction, t, step), rng, res)
        caption = f"{scene.caption()} moving {direction}"
        texts.append(f"{IMAGE} {caption}")
        targets.append([caption])
        scenes.append([scene])
    return Media(media, texts, tokenizer.encode_batch(texts), targets, scenes)


def document_text(answers: list[str]) -> str:
    """The text of a document whose images are followed by `answers`: "<image> red . <image> blue ." """
    return " ".join(f"{IMAGE} {a} ." for a in answers)


def make_documents(n: int, seed, tokenizer: Tokenizer, images: int = 5, formats=tuple(FORMATS), res: int = 32,
                   split: str = "train") -> Media:
    """n documents of `images` one-object images (M = images, T = 1), each in one format drawn from `formats`:
    after every image, that fact about it and a full stop."""
    _check(n)
    _check(images, "images")
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"formats: expected a non-empty tuple of {tuple(FORMATS)}, got {formats!r}")
    rng = random.Random(f"flamingo-documents:{split}:{seed}")
    media = np.empty((n, images, 1, res, res, 3), dtype=np.uint8)  # (N, M, 1, S, S, 3)
    texts, targets, scenes = [], [], []
    for i in range(n):
        fmt = rng.choice(formats)
        doc = [sample_scene(rng, res, p_two=0.0, split=split) for _ in range(images)]
        for j, scene in enumerate(doc):
            media[i, j, 0] = render(scene, rng, res)
        answers = [FORMATS[fmt](s) for s in doc]
        texts.append(document_text(answers))
        targets.append(answers)
        scenes.append(doc)
    return Media(media, texts, tokenizer.encode_batch(texts), targets, scenes)


def make_pairs(n: int, seed, tokenizer: Tokenizer, res: int = 32, split: str = "train") -> Media:
    """n two-image questions "same shape ? <image> and <image> yes|no" (M = 2, T = 1), half of them "yes"; the two
    objects differ in colour, so the answer needs the shapes."""
    _check(n)
    rng = random.Random(f"flamingo-pairs:{split}:{seed}")
    media = np.empty((n, 2, 1, res, res, 3), dtype=np.uint8)  # (N, 2, 1, S, S, 3)
    texts, targets, scenes = [], [], []
    for i in range(n):
        same = rng.random() < 0.5
        a = sample_scene(rng, res, p_two=0.0, split=split)
        while True:
            b = sample_scene(rng, res, p_two=0.0, split=split)
            if (b.objects[0].shape == a.objects[0].shape) == same and b.objects[0].colour != a.objects[0].colour:
                break
        media[i, 0, 0], media[i, 1, 0] = render(a, rng, res), render(b, rng, res)
        answer = "yes" if same else "no"
        texts.append(f"same shape ? {IMAGE} and {IMAGE} {answer}")
        targets.append([answer])
        scenes.append([a, b])
    return Media(media, texts, tokenizer.encode_batch(texts), targets, scenes)
