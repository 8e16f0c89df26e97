"""The judge: a small CNN that reads a rendered scene back into its meaning, to score images a model made (the
reconstructions of a tokenizer, DALL-E's samples). It plays the part of the automatic scorers of text-to-image
work, a detector or classifier trained on the data's labels rather than a human rater.

Targets follow `world.caption_meaning`'s canonical order: a two-object relation is stated as "to the left of" or
"above", with the left (or upper) object in slot 0, so every scene has one set of targets and the relation head
has 2 classes. Slot 1 and the relation are masked out of the loss for one-object scenes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minivlm.models.vqvae import check_images

# the world's labels (data.world's COLOURS, SHAPES and SIZES, in order; tests/test_judge.py checks they agree)
COLOUR_NAMES = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
SIZE_NAMES = ("small", "large")
CANONICAL_RELATIONS = ("to the left of", "above")  # caption_meaning states the other two from the other side
HEADS = {"count": 2, "colour0": len(COLOUR_NAMES), "shape0": len(SHAPES), "size0": len(SIZE_NAMES),
         "colour1": len(COLOUR_NAMES), "shape1": len(SHAPES), "size1": len(SIZE_NAMES), "relation": 2}
TWO_OBJECT_HEADS = ("colour1", "shape1", "size1", "relation")  # masked for one-object scenes


@dataclass
class JudgeConfig:
    image_size: int = 32
    channels: int = 3
    width: int = 64
    hidden: int = 256


def scene_targets(scenes: list) -> dict[str, torch.Tensor]:
    """Scenes (anything with `meaning()`, as data.world.Scene) -> {head: (B,) int64 class ids}, from each scene's
    canonical meaning; "count" is 0 for one object and
    1 for two, and the two-object heads hold 0 (ignored by the loss) for one-object scenes."""
    rows = []
    for scene in scenes:
        meaning = scene.meaning()
        objs = (meaning[0], meaning[2]) if len(meaning) == 3 else (meaning[0],)
        row = {"count": len(objs) - 1, "relation": CANONICAL_RELATIONS.index(meaning[1]) if len(objs) == 2 else 0}
        for slot in range(2):
            size, colour, shape = objs[slot] if slot < len(objs) else (SIZE_NAMES[0], COLOUR_NAMES[0], SHAPES[0])
            row.update({f"colour{slot}": COLOUR_NAMES.index(colour), f"shape{slot}": SHAPES.index(shape),
                        f"size{slot}": SIZE_NAMES.index(size)})
        rows.append(row)
    return {head: torch.tensor([r[head] for r in rows], dtype=torch.long) for head in HEADS}  # each (B,)


def meaning_of(classes: dict[str, int]) -> tuple:
    """One image's predicted class ids -> a meaning tuple in `world.caption_meaning`'s format."""
    objs = [(SIZE_NAMES[classes[f"size{k}"]], COLOUR_NAMES[classes[f"colour{k}"]], SHAPES[classes[f"shape{k}"]])
            for k in range(classes["count"] + 1)]
    return (objs[0],) if len(objs) == 1 else (objs[0], CANONICAL_RELATIONS[classes["relation"]], objs[1])


class Judge(nn.Module):
    """images (B, 3, 32, 32) in [-1, 1] -> {head: logits (B, classes)}. Three conv layers with GroupNorm down to an
    8×8 map, flattened (not pooled: where things are decides the slots and the relation), then an MLP and 8 heads."""

    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.features = nn.Sequential(
            nn.Conv2d(cfg.channels, w // 2, 4, stride=2, padding=1), nn.GroupNorm(8, w // 2), nn.ReLU(),  # 32 -> 16
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.ReLU(),  # 16 -> 8
            nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(8, w), nn.ReLU())
        side = cfg.image_size // 4
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(w * side * side, cfg.hidden), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.hidden, n) for name, n in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images(images, self.cfg.channels, self.cfg.image_size)
        h = self.mlp(self.features(images))  # (B, hidden)
        return {name: head(h) for name, head in self.heads.items()}  # each (B, classes)

    def loss(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the heads' cross-entropies; the two-object heads average over two-object scenes only."""
        logits = self(images)
        two = targets["count"] == 1  # (B,)
        loss = sum(F.cross_entropy(logits[h], targets[h]) for h in HEADS if h not in TWO_OBJECT_HEADS)
        if two.any():
            loss = loss + sum(F.cross_entropy(logits[h][two], targets[h][two]) for h in TWO_OBJECT_HEADS)
        return loss

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[tuple]:
        """images (B, 3, 32, 32) -> B meaning tuples, comparable with `scene.meaning()`."""
        classes = {h: v.argmax(-1).tolist() for h, v in self(images).items()}  # each B ints
        return [meaning_of({h: classes[h][i] for h in HEADS}) for i in range(len(images))]


def colours_and_shapes(meaning: tuple) -> list[tuple[str, str]]:
    """The (colour, shape) of every object of a meaning, sorted: what a scene shows, whatever its layout."""
    return sorted(obj[1:] for obj in meaning if isinstance(obj, tuple))
