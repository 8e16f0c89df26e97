"""Vector quantisation (VQ-VAE, Sec. 3.1-3.2): nearest codes against NumPy; the straight-through gradient checked
with autograd; the codebook learns only from the codebook loss and the encoder only from the commitment loss;
codebook usage (perplexity, dead codes) by hand; bad ids and shapes refused with their argument's name."""
import math

import numpy as np
import pytest
import torch

from minivlm.concepts.vq import VectorQuantizer, codebook_usage, quantize, quantize_np


def _inputs(B=3, N=5, D=4, K=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, D, generator=g, dtype=dtype), torch.randn(K, D, generator=g, dtype=dtype)


@pytest.mark.parametrize("seed, shape", [(0, (3, 5, 4, 7)), (1, (1, 1, 2, 1)), (2, (2, 64, 8, 512))])
def test_ids_and_values_equal_the_numpy_reference(seed, shape):
    B, N, D, K = shape
    z, codebook = _inputs(B, N, D, K, seed)
    z_q, ids, _, _ = quantize(z, codebook)
    ref_z_q, ref_ids = quantize_np(z.numpy(), codebook.numpy())
    assert ids.shape == (B, N) and ids.dtype == torch.int64 and z_q.shape == (B, N, D)
    assert np.array_equal(ids.numpy(), ref_ids)
    np.testing.assert_allclose(z_q.detach().numpy(), ref_z_q, rtol=0, atol=1e-12)


def test_a_vector_on_a_code_gets_that_code():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[[0.9, 0.1], [0.1, 1.2], [0.0, 0.0]]])  # (1, 3, 2)
    _, ids, _, _ = quantize(z, codebook)
    assert ids.tolist() == [[1, 2, 0]]


def test_straight_through_passes_the_gradient_of_z_q_to_z_unchanged():
    z, codebook = _inputs()
    z.requires_grad_()
    z_q, _, _, _ = quantize(z, codebook)
    target = torch.randn(z.shape, generator=torch.Generator().manual_seed(1), dtype=z.dtype)
    loss = ((z_q - target) ** 2 * torch.arange(1.0, 6.0, dtype=z.dtype)[:, None]).sum()  # a loss on z_q only
    grad_z_q, = torch.autograd.grad(loss, z_q, retain_graph=True)
    grad_z, = torch.autograd.grad(loss, z)
    assert torch.equal(grad_z, grad_z_q)
    assert grad_z.abs().sum() > 0


def test_straight_through_is_a_chosen_gradient_not_the_true_one():
    z, codebook = _inputs(2, 3, 2, 4)
    z_q = quantize(z, codebook)[0]
    moved = quantize(z + 1e-6, codebook)[0] - z_q  # (B, N, D)
    assert moved.abs().max() < 1e-12  # finite differences see a zero derivative (up to rounding)...
    z.requires_grad_()
    jacobian = torch.autograd.functional.jacobian(lambda z: quantize(z, codebook)[0], z)  # (B, N, D, B, N, D)
    assert torch.equal(jacobian.reshape(12, 12), torch.eye(12, dtype=z.dtype))  # ...autograd sees the identity


def test_codebook_learns_from_the_codebook_loss_and_the_encoder_from_the_commitment_loss():
    z, codebook = _inputs()
    z.requires_grad_(), codebook.requires_grad_()
    z_q, ids, codebook_loss, commitment_loss = quantize(z, codebook)
    assert torch.autograd.grad(z_q.sum(), codebook, allow_unused=True)[0] is None  # z_q's gradient skips the codes
    g_code_z, g_code_e = torch.autograd.grad(codebook_loss, (z, codebook), allow_unused=True, retain_graph=True)
    g_commit_z, g_commit_e = torch.autograd.grad(commitment_loss, (z, codebook), allow_unused=True)
    assert g_code_z is None and g_commit_e is None
    e = codebook.detach()[ids]  # (B, N, D)
    assert torch.allclose(g_commit_z, 2 * (z.detach() - e) / z.numel())  # d mean((z - e)^2) / dz
    pull = 2 * (e - z.detach()).reshape(-1, 4) / z.numel()  # (B*N, D)
    expected = torch.zeros_like(codebook).index_add_(0, ids.flatten(), pull)  # (K, D)
    assert torch.allclose(g_code_e, expected)  # each code pulled towards the vectors it quantised
    assert torch.allclose(codebook_loss, commitment_loss)  # same value, different gradients


def test_vector_quantizer_loss_and_lookup():
    torch.manual_seed(0)
    vq = VectorQuantizer(codes=16, dim=4, beta=0.25)
    w = vq.codebook.weight
    assert w.shape == (16, 4) and w.abs().max() <= 1 / 16
    z = torch.randn(2, 6, 4)
    z_q, ids, loss = vq(z)
    _, _, codebook_loss, commitment_loss = quantize(z, w)
    assert z_q.shape == (2, 6, 4) and ids.shape == (2, 6)
    assert torch.allclose(loss, codebook_loss + 0.25 * commitment_loss)
    assert torch.equal(vq.lookup(ids), w[ids]) and torch.allclose(vq.lookup(ids), z_q)
    loss.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_codebook_usage_perplexity_and_dead_codes():
    uniform = codebook_usage(torch.arange(8).repeat(3), codes=8)
    assert math.isclose(uniform["perplexity"], 8.0) and uniform["dead_codes"] == 0
    one = codebook_usage(torch.full((2, 4, 4), 3), codes=8)
    assert math.isclose(one["perplexity"], 1.0) and one["dead_codes"] == 7
    half = codebook_usage(torch.tensor([[0, 1], [0, 1]]), codes=8)  # two codes, equally often
    assert math.isclose(half["perplexity"], 2.0) and half["dead_codes"] == 6
    skewed = codebook_usage(torch.tensor([0, 0, 0, 5]), codes=6)
    p = np.array([0.75, 0.25])
    assert math.isclose(skewed["perplexity"], math.exp(-(p * np.log(p)).sum())) and skewed["dead_codes"] == 4


def test_bad_inputs_are_refused_with_the_arguments_name():
    vq = VectorQuantizer(codes=8, dim=4)
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 8\), got 0..8 \(the codebook's range\)"):
        vq.lookup(torch.tensor([[0, 8]]))
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 8\), got -1..2"):
        vq.lookup(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match=r"ids: expected \(...\) int, got \(1, 2\) torch.float32"):
        vq.lookup(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"z: expected \(B, N, 4\) float, got \(2, 3, 5\) torch.float32"):
        vq(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"z: expected \(B, N, 4\) float, got \(3, 4\) torch.float32"):
        vq(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"z: expected \(B, N, 4\) float, got \(1, 2, 4\) torch.int64"):
        vq(torch.ones(1, 2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ids: expected at least one id, got an empty tensor of shape \(0,\)"):
        codebook_usage(torch.tensor([], dtype=torch.long), codes=8)
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 4\), got 0..4"):
        codebook_usage(torch.tensor([0, 4]), codes=4)
    with pytest.raises(ValueError, match=r"ids: expected a tensor \(...\) int, got list"):
        codebook_usage([0, 1], codes=4)
