"""Flamingo's four training sources: shapes, one placeholder per image, texts that say the truth about their images
(videos really move that way, documents keep one format, pairs answer right), determinism and bad arguments."""
import numpy as np
import pytest
import torch

from minivlm.data.documents import (FORMATS, INVENTED, MOTIONS, document_text, flamingo_tokenizer,
                                    make_captions_media, make_documents, make_pairs, make_videos, moving)
from minivlm.data.world import caption_meaning


@pytest.fixture(scope="module")
def tok():
    return flamingo_tokenizer()


def _placeholders(data, tok) -> list[int]:
    return (data.tokens == tok.image_id).sum(dim=1).tolist()


def test_captions_are_one_image_and_its_caption(tok):
    data = make_captions_media(40, 0, tok)
    assert data.media.shape == (40, 1, 1, 32, 32, 3) and data.media.dtype == np.uint8
    assert _placeholders(data, tok) == [1] * 40
    for text, (target,), (scene,) in zip(data.texts, data.targets, data.scenes):
        assert text == f"<image> {target}" and caption_meaning(target) == scene.meaning()


def test_reading_order_names_the_left_or_top_object_first_in_the_same_scenes(tok):
    either, reading = make_captions_media(200, 0, tok), make_captions_media(200, 0, tok, reading_order=True)
    assert np.array_equal(either.media, reading.media)
    two = [i for i, (scene,) in enumerate(reading.scenes) if len(scene.objects) == 2]
    said = {" ".join(reading.targets[i][0].split()[4:-4]) for i in two}  # the words between the two objects
    assert said == {"to the left of", "above"} and len(two) > 50
    assert {" ".join(either.targets[i][0].split()[4:-4]) for i in two} == {"to the left of", "to the right of",
                                                                            "above", "below"}
    for (a,), (b,), (scene,) in zip(either.targets, reading.targets, reading.scenes):
        assert caption_meaning(a) == caption_meaning(b) == scene.meaning()
        first = b.split()[1:4]  # size, colour, shape of the object named first
        if len(scene.objects) == 2:
            named = next(o for o in scene.objects if [o.size, o.colour, o.shape] == first)
            other = next(o for o in scene.objects if o is not named)
            assert (named.x < other.x) if "left" in b else (named.y < other.y)  # left of, or above, the other


