"""Solution of lessons/exercises/patch_embed.py, written out in NumPy (the grader checks it against the package's
NumPy form and PatchEmbed's Conv2d)."""
from __future__ import annotations

import numpy as np


def patchify(images, patch):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, H/P, P, W/P, P)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P): patches in row-major order
    return x.reshape(B, (H // patch) * (W // patch), C * patch * patch)  # (B, N, C*P*P)


def embed_patches(images, weight, bias):
    D, patch = weight.shape[0], weight.shape[-1]
    x = patchify(images, patch)  # (B, N, C*P*P)
    return x @ weight.reshape(D, -1).T + bias  # (B, N, D): one shared linear map per patch, as the Conv2d
