"""Solution of lessons/exercises/patch_embed.py from the package's other forms of the same computation: the torch
`patchify` and PatchEmbed's unfold path, so that the grader checks them against the NumPy form and the Conv2d."""
from __future__ import annotations

import torch

from minivlm.check.patch_embed import patch_embed_module
from minivlm.concepts import patch_embed


def patchify(images, patch):
    return patch_embed.patchify(torch.from_numpy(images), patch).numpy()  # (B, N, C*P*P)


def embed_patches(images, weight, bias):
    with torch.no_grad():
        module = patch_embed_module(weight, bias, images.shape[-1])
        return module.forward_unfold(torch.from_numpy(images)).numpy()  # (B, N, D)
