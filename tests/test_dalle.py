"""The DALL-E-style model: the joint vocabulary, the sequence layout, sampling restricted to image codes, seeded
determinism, clear errors; and the recipe's scoring (judge verdicts, CLIP reranking) on hand-made cases."""
import numpy as np
import pytest
import torch

from minivlm.data.world import Obj, Scene, render
from minivlm.models.dalle import Dalle, DalleConfig, JointVocab
from minivlm.models.lm import CausalLM, LMConfig
from minivlm.recipes.dalle import TEXT_LEN, judge_matches, prompt_captions, score_t2i, text_tokenizer
from minivlm.train import build

CFG = DalleConfig(text_vocab=37, codes=16, grid=2, text_len=TEXT_LEN, image_id=4, dim=32, layers=1, heads=2)


def _text(captions=("a large red star", "a small blue circle to the left of a large red star")):
    return text_tokenizer().encode_batch(list(captions))  # (B, 14)


def test_joint_vocab_round_trip_and_errors():
    v = JointVocab(text_size=37, codes=16)
    codes = torch.tensor([[0, 15, 3]])
    assert v.size == 53 and torch.equal(v.to_codes(v.from_codes(codes)), codes)
    assert v.only("image").sum() == 16 and v.only("text").sum() == 37 and not (v.only("image") & v.only("text")).any()
    with pytest.raises(ValueError, match=r"codes: expected values in \[0, 16\), got 16..16"):
        v.from_codes(torch.tensor([16]))
    with pytest.raises(ValueError, match=r"ids: expected image-token ids in \[37, 53\)"):
        v.to_codes(torch.tensor([36]))
    with pytest.raises(ValueError, match="kind: expected 'image' or 'text'"):
        v.only("audio")


def test_sequence_layout_caption_marker_codes():
    model = Dalle(CFG)
    text, codes = _text(), torch.tensor([[0, 1, 2, 3], [15, 14, 13, 12]])
    seq = model.sequence(text, codes)
    assert seq.shape == (2, TEXT_LEN + 1 + 4)
    assert torch.equal(seq[:, :TEXT_LEN], text) and (seq[:, TEXT_LEN] == CFG.image_id).all()
    assert torch.equal(seq[:, TEXT_LEN + 1:], codes + 37)
    assert model.lm.cfg.max_len == seq.shape[1]


def test_loss_trains_the_image_tokens_given_the_caption():
    """Two captions, each always drawn with its own codes: a few steps make the codes predictable from the text."""
    model = build(Dalle, CFG, 0)
    text, codes = _text(), torch.tensor([[0, 1, 2, 3], [15, 14, 13, 12]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(text, codes).item()
    for _ in range(150):
        opt.zero_grad()
        model.loss(text, codes).backward()
        opt.step()
    assert model.loss(text, codes).item() < 0.2 * first
    drawn = model.eval().generate(text, n=3, temperature=0.0)  # (2, 3, 4)
    assert torch.equal(drawn, codes[:, None].expand(2, 3, 4))


def test_generate_draws_codes_only_and_is_seeded():
    model = build(Dalle, CFG, 0).eval()
    text = _text()
    a = model.generate(text, n=5, temperature=1.0, generator=torch.Generator().manual_seed(1))
    b = model.generate(text, n=5, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 5, 4) and a.dtype == torch.long and torch.equal(a, b)
    assert a.min() >= 0 and a.max() < 16  # codebook indices, never a word


def test_allowed_restricts_lm_sampling_and_rejects_a_bad_mask():
    lm = build(CausalLM, LMConfig(vocab_size=10, max_len=8, dim=16, layers=1, heads=2), 0).eval()
    allowed = torch.zeros(10, dtype=torch.bool)
    allowed[[5, 7]] = True
    out = lm.generate(torch.ones(4, 1, dtype=torch.long), 6, temperature=1.0, allowed=allowed,
                      generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 7) and set(out[:, 1:].flatten().tolist()) <= {5, 7}
    with pytest.raises(ValueError, match=r"allowed: expected a bool \(10,\) mask"):
        lm.generate(torch.ones(1, 1, dtype=torch.long), 2, allowed=torch.zeros(10, dtype=torch.bool))


@pytest.mark.parametrize("text, match", [
    (torch.zeros(2, 5, dtype=torch.long), r"text: expected \(B, 14\) torch.int64, got \(2, 5\)"),
    (torch.full((1, 14), 40), r"text: expected values in \[0, 37\), got 40..40"),
    (torch.zeros(0, 14, dtype=torch.long), r"text: expected \(B, 14\) torch.int64 with B >= 1, got \(0, 14\)"),
])
def test_bad_text_is_a_clear_error(text, match):
    with pytest.raises(ValueError, match=match):
        Dalle(CFG).generate(text)


def test_bad_codes_and_n_are_clear_errors():
    model = Dalle(CFG)
    with pytest.raises(ValueError, match=r"codes: expected \(2, 4\) torch.int64, got \(2, 9\)"):
        model.loss(_text(), torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"codes: expected values in \[0, 16\), got 16..16"):
        model.loss(_text(), torch.full((2, 4), 16))
    with pytest.raises(ValueError, match="n: expected > 0, got 0"):
        model.generate(_text(), n=0)


class _Oracle(torch.nn.Module):
    """A judge that reads colour from the mean pixel of rendered test scenes: red, else blue."""
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def predict(self, images):
        red = images[:, 0].mean((1, 2)) > images[:, 2].mean((1, 2))  # (B,)
        return [(("large", "red" if r else "blue", "star"),) for r in red.tolist()]


def _picture(colour):
    import random
    return render(Scene((Obj("star", colour, "large", 16, 16, 6.4),)), random.Random(0))


def test_judge_matches_and_rerank_pick_clip_best():
    pictures = np.stack([np.stack([_picture("red"), _picture("blue")]),
                         np.stack([_picture("blue"), _picture("blue")])])  # (2 captions, 2 samples)
    captions = ["a large red star", "a large red star"]
    verdict = judge_matches(_Oracle(), pictures, captions)
    assert verdict["match"].tolist() == [[True, False], [False, False]]

    class Clip(torch.nn.Module):  # scores the second sample highest for every caption
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def encode_image(self, images):
            return torch.eye(2)[torch.arange(len(images)) % 2]

        def encode_text(self, tokens):
            return torch.tensor([[0.0, 1.0]]).expand(len(tokens), 2)

    m = score_t2i(_Oracle(), Clip(), pictures, captions, "1obj")
    assert m["t2i_match_1obj"] == 0.25 and m["t2i_match_1obj_rerank2"] == 0.0  # CLIP picks the wrong one


def test_prompt_sets_are_distinct_meanings_of_their_kind():
    one, two = prompt_captions("1obj"), prompt_captions("2obj")
    assert len(one) == 64 and len(set(one)) == 64 and all(" of " not in c and "above" not in c for c in one)
    assert len(two) == 64 and all(len(c.split()) >= 9 for c in two)
    with pytest.raises(ValueError, match="kind: expected one of"):
        prompt_captions("3obj")
