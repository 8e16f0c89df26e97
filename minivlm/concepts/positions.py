"""Fixed 2-D sin-cos position codes: where on the image grid a patch token came from, as numbers no training sets.

The Transformer (Vaswani et al. 2017, Sec. 3.5) codes a 1-D position p as sin(p w_k), cos(p w_k) over a range of
frequencies w_k; MAE (He et al. 2022) codes a patch at row i, column j of the grid by doing that for j in one half
of the channels and for i in the other. Here the code of the patch at (i, j) is

    [sin(j w), cos(j w), sin(i w), cos(i w)],   w_k = base^(-k / (D/4)),  k = 0 .. D/4 - 1,

in row-major patch order (PatchEmbed's). The Transformer's base 10000 suits sequences thousands long; on a grid
four patches wide most of those waves would barely move, so the default base is 10 (periods of 6 to 60 patches).
Every code has the same length, sqrt(D/2), and nearby patches get similar codes: "left of" is a direction in it.
"""
from __future__ import annotations

import numpy as np
import torch

from minivlm.concepts.validate import check_positive


def sincos_2d_np(grid: int, dim: int, base: float = 10.0) -> np.ndarray:
    """(grid*grid, dim) codes of a grid x grid layout, row-major; dim must be a multiple of 4."""
    w = base ** (-np.arange(dim // 4) / (dim // 4))  # (D/4,)
    rows, cols = np.divmod(np.arange(grid * grid), grid)  # (N,) each: patch n sits at (n // grid, n % grid)
    x, y = cols[:, None] * w, rows[:, None] * w  # (N, D/4)
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)  # (N, D)


def sincos_2d(grid: int, dim: int, base: float = 10.0) -> torch.Tensor:
    """The torch twin of `sincos_2d_np`: a float32 (grid*grid, dim) table, for a buffer of a model."""
    if grid < 1 or dim < 4 or dim % 4:
        raise ValueError(f"grid, dim: expected grid >= 1 and dim a positive multiple of 4, got {grid} and {dim}")
    check_positive("base", base)
    w = base ** (-torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))  # (D/4,)
    n = torch.arange(grid * grid, dtype=torch.float32)  # (N,)
    rows, cols = torch.div(n, grid, rounding_mode="floor"), n % grid  # (N,) each
    x, y = cols[:, None] * w, rows[:, None] * w  # (N, D/4)
    return torch.cat([torch.sin(x), torch.cos(x), torch.sin(y), torch.cos(y)], dim=1)  # (N, D)
