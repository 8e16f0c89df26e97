"""The shapes world: procedural scenes of one or two coloured shapes, their captions and their meaning.

Every image is drawn with Pillow from a `random.Random(seed)`, so the same seed gives the same pixels on any
machine. A `Scene` keeps the metadata (shape, colour, size, position of each object, and the relation between
them), which later lessons turn into questions and interleaved documents.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (235, 225, 40),
    "purple": (160, 60, 210),
    "orange": (245, 140, 20),
    "cyan": (40, 220, 230),
    "white": (235, 235, 235),
}
SIZES = {"small": 0.13, "large": 0.20}  # radius as a fraction of the image side
RELATIONS = ("to the left of", "to the right of", "above", "below")
BACKWARD = ("to the right of", "below")  # relations that name the right (or bottom) object first
INVERSE = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}
# (colour, shape) pairs that never appear in training images or captions: one per shape, every colour still seen.
HELD_OUT = frozenset({("green", "circle"), ("green", "star"), ("orange", "triangle"),
                      ("white", "diamond"), ("yellow", "cross"), ("yellow", "square")})
WORDS = ("a", "to", "the", "left", "right", "of", "above", "below") + tuple(SIZES) + tuple(COLOURS) + SHAPES


@dataclass(frozen=True)
class Obj:
    """One drawn object: what it is and where it is (centre x, y and radius in pixels)."""
    shape: str
    colour: str
    size: str
    x: float
    y: float
    r: float

    @property
    def phrase(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A scene's metadata. With two objects, `relation` says where objects[0] is relative to objects[1]."""
    objects: tuple[Obj, ...]
    relation: str | None = None

    def caption(self, flip: bool = False) -> str:
        """Plain-English caption; `flip` states a two-object relation from the other object's side."""
        if len(self.objects) == 1:
            return self.objects[0].phrase
        a, b = self.objects
        if flip:
            return f"{b.phrase} {INVERSE[self.relation]} {a.phrase}"
        return f"{a.phrase} {self.relation} {b.phrase}"

    def reading_caption(self) -> str:
        """The caption in reading order: the left (or the top) object named first, as `caption_meaning` states it."""
        return self.caption(flip=self.relation in BACKWARD)

    def meaning(self) -> tuple:
        return caption_meaning(self.caption())


def _object(words: list[str]) -> tuple[str, str, str] | None:
    """["a", size, colour, shape] -> (size, colour, shape); None when the words are not such a phrase."""
    if len(words) == 4 and words[0] == "a" and words[1] in SIZES and words[2] in COLOURS and words[3] in SHAPES:
        return tuple(words[1:])
    return None


def caption_meaning(caption: str) -> tuple:
    """A canonical key for what a caption says: "A left of B" and "B right of A" get the same key.
    Anything but a sentence of the world (a generated "a small red", "a a a a") is a ValueError."""
    words = caption.split()
    if (a := _object(words)) is not None:
        return (a,)
    for rel in RELATIONS:
        n = len(rel.split())
        a, b = _object(words[:4]), _object(words[4 + n:])
        if a is not None and b is not None and " ".join(words[4:4 + n]) == rel:
            if rel in BACKWARD:  # state every relation as left-of or above
                a, b, rel = b, a, INVERSE[rel]
            return (a, rel, b)
    raise ValueError(f"caption: not a sentence of the shapes world: {caption!r}")


def allowed(colour: str, shape: str, split: str) -> bool:
    """Whether a colour×shape pair may be drawn in `split` ("train": never the held-out pairs; "heldout": only them)."""
    if split == "train":
        return (colour, shape) not in HELD_OUT
    if split == "heldout":
        return (colour, shape) in HELD_OUT
    if split == "any":
        return True
    raise ValueError(f"split: expected 'train', 'heldout' or 'any', got {split!r}")


def _pick_kind(rng: random.Random, split: str, exclude: tuple[str, str] | None = None) -> tuple[str, str, str]:
    while True:
        colour, shape = rng.choice(tuple(COLOURS)), rng.choice(SHAPES)
        if allowed(colour, shape, split) and (colour, shape) != exclude:
            return colour, shape, rng.choice(tuple(SIZES))


def _radius(rng: random.Random, size: str, res: int) -> float:
    return SIZES[size] * res * rng.uniform(0.9, 1.1)


def sample_scene(rng: random.Random, res: int = 32, p_two: float = 0.2, split: str = "train") -> Scene:
    """Draw a random scene's metadata. Two objects sit in opposite halves, at most 2 px apart on the other axis."""
    if rng.random() >= p_two:
        colour, shape, size = _pick_kind(rng, split)
        r = _radius(rng, size, res)
        return Scene((Obj(shape, colour, size, rng.uniform(r, res - r), rng.uniform(r, res - r), r),))
    c1, s1, z1 = _pick_kind(rng, split)
    c2, s2, z2 = _pick_kind(rng, split, exclude=(c1, s1))
    r1, r2 = _radius(rng, z1, res), _radius(rng, z2, res)
    relation = rng.choice(RELATIONS)
    # along the relation's axis: the first object in its half, the second in the other half
    first_low = relation in ("to the left of", "above")
    lo1, hi1 = (r1, res / 2 - r1) if first_low else (res / 2 + r1, res - r1)  # whole object in its half
    lo2, hi2 = (res / 2 + r2, res - r2) if first_low else (r2, res / 2 - r2)
    along1, along2 = rng.uniform(lo1, hi1), rng.uniform(lo2, hi2)
    rmax = max(r1, r2)
    across1 = rng.uniform(rmax, res - rmax)
    across2 = min(max(across1 + rng.uniform(-2, 2), rmax), res - rmax)
    if relation in ("to the left of", "to the right of"):
        (x1, y1), (x2, y2) = (along1, across1), (along2, across2)
    else:
        (x1, y1), (x2, y2) = (across1, along1), (across2, along2)
    return Scene((Obj(s1, c1, z1, x1, y1, r1), Obj(s2, c2, z2, x2, y2, r2)), relation)


def _outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Polygon vertices of a shape centred at (x, y) with 'radius' r (circles are drawn as ellipses)."""
    if shape == "square":
        s = r * 0.85
        return [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    if shape == "diamond":
        return [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    if shape == "triangle":
        return [(x + r * math.cos(a), y + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":
        return [(x + (r if k % 2 == 0 else 0.45 * r) * math.cos(-math.pi / 2 + k * math.pi / 5),
                 y + (r if k % 2 == 0 else 0.45 * r) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    if shape == "cross":
        a, b = r, r * 0.35
        return [(x - b, y - a), (x + b, y - a), (x + b, y - b), (x + a, y - b), (x + a, y + b), (x + b, y + b),
                (x + b, y + a), (x - b, y + a), (x - b, y + b), (x - a, y + b), (x - a, y - b), (x - b, y - b)]
    raise ValueError(f"shape: unknown {shape!r}")


def render(scene: Scene, rng: random.Random, res: int = 32) -> np.ndarray:
    """Draw a scene on black at 2x resolution, then downsample for cheap anti-aliasing. Returns (res, res, 3) uint8."""
    img = Image.new("RGB", (2 * res, 2 * res))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        rgb = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLOURS[o.colour])
        x, y, r = 2 * o.x, 2 * o.y, 2 * o.r
        if o.shape == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=rgb)
        else:
            draw.polygon(_outline(o.shape, x, y, r), fill=rgb)
    return np.asarray(img.reduce(2))  # (res, res, 3)
