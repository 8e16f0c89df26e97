"""The shapes world: determinism, held-out pairs, captions and their meaning, and geometry that matches the words."""
import random

import numpy as np
import pytest

from minivlm.data import COLOURS, HELD_OUT, RELATIONS, SHAPES, SIZES, caption_meaning, make_shapes, render, sample_scene
from minivlm.data.world import Obj, Scene


def _pairs_in_caption(caption: str) -> list[tuple[str, str]]:
    """(colour, shape) of every object a caption names, read from its words, not from scene metadata."""
    words = caption.split()
    return [(words[i + 1], words[i + 2]) for i, w in enumerate(words) if w in SIZES]


def _scenes(n: int, seed: int, p_two: float, split: str) -> list[Scene]:
    rng = random.Random(seed)
    return [sample_scene(rng, 32, p_two, split) for _ in range(n)]


def test_same_seed_gives_same_images_and_captions(tokenizer):
    a = make_shapes(n=60, seed=5, tokenizer=tokenizer, p_two=0.5)
    b = make_shapes(n=60, seed=5, tokenizer=tokenizer, p_two=0.5)
    c = make_shapes(n=60, seed=6, tokenizer=tokenizer, p_two=0.5)
    assert np.array_equal(a.images, b.images)
    assert a.captions == b.captions and a.scenes == b.scenes
    assert not np.array_equal(a.images, c.images) and a.captions != c.captions


def test_render_returns_uint8_image_of_the_scene_colour():
    rng = random.Random(0)
    for shape in SHAPES:
        scene = Scene((Obj(shape, "blue", "small", 16.0, 16.0, SIZES["small"] * 32),))
        img = render(scene, rng)
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        # the centre pixel lies inside every shape: the scene's colour within the ±20 jitter; the corners stay black
        assert np.abs(img[16, 16].astype(int) - COLOURS["blue"]).max() <= 20, shape
        assert img[0, 0].tolist() == [0, 0, 0] and img[-1, -1].tolist() == [0, 0, 0]
    assert render(scene, rng, res=64).shape == (64, 64, 3)


def test_train_split_never_shows_a_held_out_pair(tokenizer):
    data = make_shapes(n=1500, seed=1, tokenizer=tokenizer, p_two=0.5, split="train")
    seen = set()
    for scene, caption in zip(data.scenes, data.captions):
        in_image = {(o.colour, o.shape) for o in scene.objects}
        in_caption = set(_pairs_in_caption(caption))
        assert in_image == in_caption, caption
        assert not in_image & HELD_OUT, caption
        seen |= in_image
    assert seen == {(c, s) for c in COLOURS for s in SHAPES} - HELD_OUT  # every other pair does appear


def test_heldout_split_shows_only_held_out_pairs(tokenizer):
    data = make_shapes(n=300, seed=1, tokenizer=tokenizer, p_two=0.5, split="heldout")
    pairs = {p for c in data.captions for p in _pairs_in_caption(c)}
    assert pairs == set(HELD_OUT)
    assert {(o.colour, o.shape) for s in data.scenes for o in s.objects} == set(HELD_OUT)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split: expected 'train', 'heldout' or 'any', got 'test'"):
        sample_scene(random.Random(0), split="test")


@pytest.mark.parametrize("split", ["train", "heldout", "any"])
def test_two_objects_never_share_colour_and_shape(split):
    scenes = _scenes(2000, seed=2, p_two=1.0, split=split)
    assert all(len(s.objects) == 2 for s in scenes)
    for s in scenes:
        a, b = s.objects
        assert (a.colour, a.shape) != (b.colour, b.shape)


def test_relations_agree_with_geometry():
    scenes = _scenes(2000, seed=3, p_two=1.0, split="train")
    assert {s.relation for s in scenes} == set(RELATIONS)
    for s in scenes:
        a, b = s.objects  # the caption says "a RELATION b"
        for o in (a, b):
            assert o.r <= o.x <= 32 - o.r and o.r <= o.y <= 32 - o.r  # whole object inside the image
        if s.relation in ("to the left of", "to the right of"):
            left, right = (a, b) if s.relation == "to the left of" else (b, a)
            assert left.x + left.r <= 16 <= right.x - right.r  # opposite halves, no overlap
            assert abs(a.y - b.y) <= 2
        else:
            top, bottom = (a, b) if s.relation == "above" else (b, a)
            assert top.y + top.r <= 16 <= bottom.y - bottom.r  # image y grows downwards
            assert abs(a.x - b.x) <= 2


def test_rendered_objects_sit_where_the_metadata_says():
    rng = random.Random(4)
    for _ in range(50):
        scene = sample_scene(rng, 32, p_two=1.0)
        img = render(scene, rng)
        for o in scene.objects:
            pixel = img[int(o.y), int(o.x)].astype(int)
            assert np.abs(pixel - COLOURS[o.colour]).max() <= 40, (scene, pixel)  # jitter + anti-aliasing


def test_caption_meaning_equates_inverse_relations():
    red, blue = "a small red circle", "a large blue square"
    assert caption_meaning(f"{red} to the left of {blue}") == caption_meaning(f"{blue} to the right of {red}")
    assert caption_meaning(f"{red} above {blue}") == caption_meaning(f"{blue} below {red}")
    # ... and keeps apart what differs
    assert caption_meaning(f"{red} to the left of {blue}") != caption_meaning(f"{red} to the right of {blue}")
    assert caption_meaning(f"{red} to the left of {blue}") != caption_meaning(f"{red} above {blue}")
    assert caption_meaning(f"{red} above {blue}") != caption_meaning(f"{blue} above {red}")
    assert caption_meaning(red) != caption_meaning("a large red circle")
    with pytest.raises(ValueError, match="caption: not a sentence of the shapes world"):
        caption_meaning(f"{red} next to {blue}")


@pytest.mark.parametrize("caption", ["", "a small red", "a a a a", "the small red circle", "a small red blob",
                                     "a small red circle to the left of a large blue",
                                     "a small red circle above a large blue square square",
                                     "a small red circle to the left of above a large blue square"])
def test_caption_meaning_refuses_what_is_not_a_sentence(caption):
    """Generated text can be anything: only "a SIZE COLOUR SHAPE", or two joined by a relation, has a meaning."""
    with pytest.raises(ValueError, match="caption: not a sentence of the shapes world"):
        caption_meaning(caption)


def test_flipped_caption_means_the_same_scene():
    for s in _scenes(300, seed=5, p_two=1.0, split="train"):
        assert s.caption(flip=True) != s.caption()
        assert caption_meaning(s.caption(flip=True)) == caption_meaning(s.caption()) == s.meaning()


def test_reading_caption_names_the_left_or_top_object_first():
    """Every relation stated as left-of or above, the objects swapped where needed; one object: the plain caption."""
    for s in _scenes(300, seed=6, p_two=0.5, split="train"):
        c = s.reading_caption()
        assert caption_meaning(c) == s.meaning()
        if len(s.objects) == 1:
            assert c == s.caption()
            continue
        assert " to the right of " not in c and " below " not in c
        first = next(o for o in s.objects if c.startswith(o.phrase))
        other = next(o for o in s.objects if o is not first)
        assert (first.x < other.x) if " to the left of " in c else (first.y < other.y)
