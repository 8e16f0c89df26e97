"""The one image preprocessing function: training, evaluation and inference all go through `preprocess`."""
from __future__ import annotations

import numpy as np
import torch


def preprocess(images, res: int = 32) -> torch.Tensor:
    """uint8 RGB images (B, res, res, 3) or one (res, res, 3), NumPy or torch -> float32 (B, 3, res, res) in [-1, 1].

    Anything else (another size, channel count or dtype, an empty batch) is refused with a message naming
    what was expected, so that a model never sees pixels scaled differently from the ones it was trained on.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:  # checked before torch sees it: object arrays would fail deep inside torch
            raise ValueError(f"images: expected dtype uint8 (0-255 RGB), got {images.dtype}")
        # a read-only array (np.asarray of a PIL image, as render and load_image return) is copied: torch would warn
        images = torch.from_numpy(np.require(images, requirements=("C", "W")))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a NumPy array or torch tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images: expected dtype uint8 (0-255 RGB), got {images.dtype}")
    shape = tuple(images.shape)  # as the caller passed it, for the message
    if images.ndim == 3:
        images = images.unsqueeze(0)  # (1, res, res, 3)
    if images.ndim != 4 or tuple(images.shape[1:]) != (res, res, 3):
        raise ValueError(f"images: expected shape (B, {res}, {res}, 3) or ({res}, {res}, 3), got {shape}")
    if images.shape[0] == 0:
        raise ValueError("images: expected at least one image, got an empty batch")
    x = images.permute(0, 3, 1, 2).contiguous().float()  # (B, 3, res, res)
    return x.div_(127.5).sub_(1.0)
