"""Patch embedding: NumPy patchify, torch patchify, the Conv2d form and the unfold + linear form all agree,
and all match patches cut out one by one with explicit loops."""
import numpy as np
import pytest
import torch

from minivlm.concepts.patch_embed import PatchEmbed, patchify, patchify_np


def _patches_by_loops(images: np.ndarray, p: int) -> np.ndarray:
    """Independent reference: patch (i, j) in row-major order, each C×P×P block flattened channel-first."""
    B, C, H, W = images.shape
    out = []
    for b in range(B):
        out.append([images[b, :, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(-1)
                    for i in range(H // p) for j in range(W // p)])
    return np.array(out)  # (B, N, C*P*P)


@pytest.mark.parametrize("shape, p", [((2, 3, 32, 32), 8), ((1, 3, 32, 32), 4), ((2, 1, 12, 12), 6)])
def test_patchify_matches_loops(shape, p):
    images = np.random.default_rng(0).standard_normal(shape)
    ref = _patches_by_loops(images, p)
    assert ref.shape == (shape[0], (shape[2] // p) ** 2, shape[1] * p * p)
    assert np.array_equal(patchify_np(images, p), ref)
    assert np.array_equal(patchify(torch.from_numpy(images), p).numpy(), ref)


def test_conv_form_equals_unfold_form_and_loops():
    torch.manual_seed(0)
    embed = PatchEmbed(image_size=32, patch=8, channels=3, dim=16).double()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    conv = embed(images)
    assert conv.shape == (2, embed.num_patches, 16) and embed.num_patches == 16
    assert torch.allclose(embed.forward_unfold(images), conv, atol=1e-12)
    w = embed.proj.weight.detach().reshape(16, -1).numpy()  # (D, C*P*P)
    ref = _patches_by_loops(images.numpy(), 8) @ w.T + embed.proj.bias.detach().numpy()
    assert np.allclose(conv.detach().numpy(), ref, atol=1e-12)


def test_patches_do_not_mix():
    """Changing one pixel changes exactly one patch token, the one whose square holds it (row-major index)."""
    torch.manual_seed(0)
    embed = PatchEmbed(32, 8, 3, 16)
    images = torch.randn(1, 3, 32, 32)
    moved = images.clone()
    moved[0, 1, 13, 25] += 1.0  # row 13 -> patch row 1, column 25 -> patch column 3
    changed = (embed(moved) - embed(images)).abs().sum(dim=-1)[0]  # (N,)
    assert changed.nonzero().flatten().tolist() == [1 * 4 + 3]


def test_patch_must_divide_image_size():
    with pytest.raises(ValueError, match="patch: 5 does not divide image_size 32"):
        PatchEmbed(32, 5, 3, 16)
