"""Property tests of the public concept functions: random valid shapes agree with the references (NumPy twins,
torch ops); random invalid ones raise a ValueError (or TypeError) naming the argument, never a raw torch error."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minivlm.concepts.attention import attention, attention_np
from minivlm.concepts.info_nce import info_nce, info_nce_np
from minivlm.concepts.next_token import next_token_loss, next_token_loss_np
from minivlm.concepts.patch_embed import patchify, patchify_np
from minivlm.concepts.positions import sincos_2d, sincos_2d_np
from minivlm.concepts.validate import DTypeError, check_tensor
from minivlm.concepts.vq import quantize, quantize_np

FAST = settings(max_examples=30, deadline=None)
size = st.integers(1, 5)


@FAST
@given(size, size, size, size, size)
def test_attention_agrees_with_numpy(b, tq, tk, d, dv):
    q, k, v = torch.randn(b, tq, d, dtype=torch.float64), torch.randn(b, tk, d, dtype=torch.float64), \
        torch.randn(b, tk, dv, dtype=torch.float64)
    assert np.allclose(attention(q, k, v).numpy(), attention_np(q.numpy(), k.numpy(), v.numpy()))


@FAST
@given(size, size, size, size.map(lambda x: x + 1))
def test_attention_refuses_mismatched_widths(b, t, d, d2):
    with pytest.raises(ValueError, match="k: expected"):
        attention(torch.randn(b, t, d), torch.randn(b, t, d + d2), torch.randn(b, t, d))


@FAST
@given(size, size)
def test_info_nce_agrees_with_numpy_and_refuses_nan(b, e):
    img, txt = torch.randn(b, e, dtype=torch.float64), torch.randn(b, e, dtype=torch.float64)
    assert info_nce(img, txt, torch.tensor(3.0)).item() == pytest.approx(info_nce_np(img.numpy(), txt.numpy(), 3.0))
    with pytest.raises(ValueError, match="image_emb: expected finite"):
        info_nce(img.index_fill(0, torch.tensor([0]), float("nan")), txt, torch.tensor(3.0))
    with pytest.raises(ValueError, match="text_emb: expected"):
        info_nce(img, txt[:, :-1] if e > 1 else txt[None], torch.tensor(3.0))


@FAST
@given(size, st.integers(2, 6), st.integers(2, 7), st.integers(0, 3))
def test_next_token_loss_agrees_with_numpy_and_refuses_bad_ids(b, t, v, bad):
    logits, tokens = torch.randn(b, t, v, dtype=torch.float64), torch.randint(1, v, (b, t))
    assert next_token_loss(logits, tokens, 0).item() == pytest.approx(next_token_loss_np(logits.numpy(),
                                                                                        tokens.numpy(), 0))
    wrong = tokens.clone()
    wrong[0, -1] = v + bad if bad else -1
    with pytest.raises(ValueError, match="tokens: expected values in"):
        next_token_loss(logits, wrong, 0)


@FAST
@given(size, st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
def test_patchify_agrees_with_numpy_and_refuses_bad_patches(b, c, gh, gw, p):
    images = torch.randn(b, c, gh * p, gw * p)
    assert np.array_equal(patchify(images, p).numpy(), patchify_np(images.numpy(), p))
    if p > 1:
        with pytest.raises(ValueError, match="patch: .* does not divide"):
            patchify(torch.randn(b, c, gh * p + 1, gw * p), p)
    with pytest.raises(ValueError, match="images: expected"):
        patchify(images[0], p)


@FAST
@given(size, size, size, size)
def test_quantize_agrees_with_numpy_and_refuses_bad_dtypes(b, n, d, k):
    z, codebook = torch.randn(b, n, d, dtype=torch.float64), torch.randn(k, d, dtype=torch.float64)
    z_q, ids, _, _ = quantize(z, codebook)
    ref_q, ref_ids = quantize_np(z.numpy(), codebook.numpy())
    assert np.allclose(z_q.detach().numpy(), ref_q) and np.array_equal(ids.numpy(), ref_ids)
    with pytest.raises(TypeError, match="z: expected"):
        quantize(z.long(), codebook)


@FAST
@given(size, st.integers(-2, 6))
def test_sincos_agrees_with_numpy_or_names_its_arguments(grid, quarter):
    if quarter < 1:
        with pytest.raises(ValueError, match="grid, dim"):
            sincos_2d(grid, 4 * quarter)
    else:
        assert np.allclose(sincos_2d(grid, 4 * quarter).numpy(), sincos_2d_np(grid, 4 * quarter), atol=1e-6)


@FAST
@given(st.lists(st.integers(0, 4), min_size=0, max_size=5))
def test_check_tensor_names_the_argument_and_never_raises_raw_errors(shape):
    x = torch.zeros(shape)
    try:
        dims = check_tensor("x", x, "B T D", "float")
        assert len(shape) == 3 and min(shape) >= 1 and dims == dict(zip("BTD", shape))
    except ValueError as e:
        assert str(e).startswith("x: expected (B, T, D) float")
    with pytest.raises(DTypeError, match=r"x: expected \(\.\.\.\) int"):
        check_tensor("x", x, ("...",), "int")
