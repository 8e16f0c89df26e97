"""Exercise 1, patch embedding (lessons/01_patch_embedding.md). Check with `python -m minivlm.check patch_embed`.

Fill in both functions in NumPy (no torch), with reshapes and transposes: the grader refuses a convolution,
unfold or sliding_window_view, which would cut the patches for you. B batch, C channels, H x W pixels, P patch
size, N = (H/P)(W/P) patches, D width.
"""
import numpy as np


def patchify(images: np.ndarray, patch: int) -> np.ndarray:
    """Cut images (B, C, H, W) into P x P patches -> (B, N, C*P*P); P divides H and W.

    Patches in reading order (left to right, then top to bottom); each patch flattened channel first, as
    (C, P, P), the order of a Conv2d weight (D, C, P, P). One reshape, one transpose, one reshape.
    """
    raise NotImplementedError("patchify: cut the images into patches")


def embed_patches(images: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """ViT eq. 1 without positions: patchify, then project each patch to D. images (B, C, H, W), weight
    (D, C, P, P) and bias (D,) as stored by nn.Conv2d(C, D, kernel_size=P, stride=P) -> (B, N, D), equal to
    that convolution's output flattened to one token per patch."""
    raise NotImplementedError("embed_patches: patchify, then multiply by the flattened weight and add the bias")
