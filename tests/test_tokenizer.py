"""Tokenizer: every caption the world writes survives encode -> decode; bad text is refused with a clear message."""
import itertools

import pytest
import torch

from minivlm.data import COLOURS, RELATIONS, SHAPES, SIZES, Tokenizer
from minivlm.data.tokenizer import SPECIALS

SINGLE = [f"a {z} {c} {s}" for z, c, s in itertools.product(SIZES, COLOURS, SHAPES)]
PAIRS = [f"a small red circle {rel} a large yellow star" for rel in RELATIONS]


@pytest.mark.parametrize("captions", [SINGLE, PAIRS], ids=["one object", "two objects"])
def test_round_trip(tokenizer, captions):
    for caption in captions:
        ids = tokenizer.encode(caption)
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
        assert len(ids) == len(caption.split()) + 2
        assert tokenizer.decode(ids) == caption


def test_batch_round_trip_pads_with_pad_id(tokenizer, small_data):
    tokens = tokenizer.encode_batch(small_data.captions)
    assert tokens.shape == (len(small_data), 16) and tokens.dtype == torch.long
    assert torch.equal(tokens, small_data.tokens)
    for row, caption in zip(tokens, small_data.captions):
        assert tokenizer.decode(row) == caption
        n = len(caption.split()) + 2
        assert (row[n:] == tokenizer.pad_id).all() and (row[:n] != tokenizer.pad_id).all()


def test_longest_caption_fits(tokenizer):
    longest = "a small purple triangle to the right of a large orange diamond"  # 12 words + <bos>/<eos>
    assert tokenizer.decode(tokenizer.encode_batch([longest])[0]) == longest


def test_case_and_punctuation(tokenizer):
    assert tokenizer.encode("A Small RED circle") == tokenizer.encode("a small red circle")
    assert tokenizer.split("A red circle? Yes.") == ["a", "red", "circle", "?", "yes", "."]


def test_unknown_word_is_refused_unless_unk(tokenizer):
    with pytest.raises(ValueError, match="text: unknown word 'dog'"):
        tokenizer.encode("a small red dog")
    with pytest.raises(ValueError, match="unknown word 'dog'"):
        tokenizer.encode_batch(["a small red circle", "a small red dog"])
    ids = tokenizer.encode("a small red dog", unk=True)
    assert ids[-2] == tokenizer.unk_id
    assert tokenizer.decode(ids) == "a small red <unk>"


def test_too_long_text_is_refused(tokenizer):
    text = "a small red circle to the left of a large blue square above"  # 13 words + 2 = 15: fits
    assert tokenizer.encode_batch([text]).shape == (1, 16)
    with pytest.raises(ValueError, match=r"texts\[1\]: 17 tokens .* max_len=16"):
        tokenizer.encode_batch(["a red circle", text + " a large"])
    short = Tokenizer(max_len=5)
    with pytest.raises(ValueError, match="max_len=5"):
        short.encode_batch(["a small red circle"])  # 6 tokens with <bos>/<eos>


def test_empty_batch_is_refused(tokenizer):
    with pytest.raises(ValueError, match="texts: expected at least one text, got an empty batch"):
        tokenizer.encode_batch([])


def test_specials_exist_with_fixed_ids(tokenizer):
    assert tokenizer.vocab[:len(SPECIALS)] == list(SPECIALS)
    assert tokenizer.pad_id == 0 and len({tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id,
                                          tokenizer.image_id}) == 5
    assert tokenizer.vocab[tokenizer.image_id] == "<image>"
    for i in range(8):
        assert f"<mask:{i}>" in tokenizer.index
    # specials are single tokens when they appear in text
    ids = tokenizer.encode("<image> a red circle <mask:3>")
    assert ids[1] == tokenizer.image_id and ids[-2] == tokenizer.index["<mask:3>"]
    assert len(tokenizer) == len(SPECIALS) + 24  # 24 words in the shapes world
