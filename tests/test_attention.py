"""Attention against torch's fused F.scaled_dot_product_attention and autograd; the modules built on it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.attention import (KVCache, MultiHeadAttention, TransformerBlock, attention, attention_np,
                                        causal_mask, padding_mask)


def _qkv(B=2, H=3, Tq=5, Tk=5, d=8, dv=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, Tq, d, generator=g, dtype=torch.float64),
            torch.randn(B, H, Tk, d, generator=g, dtype=torch.float64),
            torch.randn(B, H, Tk, dv, generator=g, dtype=torch.float64))


def _pad_mask(B=2, T=5):
    tokens = torch.tensor([[7, 8, 9, 0, 0], [7, 8, 9, 10, 11]])[:B, :T]  # sample 0 has 2 pad tokens
    return padding_mask(tokens, pad_id=0)  # (B, 1, 1, T)


CASES = {
    "no mask": (dict(), lambda: None),
    "padding mask": (dict(), _pad_mask),
    "causal mask": (dict(), lambda: causal_mask(5)),
    "cross-attention": (dict(Tq=3, Tk=7, dv=4), lambda: None),
    "cross-attention, padded keys": (dict(Tq=3, Tk=5, dv=4), _pad_mask),
}


@pytest.mark.parametrize("case", CASES)
def test_attention_matches_torch_sdpa(case):
    sizes, make_mask = CASES[case]
    q, k, v = _qkv(**sizes)
    mask = make_mask()
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = attention(q, k, v, mask)
    assert out.shape == ref.shape == (q.shape[0], q.shape[1], q.shape[2], v.shape[-1])
    assert torch.allclose(out, ref, atol=1e-12)
    out_np = attention_np(q.numpy(), k.numpy(), v.numpy(), None if mask is None else mask.numpy())
    assert np.allclose(out_np, ref.numpy(), atol=1e-12)


def test_causal_mask_equals_sdpa_is_causal():
    q, k, v = _qkv()
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert torch.allclose(attention(q, k, v, causal_mask(5)), F.scaled_dot_product_attention(q, k, v, is_causal=True),
                          atol=1e-12)


def test_causal_mask_with_past_is_the_last_rows_of_the_full_mask():
    assert causal_mask(2, past=3).tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert torch.equal(causal_mask(2, past=3), causal_mask(5)[3:])


def test_masked_keys_get_zero_weight_and_rows_sum_to_one():
    q, k, v = _qkv()
    _, w = attention(q, k, v, _pad_mask(), return_weights=True)
    assert w.shape == (2, 3, 5, 5)
    assert (w[0, :, :, 3:] == 0).all() and (w[0, :, :, :3] > 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))


def test_fully_masked_query_row_is_nan():
    q, k, v = _qkv(B=1, H=1, Tq=2, Tk=2)
    mask = torch.tensor([[False, False], [True, True]])
    out = attention(q, k, v, mask)
    assert out[0, 0, 0].isnan().all() and out[0, 0, 1].isfinite().all()


@pytest.mark.parametrize("use_mask", [False, True])
def test_attention_gradcheck(use_mask):
    q, k, v = (t.requires_grad_() for t in _qkv(B=1, H=2, Tq=3, Tk=5, d=4, dv=3))
    mask = _pad_mask(B=1) if use_mask else None
    assert torch.autograd.gradcheck(lambda q, k, v: attention(q, k, v, mask), (q, k, v))


def _mha_outputs(mha, x, context=None, mask=None):
    mha.keep_weights = False
    fused = mha(x, context, mask)
    mha.keep_weights = True
    by_hand = mha(x, context, mask)
    return fused, by_hand


def test_multihead_hand_path_equals_fused_path():
    torch.manual_seed(0)
    mha = MultiHeadAttention(dim=16, heads=4)
    x = torch.randn(2, 5, 16)
    fused, by_hand = _mha_outputs(mha, x, mask=_pad_mask())
    assert fused.shape == (2, 5, 16)
    assert torch.allclose(fused, by_hand, atol=1e-6)
    assert mha.last_weights.shape == (2, 4, 5, 5)
    assert (mha.last_weights[0, ..., 3:] == 0).all()


def test_multihead_cross_attention_shapes():
    torch.manual_seed(0)
    mha = MultiHeadAttention(dim=16, heads=4, context_dim=12)
    x, context = torch.randn(2, 3, 16), torch.randn(2, 7, 12)
    fused, by_hand = _mha_outputs(mha, x, context)
    assert fused.shape == (2, 3, 16) and torch.allclose(fused, by_hand, atol=1e-6)
    assert mha.last_weights.shape == (2, 4, 3, 7)
    # outputs depend on the context, and each query only on itself and the context
    assert not torch.allclose(mha(x, context + 1), fused)
    x2 = x.clone()
    x2[:, 0] += 1
    assert torch.allclose(mha(x2, context)[:, 1:], by_hand[:, 1:], atol=1e-6)


def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match="heads: 3 does not divide dim 16"):
        MultiHeadAttention(16, 3)


def test_transformer_block_shape_and_padding():
    torch.manual_seed(0)
    block = TransformerBlock(dim=16, heads=4)
    x = torch.randn(2, 5, 16)
    mask = _pad_mask()
    y = block(x, mask)
    assert y.shape == (2, 5, 16)
    # what sits at padded positions must not reach the real tokens
    x2 = x.clone()
    x2[0, 3:] = torch.randn(2, 16)
    y2 = block(x2, mask)
    assert torch.allclose(y2[0, :3], y[0, :3], atol=1e-6) and torch.allclose(y2[1], y[1])
    assert not torch.allclose(block(x2)[0, :3], block(x)[0, :3])  # without the mask it would


@pytest.mark.parametrize("keep_weights", [False, True], ids=["fused", "by hand"])
def test_kv_cache_one_token_at_a_time_equals_the_causal_pass(keep_weights):
    torch.manual_seed(0)
    block = TransformerBlock(dim=16, heads=4)
    block.attn.keep_weights = keep_weights
    x = torch.randn(2, 6, 16)
    full = block(x, causal_mask(6))
    cache = KVCache()
    steps = [block(x[:, :2], causal_mask(2), cache)]  # a 2-token prompt, then one token at a time
    steps += [block(x[:, t:t + 1], causal_mask(1, past=t), cache) for t in range(2, 6)]
    assert len(cache) == 6 and cache.k.shape == cache.v.shape == (2, 4, 6, 4)  # (B, H, S, D/H)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-6)
    if keep_weights:
        assert block.attn.last_weights.shape == (2, 4, 1, 6)  # the last token's query over all six keys