def _centre(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(frame.max(axis=-1) > 60)  # the object's pixels on the black background
    return np.array([xs.mean(), ys.mean()])


def test_videos_move_the_way_their_caption_says(tok):
    data = make_videos(60, 0, tok, frames=3, step=4.0)
    assert data.media.shape == (60, 1, 3, 32, 32, 3)
    for clip, (caption,), (scene,) in zip(data.media[:, 0], data.targets, data.scenes):
        direction = caption.split()[-1]
        assert caption == f"{scene.caption()} moving {direction}"
        shift = _centre(clip[-1]) - _centre(clip[0])  # (dx, dy) in pixels over two frames
        assert np.allclose(shift, 8 * np.array(MOTIONS[direction]), atol=1.5), (caption, shift)
        fills = [frame.reshape(-1, 3).max(axis=0) for frame in clip]  # the fill colour: antialiasing only darkens
        assert all((f == fills[0]).all() for f in fills)  # one colour jitter for the whole clip
    assert {c[0].split()[-1] for c in data.targets} == set(MOTIONS)


def test_moving_keeps_the_object_and_shifts_its_centre(tok):
    (scene,) = make_videos(1, 3, tok).scenes[0]
    moved = moving(scene, "up", 2, 3.0).objects[0]
    o = scene.objects[0]
    assert (moved.shape, moved.colour, moved.size, moved.r) == (o.shape, o.colour, o.size, o.r)
    assert (moved.x, moved.y) == (o.x, o.y - 6.0)


def test_documents_keep_one_format_and_fit_the_context(tok):
    data = make_documents(80, 0, tok, images=5)
    assert data.media.shape == (80, 5, 1, 32, 32, 3) and _placeholders(data, tok) == [5] * 80
    seen = set()
    for text, answers, scenes in zip(data.texts, data.targets, data.scenes):
        fmt = [f for f, say in FORMATS.items() if [say(s) for s in scenes] == answers]
        assert fmt, text  # every answer is the same kind of fact about its own image
        seen.add(fmt[0])
        assert text == document_text(answers)
    assert seen == set(FORMATS)
    assert document_text(["red", "blue"]) == "<image> red . <image> blue ."
    assert len(tok.encode(document_text(["red circle"] * 5))) <= tok.max_len  # the longest document fits


def test_pairs_answer_whether_the_shapes_match(tok):
    data = make_pairs(100, 0, tok)
    assert data.media.shape == (100, 2, 1, 32, 32, 3) and _placeholders(data, tok) == [2] * 100
    answers = [t[-1] for t in data.targets]
    for text, answer, (a, b) in zip(data.texts, answers, data.scenes):
        assert text == f"same shape ? <image> and <image> {answer}"
        assert (answer == "yes") == (a.objects[0].shape == b.objects[0].shape)
        assert a.objects[0].colour != b.objects[0].colour  # the answer needs the shapes
    assert 30 <= answers.count("yes") <= 70


@pytest.mark.parametrize("make", [make_captions_media, make_videos, make_documents, make_pairs])
def test_sources_are_deterministic_at_a_seed(tok, make):
    a, b, c = make(5, 1, tok), make(5, 1, tok), make(5, 2, tok)
    assert np.array_equal(a.media, b.media) and a.texts == b.texts and torch.equal(a.tokens, b.tokens)
    assert not np.array_equal(a.media, c.media)
    sub = a.subset([3, 1])
    assert sub.texts == [a.texts[3], a.texts[1]] and np.array_equal(sub.media[0], a.media[3])


def test_heldout_pairs_stay_out_of_training_sources(tok):
    from minivlm.data.world import HELD_OUT
    for data in (make_captions_media(200, 0, tok), make_documents(40, 0, tok), make_videos(100, 0, tok)):
        for scenes in data.scenes:
            assert not any((o.colour, o.shape) in HELD_OUT for s in scenes for o in s.objects)


def test_invented_words_are_tokens_that_no_training_text_contains(tok):
    """Fast binding's words (recipes/fewshot.py) are in the tokenizer, each one token, and in none of the four
    training sources: not in their texts, not in their tokens (which the LM is also pretrained on)."""
    from minivlm.recipes.flamingo import SOURCES, FlamingoRecipe, make_sources
    ids = [tok.index[w] for w in INVENTED]
    assert len(set(INVENTED)) == 4 and all(tok.encode(w)[1:-1] == [i] for w, i in zip(INVENTED, ids))
    recipe = FlamingoRecipe(n={"captions": 400, "videos": 100, "documents": 200, "pairs": 100})
    sources = make_sources(recipe, 0, tok)
    for name in SOURCES:
        words = {w for t in sources[name].texts for w in tok.split(t)}
        assert words and not words & set(INVENTED), name
        assert not torch.isin(sources[name].tokens, torch.tensor(ids)).any(), name
    every_format = make_documents(300, 1, tok, images=5)  # every format, many scenes
    assert not {w for t in every_format.texts for w in tok.split(t)} & set(INVENTED)


@pytest.mark.parametrize("call, message", [
    (lambda tok: make_captions_media(0, 0, tok), "n: expected a positive number"),
    (lambda tok: make_videos(2, 0, tok, frames=0), "frames: expected a positive number"),
    (lambda tok: make_documents(2, 0, tok, images=0), "images: expected a positive number"),
    (lambda tok: make_documents(2, 0, tok, formats=("mood",)), "formats: expected a non-empty tuple"),
    (lambda tok: make_pairs(-1, 0, tok), "n: expected a positive number"),
])
def test_bad_arguments_are_refused(tok, call, message):
    with pytest.raises(ValueError, match=message):
        call(tok)
