"""Symmetric InfoNCE against the NumPy version, a loop-by-loop reference and autograd; its edge cases."""
import math

import numpy as np
import pytest
import torch

from minivlm.concepts.info_nce import caption_groups, info_nce, info_nce_np


def _reference(img: list, txt: list, scale: float, groups: list | None = None) -> float:
    """Independent reference in plain Python floats: normalise, score every pair, and for each image (then each
    text) take -sum over positives of (1/#positives)·log softmax, with an explicit log-sum-exp."""
    norm = lambda v: [x / math.sqrt(sum(y * y for y in v)) for x in v]
    img, txt = [norm(v) for v in img], [norm(v) for v in txt]
    n = len(img)
    groups = list(range(n)) if groups is None else groups
    logits = [[scale * sum(a * b for a, b in zip(img[i], txt[j])) for j in range(n)] for i in range(n)]
    total = 0.0
    for rows in (logits, [list(col) for col in zip(*logits)]):  # image->text, then text->image
        for i, row in enumerate(rows):
            top = max(row)
            lse = top + math.log(sum(math.exp(x - top) for x in row))
            positives = [j for j in range(n) if groups[j] == groups[i]]
            total += -sum(row[j] - lse for j in positives) / len(positives) / n
    return total / 2


def _embeddings(B=6, E=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, E, generator=g, dtype=torch.float64), torch.randn(B, E, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("groups", [None, [0, 1, 0, 2, 1, 3]], ids=["one-hot", "groups"])
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_info_nce_matches_references(groups, scale):
    img, txt = _embeddings()
    g_t = None if groups is None else torch.tensor(groups)
    loss = info_nce(img, txt, torch.tensor(scale, dtype=torch.float64), g_t)
    ref = _reference(img.tolist(), txt.tolist(), scale, groups)
    assert loss.item() == pytest.approx(ref, rel=1e-10)
    assert info_nce_np(img.numpy(), txt.numpy(), scale, None if groups is None else np.array(groups)) == \
        pytest.approx(ref, rel=1e-10)


def test_grouping_identical_texts_changes_neither_loss_nor_gradient():
    """Identical captions have identical embeddings, hence identical logit columns: uniform targets over them give
    the same loss, and the same total gradient per caption, as the one-hot diagonal. Groups only matter for texts
    that differ (e.g. two phrasings of one meaning)."""
    img, base = _embeddings()
    img.requires_grad_()
    txt = base[[0, 1, 0, 2, 1, 3]].clone().requires_grad_()
    groups, scale = torch.tensor([0, 1, 0, 2, 1, 3]), torch.tensor(14.3, dtype=torch.float64)
    plain, grouped = info_nce(img, txt, scale), info_nce(img, txt, scale, groups)
    assert grouped.item() == pytest.approx(plain.item(), rel=1e-12)
    (gi_p, gt_p), (gi_g, gt_g) = torch.autograd.grad(plain, (img, txt)), torch.autograd.grad(grouped, (img, txt))
    assert torch.allclose(gi_p, gi_g, atol=1e-12)
    per_caption = lambda g: torch.zeros(4, g.shape[1], dtype=g.dtype).index_add_(0, groups, g)
    assert torch.allclose(per_caption(gt_p), per_caption(gt_g), atol=1e-12)
    # with texts that differ, the same groups do change the loss
    assert info_nce(img, base, scale, groups).item() != pytest.approx(info_nce(img, base, scale).item())


def test_perfect_pairs_give_low_loss_and_shuffled_pairs_high_loss():
    img = torch.eye(4, dtype=torch.float64)
    scale = torch.tensor(100.0, dtype=torch.float64)
    assert info_nce(img, img.clone(), scale).item() < 1e-10
    assert info_nce(img, img.flip(0), scale).item() > 50


@pytest.mark.parametrize("groups", [None, torch.tensor([0, 1, 0, 2, 1, 3])], ids=["one-hot", "groups"])
def test_info_nce_gradcheck(groups):
    img, txt = (t.requires_grad_() for t in _embeddings())
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, t, s: info_nce(i, t, s, groups), (img, txt, scale))


_G = torch.Generator().manual_seed(1)
_A, _B = torch.randn(8, 4, generator=_G), torch.randn(8, 4, generator=_G)


@pytest.mark.parametrize("name, img, txt, groups", [
    ("identical embeddings", torch.ones(8, 4), torch.ones(8, 4), None),
    ("zero embeddings", torch.zeros(8, 4), torch.zeros(8, 4), None),
    ("all one group", _A, _B, torch.zeros(8, dtype=torch.long)),
    ("huge embeddings", _A * 1e30, _B * 1e30, None),
])
def test_loss_and_gradient_stay_finite_at_the_logit_clamp(name, img, txt, groups):
    img, txt = img.clone().requires_grad_(), txt.clone().requires_grad_()
    scale = torch.tensor(100.0, requires_grad=True)  # CLIP's clamp
    loss = info_nce(img, txt, scale, groups)
    loss.backward()
    assert torch.isfinite(loss), name
    assert all(torch.isfinite(t.grad).all() for t in (img, txt, scale)), name
    if name in ("identical embeddings", "zero embeddings"):
        assert loss.item() == pytest.approx(math.log(8), rel=1e-5)  # every caption equally likely
    if name == "all one group":
        assert loss.item() >= math.log(8) - 1e-5  # uniform targets: cross-entropy >= their entropy, ln 8


@pytest.mark.parametrize("img, txt, groups, message", [
    (torch.randn(4, 8), torch.randn(4, 6), None,
     r"text_emb: expected \(B, E\) torch.float32 with B = 4, E = 8, got \(4, 6\)"),
    (torch.randn(4, 8), torch.randn(5, 8), None, r"text_emb: expected \(B, E\) .*with B = 4, E = 8, got \(5, 8\)"),
    (torch.randn(8), torch.randn(8), None, r"image_emb: expected \(B, E\) float, got \(8,\)"),
    (torch.randn(0, 8), torch.randn(0, 8), None, r"image_emb: expected \(B, E\) float with B >= 1, got \(0, 8\)"),
    (torch.randn(4, 8), torch.randn(4, 8), torch.zeros(3), r"groups: expected \(B,\) int with B = 4, got \(3,\)"),
    (torch.full((4, 8), float("nan")), torch.randn(4, 8), None, "image_emb: expected finite values, got NaN or inf"),
    (torch.randn(4, 8), torch.randn(4, 8).index_fill(0, torch.tensor([1]), float("inf")), None,
     "text_emb: expected finite values, got NaN or inf"),
])
def test_bad_inputs_are_refused(img, txt, groups, message):
    with pytest.raises(ValueError, match=message):
        info_nce(img, txt, torch.tensor(1.0), groups)


def test_caption_groups_marks_identical_token_rows():
    tokens = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 6, 2, 0], [1, 5, 6, 2, 0], [1, 5, 6, 8, 2], [1, 7, 6, 2, 0]])
    groups = caption_groups(tokens)
    assert groups.shape == (5,)
    same = (groups[:, None] == groups[None, :]).tolist()
    expected = [[bool((tokens[i] == tokens[j]).all()) for j in range(5)] for i in range(5)]
    assert same == expected
    assert groups[0] == groups[2] and groups[1] == groups[4] and len(set(groups.tolist())) == 3
