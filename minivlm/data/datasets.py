"""Cached arrays of rendered scenes: the training set and the fixed evaluation sets."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import Scene, caption_meaning, render, sample_scene

# Evaluation sets are drawn from their own fixed seeds, never from a training seed.
EVAL_SETS = {
    "zeroshot": dict(n=2000, p_two=0.0, split="train", seed="eval-zeroshot"),  # single objects, seen pairs
    "heldout": dict(n=1000, p_two=0.0, split="heldout", seed="eval-heldout"),  # single objects, unseen pairs
    "mixed": dict(n=1000, p_two=0.5, split="train", seed="eval-mixed"),  # retrieval, half two-object
    "two": dict(n=1000, p_two=1.0, split="train", seed="eval-two"),  # retrieval, all two-object
}


@dataclass
class ShapesData:
    """N rendered scenes kept as arrays: images (N, res, res, 3) uint8, captions, tokens (N, L), meaning_ids (N,)
    (equal where two captions say the same thing, see `meaning_ids`) and the scenes' metadata."""
    images: np.ndarray
    captions: list[str]
    tokens: torch.Tensor
    meanings: torch.Tensor
    scenes: list[Scene] | None = None

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, idx) -> "ShapesData":
        idx = np.asarray(idx)
        t = torch.as_tensor(idx)
        return ShapesData(self.images[idx], [self.captions[i] for i in idx], self.tokens[t], self.meanings[t],
                          None if self.scenes is None else [self.scenes[i] for i in idx])


def meaning_ids(captions: list[str]) -> torch.Tensor:
    """(N,) int64 ids, equal exactly where captions mean the same scene ("A left of B" == "B right of A").
    A caption that is not a sentence of the world only shares its id with identical text."""
    ids = {}

    def key(caption):
        try:
            return caption_meaning(caption)
        except ValueError:
            return caption
    return torch.tensor([ids.setdefault(key(c), len(ids)) for c in captions], dtype=torch.long)


def make_shapes(n: int, seed, tokenizer: Tokenizer, res: int = 32, p_two: float = 0.2, split: str = "train",
                p_flip: float = 0.5, progress: bool = False) -> ShapesData:
    """Render n scenes from `seed`; a two-object caption is stated from the other object's side with p_flip."""
    if n <= 0:
        raise ValueError(f"n: expected a positive number of scenes, got {n}")
    rng = random.Random(f"{split}:{seed}")  # a string seed is hashed the same way on every machine
    images = np.empty((n, res, res, 3), dtype=np.uint8)  # (N, res, res, 3)
    scenes, captions = [], []
    for i in tqdm(range(n), desc="rendering", disable=not progress, leave=False):
        scene = sample_scene(rng, res, p_two, split)
        images[i] = render(scene, rng, res)
        scenes.append(scene)
        captions.append(_caption(scene, rng, p_flip))
    return ShapesData(images, captions, tokenizer.encode_batch(captions), meaning_ids(captions), scenes)


def _caption(scene: Scene, rng: random.Random, p_flip: float) -> str:
    return scene.caption(flip=len(scene.objects) == 2 and rng.random() < p_flip)


def make_captions(n: int, seed, p_two: float = 0.2, split: str = "train", p_flip: float = 0.5) -> list[str]:
    """The captions of n random scenes, without drawing them: text for a language model alone."""
    if n <= 0:
        raise ValueError(f"n: expected a positive number of captions, got {n}")
    rng = random.Random(f"captions:{split}:{seed}")
    return [_caption(sample_scene(rng, p_two=p_two, split=split), rng, p_flip) for _ in range(n)]


def eval_set(name: str, tokenizer: Tokenizer, res: int = 32) -> ShapesData:
    """One of the fixed evaluation sets in EVAL_SETS, identical on every call and machine."""
    if name not in EVAL_SETS:
        raise ValueError(f"name: expected one of {sorted(EVAL_SETS)}, got {name!r}")
    return make_shapes(tokenizer=tokenizer, res=res, **EVAL_SETS[name])


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless stream of index batches: a fresh permutation each epoch, the last short batch dropped."""
    if batch_size > n:
        raise ValueError(f"batch_size: {batch_size} is larger than the dataset ({n} samples)")
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]
