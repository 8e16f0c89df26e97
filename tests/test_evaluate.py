"""Metrics on cases whose answers are known: hand-built similarities, and a fake model whose embeddings we choose."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from minivlm.data import SHAPES, ShapesData, caption_meaning, make_shapes, preprocess, render, sample_scene
from minivlm.evaluate import CLASSES, ranks, retrieval, zero_shot


class LookupModel(nn.Module):
    """A stand-in for CLIP whose embedding of each image (by its pixels) and each caption (by its tokens) is given."""

    def __init__(self, images: np.ndarray, image_emb: torch.Tensor, tokens: torch.Tensor, text_emb: torch.Tensor):
        super().__init__()
        self.cfg = SimpleNamespace(image_size=32)
        self.anchor = nn.Parameter(torch.zeros(1))  # evaluate reads the device from the parameters
        self.images = {preprocess(img).numpy().tobytes(): e for img, e in zip(images, image_emb)}
        self.texts = {tuple(t.tolist()): e for t, e in zip(tokens, text_emb)}

    def encode_image(self, x):
        return torch.stack([self.images[row[None].numpy().tobytes()] for row in x])

    def encode_text(self, tokens):
        return torch.stack([self.texts[tuple(t.tolist())] for t in tokens])


def test_ranks_on_a_hand_built_similarity():
    sim = torch.tensor([[0.1, 0.9, 0.3],
                        [0.8, 0.2, 0.5],
                        [0.0, 0.1, 0.2]])
    # query 0 (a): items by score 1 (b), 2 (a) -> first right answer at rank 1
    # query 1 (b): 0 (a), 2 (a), 1 (b) -> rank 2;  query 2 (c): no item is c -> N = 3
    assert ranks(sim, ["a", "b", "c"], ["a", "b", "a"]).tolist() == [1, 2, 3]
    assert ranks(sim, ["b", "a", "a"], ["a", "b", "a"]).tolist() == [0, 0, 0]


def test_ranks_count_a_caption_with_the_same_meaning_as_a_hit():
    red, blue = "a small red circle", "a large blue square"
    items = [f"{blue} to the right of {red}", f"{red} to the right of {blue}", f"{red} above {blue}"]
    query = [f"{red} to the left of {blue}"]
    sim = torch.tensor([[0.9, 0.5, 0.1]])
    assert ranks(sim, [caption_meaning(q) for q in query], [caption_meaning(c) for c in items]).tolist() == [0]
    assert ranks(sim, query, items).tolist() == [3]  # as bare strings nothing matches


def _scenes_with_a_flipped_twin(n: int = 10):
    """n two-object scenes of distinct meanings, then scene 0 again (new pixels) captioned from the other side."""
    rng, scenes = random.Random(0), {}
    while len(scenes) < n:
        s = sample_scene(rng, 32, p_two=1.0)
        scenes.setdefault(s.meaning(), s)
    scenes = list(scenes.values()) + [next(iter(scenes.values()))]
    images = np.stack([render(s, rng) for s in scenes])
    captions = [s.caption() for s in scenes[:-1]] + [scenes[0].caption(flip=True)]
    return images, captions, scenes


def test_retrieval_judges_by_meaning(tokenizer):
    images, captions, scenes = _scenes_with_a_flipped_twin()
    data = ShapesData(images, captions, tokenizer.encode_batch(captions), scenes)
    n = len(data)
    assert not np.array_equal(images[0], images[-1]) and captions[0] != captions[-1]
    eye = torch.eye(n)
    swap = list(range(n))
    swap[0], swap[-1] = n - 1, 0  # image 0 is closest to the flipped caption, and image 10 to caption 0
    metrics = retrieval(LookupModel(images, eye, data.tokens, eye[swap]), data)
    assert metrics["i2t_r1"] == metrics["t2i_r1"] == 1.0  # wrong strings, right meanings
    assert metrics["i2t_median_rank"] == metrics["t2i_median_rank"] == 1.0

    wrong = eye.clone()
    wrong[3] = -wrong[3]  # caption 3 now sits farthest from its image: rank n - 1 both ways
    metrics = retrieval(LookupModel(images, eye, data.tokens, wrong), data, ks=(1, 10, 11))
    assert metrics["i2t_r1"] == metrics["t2i_r1"] == metrics["i2t_r10"] == pytest.approx((n - 1) / n)
    assert metrics["i2t_r11"] == metrics["t2i_r11"] == 1.0
    assert metrics["i2t_median_rank"] == 1.0


def test_zero_shot_on_known_embeddings(tokenizer):
    data = make_shapes(n=40, seed=0, tokenizer=tokenizer, p_two=0.0)
    prompts = tokenizer.encode_batch([f"a {z} {c} {s}" for z, c, s in CLASSES])
    true = [CLASSES.index((o.size, o.colour, o.shape)) for o in (s.objects[0] for s in data.scenes)]
    eye = torch.eye(len(CLASSES))

    perfect = zero_shot(LookupModel(data.images, eye[true], prompts, eye), data, tokenizer)
    assert perfect["acc"] == perfect["size_acc"] == perfect["colour_acc"] == perfect["shape_acc"] == 1.0
    assert perfect["pred"].tolist() == perfect["true"].tolist() == true

    # a model that sees size and colour but always takes the shape for the next one in SHAPES
    def shape_blind(c):
        size, colour, shape = CLASSES[c]
        return CLASSES.index((size, colour, SHAPES[(SHAPES.index(shape) + 1) % len(SHAPES)]))
    blind = zero_shot(LookupModel(data.images, eye[[shape_blind(c) for c in true]], prompts, eye), data, tokenizer)
    assert (blind["acc"], blind["size_acc"], blind["colour_acc"], blind["shape_acc"]) == (0.0, 1.0, 1.0, 0.0)
