"""Patch embedding (ViT, Dosovitskiy et al. 2021, eq. 1): cut the image into P×P patches, flatten, project to D.

Three forms of the same computation: NumPy reshapes, torch reshape + Linear, and one strided Conv2d.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from minivlm.concepts.validate import check_divides, check_tensor


def patchify_np(images: np.ndarray, patch: int) -> np.ndarray:
    """(B, C, H, W) -> (B, N, C*P*P), patches in row-major order, each flattened channel-first like Conv2d."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, H/P, P, W/P, P)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(B, (H // patch) * (W // patch), C * patch * patch)  # (B, N, C*P*P)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """The torch twin of `patchify_np`: (B, C, H, W) -> (B, N, C*P*P)."""
    B, C, H, W = check_tensor("images", images, "B C H W").values()
    check_divides("patch", patch, "H", H)
    check_divides("patch", patch, "W", W)
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, H/P, P, W/P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(B, (H // patch) * (W // patch), C * patch * patch)  # (B, N, C*P*P)


class PatchEmbed(nn.Module):
    """Patchify + linear projection, computed as a Conv2d with kernel = stride = P (the usual ViT code).

    `forward_unfold` computes the same thing explicitly with `patchify` and the conv's weights as a matrix.
    """

    def __init__(self, image_size: int, patch: int, channels: int, dim: int):
        super().__init__()
        check_divides("patch", patch, "image_size", image_size)
        self.image_size, self.channels = image_size, channels
        self.patch, self.num_patches = patch, (image_size // patch) ** 2
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def _check(self, images: torch.Tensor) -> None:
        s = self.image_size
        check_tensor("images", images, ("B", self.channels, s, s), self.proj.weight.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._check(images)
        x = self.proj(images)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def forward_unfold(self, images: torch.Tensor) -> torch.Tensor:
        self._check(images)
        w = self.proj.weight.flatten(1)  # (D, C*P*P): each filter is a row of the linear map
        return patchify(images, self.patch) @ w.T + self.proj.bias  # (B, N, D)
