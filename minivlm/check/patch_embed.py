"""Grader for lessons/exercises/patch_embed.py: `patchify` against the package's `patchify_np`, and
`embed_patches` against PatchEmbed's strided Conv2d (ViT eq. 1 without the position term)."""
from __future__ import annotations

import numpy as np
import torch

from minivlm.check import compare
from minivlm.concepts.patch_embed import PatchEmbed, patchify_np

LESSON = "lessons/01_patch_embedding.md"
FUNCTIONS = ("patchify", "embed_patches")
# a convolution or a patch extractor would cut the patches for you
FORBIDDEN = ("conv2d", "Conv2d", "unfold", "Unfold", "sliding_window_view")


def patch_embed_module(weight: np.ndarray, bias: np.ndarray, image_size: int) -> PatchEmbed:
    """A PatchEmbed whose Conv2d holds the given weight (D, C, P, P) and bias (D,)."""
    D, C, P, _ = weight.shape
    with torch.random.fork_rng(devices=[]):  # its random init, overwritten below, leaves the global RNG alone
        module = PatchEmbed(image_size, P, C, D)
    module.load_state_dict({"proj.weight": torch.from_numpy(weight), "proj.bias": torch.from_numpy(bias)})
    return module


def _patchify(seed, shape, patch):
    def check(student):
        images = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)  # (B, C, H, W)
        compare(patchify_np(images, patch), student.patchify(images, patch))
    return check


def _embed(seed, shape, patch, dim):
    def check(student):
        rng = np.random.default_rng(seed)
        images = rng.standard_normal(shape, dtype=np.float32)  # (B, C, H, W)
        weight = rng.standard_normal((dim, shape[1], patch, patch), dtype=np.float32)  # (D, C, P, P)
        bias = rng.standard_normal(dim, dtype=np.float32)  # (D,)
        with torch.no_grad():
            conv = patch_embed_module(weight, bias, shape[-1]).proj  # its forward takes square images only
            expected = conv(torch.from_numpy(images)).flatten(2).transpose(1, 2)  # (B, N, D)
        compare(expected.numpy(), student.embed_patches(images, weight, bias))
    return check


CASES = [
    ("patchify: B=2, C=3, 32x32 images, P=8 (the course's ViT: N=16)", _patchify(0, (2, 3, 32, 32), 8)),
    ("patchify: non-square 12x20 images, P=4 (N=3*5)", _patchify(1, (3, 2, 12, 20), 4)),
    ("patchify: batch of 1, one channel, P=1 (every pixel a patch)", _patchify(2, (1, 1, 5, 3), 1)),
    ("patchify: P = image side (one patch per image)", _patchify(3, (2, 3, 8, 8), 8)),
    ("embed_patches: B=2, C=3, 32x32, P=8, D=16", _embed(4, (2, 3, 32, 32), 8, 16)),
    ("embed_patches: non-square 8x12, C=1, P=4, D=5", _embed(5, (2, 1, 8, 12), 4, 5)),
    ("embed_patches: batch of 1, 6x6, P=2, D=3", _embed(6, (1, 3, 6, 6), 2, 3)),
]
