"""The Perceiver Resampler (Flamingo, Fig. 5): (B, R, D) out for any frames T and patches S, equal to a plain-torch
re-implementation from its own weights and to the NumPy attention step, time embeddings that tell frames apart,
attention maps for plotting, bad inputs; and its position-aware form (grid codes on queries and keys)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.attention import MultiHeadAttention
from minivlm.concepts.positions import sincos_2d
from minivlm.concepts.resampler import PerceiverResampler, resampler_attention_np

D, R, H = 16, 5, 4


def _resampler(depth=2, max_frames=3, seed=0, latents=R, positions=0.0) -> PerceiverResampler:
    torch.manual_seed(seed)
    m = PerceiverResampler(D, depth=depth, latents=latents, heads=H, max_frames=max_frames, positions=positions)
    with torch.no_grad():  # LayerNorms away from their (1, 0) init, so a swapped one is noticed
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.3)
        m.time.normal_()  # time embeddings as large as the features, so frames differ clearly
    return m


def _layer_norm(x, ln):
    return F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps)


def _reference(m: PerceiverResampler, x_f: torch.Tensor, positions: float = 0.0) -> torch.Tensor:
    """Fig. 5 in plain torch ops, one head at a time, reading the module's weights; with `positions`, latent r and
    every frame's patch r get the grid code of cell r on each head's queries and keys."""
    B, T, S, _ = x_f.shape
    R = m.latents.shape[0]
    x = (x_f + m.time[:T]).reshape(B, T * S, D)
    lat = m.latents.expand(B, R, D)
    q_code = k_code = 0.0
    if positions:
        code = sincos_2d(math.isqrt(R), D // H) * positions  # (R, D/H)
        q_code, k_code = code, torch.cat([code] * T + [code])  # (R, D/H), (T*S + R, D/H)
    for layer in m.layers:
        a = layer.attn
        q_in = _layer_norm(lat, layer.ln_latents)
        kv_in = torch.cat([_layer_norm(x, layer.ln_media), q_in], dim=1)
        q = q_in @ a.q.weight.T + a.q.bias
        k, v = (kv_in @ a.kv.weight.T + a.kv.bias).split(D, dim=-1)
        d = D // H
        qh = [q[..., h * d:(h + 1) * d] + q_code for h in range(H)]  # H × (B, R, d)
        kh = [k[..., h * d:(h + 1) * d] + k_code for h in range(H)]  # H × (B, T*S + R, d)
        heads = [torch.softmax(qh[h] @ kh[h].transpose(1, 2) / math.sqrt(d), dim=-1) @ v[..., h * d:(h + 1) * d]
                 for h in range(H)]
        lat = lat + torch.cat(heads, dim=-1) @ a.out.weight.T + a.out.bias
        lin1, lin2 = layer.mlp[0], layer.mlp[2]
        hidden = F.gelu(_layer_norm(lat, layer.ln_mlp) @ lin1.weight.T + lin1.bias)
        lat = lat + hidden @ lin2.weight.T + lin2.bias
    return _layer_norm(lat, m.ln)


@pytest.mark.parametrize("B, T, S", [(2, 1, 9), (2, 3, 4), (1, 2, 1), (3, 1, 16)])
def test_output_is_R_tokens_and_matches_the_reference(B, T, S):
    m = _resampler()
    x_f = torch.randn(B, T, S, D, generator=torch.Generator().manual_seed(T * 10 + S))
    out = m(x_f)
    assert out.shape == (B, R, D)
    torch.testing.assert_close(out, _reference(m, x_f), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("B, T", [(2, 1), (1, 3)])
def test_position_aware_output_matches_the_reference(B, T):
    m = _resampler(latents=9, positions=2.0)
    x_f = torch.randn(B, T, 9, D, generator=torch.Generator().manual_seed(T))
    out = m(x_f)
    assert out.shape == (B, 9, D)
    torch.testing.assert_close(out, _reference(m, x_f, positions=2.0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, _reference(m, x_f), atol=1e-3)  # the codes change what is read
    assert "grid_code" not in m.state_dict()  # rebuilt from the settings, not saved


def test_position_aware_latents_read_their_own_cell_from_the_start():
    """At initialisation (all linear maps random), a latent of a position-aware resampler puts most of its
    attention on its own cell and the cells next to it; the paper's spreads it nearly evenly."""
    x_f = torch.randn(4, 1, 16, D, generator=torch.Generator().manual_seed(0))
    near = torch.tensor([[abs(r // 4 - s // 4) + abs(r % 4 - s % 4) <= 1 for s in range(16)] for r in range(16)])
    share = {}
    for positions in (0.0, 3.0):
        torch.manual_seed(0)
        m = PerceiverResampler(D, depth=1, latents=16, heads=H, positions=positions)
        m.keep_weights = True
        m(x_f)
        w = m.attention_maps()[0][..., :16].mean(dim=(0, 1))  # (R, S): latents' attention to the patches
        share[positions] = (w * near).sum() / w.sum()
    assert share[0.0] < 0.4 < 0.7 < share[3.0], share  # 3-5 neighbours of 16 cells: 0.3 if even


def test_position_aware_settings_and_inputs_are_checked():
    with pytest.raises(ValueError, match=r"positions: a position-aware resampler needs a square number of latents "
                                         r"\(one per patch\) and dim / heads a multiple of 4, got latents=5, dim=16, "
                                         r"heads=4"):
        PerceiverResampler(D, latents=5, heads=H, positions=1.0)
    with pytest.raises(ValueError, match=r"x_f: a position-aware resampler of 9 latents needs S = 9 patches, "
                                         r"got S=4"):
        _resampler(latents=9, positions=1.0)(torch.zeros(1, 1, 4, D))


def test_attention_adds_positions_to_queries_and_keys_only():
    """MultiHeadAttention with q_pos/k_pos equals the attention of the shifted queries and keys, values as they were."""
    torch.manual_seed(0)
    a = MultiHeadAttention(D, H)
    x, ctx = torch.randn(2, 3, D), torch.randn(2, 5, D)
    q_pos, k_pos = torch.randn(3, D // H), torch.randn(5, D // H)
    q = a.q(x).reshape(2, 3, H, D // H).transpose(1, 2) + q_pos  # (B, H, 3, D/H)
    k, v = a.kv(ctx).reshape(2, 5, 2, H, D // H).permute(2, 0, 3, 1, 4)  # 2 × (B, H, 5, D/H)
    w = torch.softmax((q @ (k + k_pos).transpose(-2, -1)) / math.sqrt(D // H), dim=-1)  # (B, H, 3, 5)
    expected = a.out((w @ v).transpose(1, 2).reshape(2, 3, D))
    torch.testing.assert_close(a(x, ctx, q_pos=q_pos, k_pos=k_pos), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("with_positions", [False, True])
def test_one_attention_step_matches_numpy(with_positions):
    """With zero biases, the attention update of a layer on normalised inputs is resampler_attention_np's, with
    position codes on the queries and keys too."""
    m = PerceiverResampler(D, depth=1, latents=R, heads=H)
    layer, a = m.layers[0], m.layers[0].attn
    x_f = torch.randn(2, 7, D)
    lat = torch.randn(2, R, D)
    with torch.no_grad():
        for lin in (a.q, a.kv, a.out):
            lin.bias.zero_()
    ln = lambda t: _layer_norm(t, layer.ln_media)  # weight 1, bias 0: plain normalisation
    q_pos, k_pos = (torch.randn(R, D // H), torch.randn(7 + R, D // H)) if with_positions else (None, None)
    got = a(ln(lat), torch.cat([ln(x_f), ln(lat)], dim=1), q_pos=q_pos, k_pos=k_pos)
    w_k, w_v = a.kv.weight.T.detach().split(D, dim=1)
    pos = dict(q_pos=q_pos.numpy(), k_pos=k_pos.numpy()) if with_positions else {}
    for b in range(2):
        expected = resampler_attention_np(ln(x_f[b]).detach().numpy(), ln(lat[b]).detach().numpy(),
                                          a.q.weight.T.detach().numpy(), w_k.numpy(), w_v.numpy(),
                                          a.out.weight.T.detach().numpy(), heads=H, **pos)
        np.testing.assert_allclose(got[b].detach().numpy(), expected, atol=1e-5)


def test_output_does_not_depend_on_the_batch_and_latents_read_themselves():
    m = _resampler()
    x_f = torch.randn(3, 2, 4, D)
    torch.testing.assert_close(m(x_f)[1:2], m(x_f[1:2]), atol=1e-6, rtol=1e-6)
    m.keep_weights = True
    m(x_f)
    maps = m.attention_maps()
    assert len(maps) == 2 and all(w.shape == (3, H, R, 2 * 4 + R) for w in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, H, R))
    assert (maps[0][..., -R:] > 0).all()  # the keys include the latents themselves


def test_time_embeddings_tell_the_frames_apart():
    m = _resampler()
    x_f = torch.randn(2, 3, 4, D)
    swapped = x_f[:, [2, 0, 1]]
    assert not torch.allclose(m(x_f), m(swapped), atol=1e-4)
    with torch.no_grad():
        m.time.zero_()  # without them the frames are a set: the order cannot matter
    torch.testing.assert_close(m(x_f), m(swapped), atol=1e-5, rtol=1e-5)


def test_gradients_reach_latents_time_and_features():
    m = _resampler()
    x_f = torch.randn(2, 2, 3, D, requires_grad=True)
    m(x_f).square().sum().backward()
    for g in (x_f.grad, m.latents.grad, m.time.grad[:2]):
        assert g is not None and g.abs().sum() > 0
    assert torch.equal(m.time.grad[2], torch.zeros(1, D))  # the third frame's embedding was not used


@pytest.mark.parametrize("shape, message", [
    ((2, 0, 4, D), r"x_f: expected \(B, T, S, 16\) float with T >= 1, got \(2, 0, 4, 16\)"),
    ((2, 4, 4, D), r"x_f: expected T <= max_frames=3 frames, got T=4"),
    ((2, 4, D), r"x_f: expected \(B, T, S, 16\) float, got \(2, 4, 16\)"),
    ((2, 1, 4, 8), r"x_f: expected \(B, T, S, 16\) float, got \(2, 1, 4, 8\)"),
    ((2, 1, 0, D), r"x_f: expected \(B, T, S, 16\) float with S >= 1, got \(2, 1, 0, 16\)"),
    ((0, 1, 4, D), r"x_f: expected \(B, T, S, 16\) float with B >= 1, got \(0, 1, 4, 16\)"),
])
def test_bad_inputs_are_refused(shape, message):
    with pytest.raises(ValueError, match=message):
        _resampler()(torch.zeros(shape))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"latents: expected > 0, got 0"):
        PerceiverResampler(D, latents=0)
    with pytest.raises(ValueError, match=r"heads: 3 does not divide dim 16"):
        PerceiverResampler(D, heads=3)
    with pytest.raises(ValueError, match=r"x_f: expected \(B, T, S, 16\) float, got \(1, 1, 2, 16\) torch.int64"):
        _resampler()(torch.zeros(1, 1, 2, D, dtype=torch.long))
    with pytest.raises(ValueError, match=r"keep_weights: set `keep_weights = True`"):
        _resampler().attention_maps()


def test_the_graders_reference_agrees_with_numpy():
    """lessons/exercises/flamingo.py's `resampler_attention` is graded against MultiHeadAttention on the student's
    weights; that reference is the NumPy step."""
    from minivlm.check.flamingo import _reference_attention
    g = torch.Generator().manual_seed(0)
    x_f, lat = torch.randn(2, 6, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    w = [torch.randn(8, 8, generator=g) for _ in range(4)]
    got = _reference_attention(x_f, lat, *w, 2)
    for b in range(2):
        expected = resampler_attention_np(x_f[b].numpy(), lat[b].numpy(), *(t.numpy() for t in w), heads=2)
        np.testing.assert_allclose(got[b].detach().numpy(), expected, atol=1e-4, rtol=1e-4)
