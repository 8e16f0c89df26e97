"""Fixed 2-D sin-cos position codes: torch and NumPy agree with a loop over patches written from the formula, and
the codes have the properties the lesson claims (equal length, rows and columns in separate halves, nearby patches
alike)."""
import math

import numpy as np
import pytest
import torch

from minivlm.concepts.positions import sincos_2d, sincos_2d_np


def _codes_by_loops(grid: int, dim: int, base: float) -> np.ndarray:
    """Independent reference: patch n at row n // grid, column n % grid; channel block b of D/4 is sin/cos of the
    column (b = 0, 1) or of the row (b = 2, 3) times base^(-k / (D/4))."""
    q = dim // 4
    out = np.zeros((grid * grid, dim))
    for n in range(grid * grid):
        row, col = n // grid, n % grid
        for k in range(q):
            w = base ** (-k / q)
            out[n, k], out[n, q + k] = math.sin(col * w), math.cos(col * w)
            out[n, 2 * q + k], out[n, 3 * q + k] = math.sin(row * w), math.cos(row * w)
    return out


@pytest.mark.parametrize("grid, dim, base", [(4, 128, 10.0), (3, 8, 10.0), (5, 16, 10000.0), (1, 4, 10.0)])
def test_torch_and_numpy_match_the_loops(grid, dim, base):
    ref = _codes_by_loops(grid, dim, base)
    assert np.allclose(sincos_2d_np(grid, dim, base), ref, atol=1e-12)
    table = sincos_2d(grid, dim, base)
    assert table.shape == (grid * grid, dim) and table.dtype == torch.float32
    assert np.allclose(table.numpy(), ref, atol=1e-5)


def test_codes_have_one_length_and_keep_rows_and_columns_apart():
    grid, dim = 4, 128
    table = sincos_2d(grid, dim)  # (16, 128)
    assert torch.allclose(table.norm(dim=1), torch.full((grid * grid,), math.sqrt(dim / 2)), atol=1e-5)
    at = lambda i, j: table[i * grid + j]  # noqa: E731
    assert torch.equal(at(0, 2)[:dim // 2], at(3, 2)[:dim // 2])  # one column: the same first half
    assert torch.equal(at(1, 0)[dim // 2:], at(1, 3)[dim // 2:])  # one row: the same second half
    assert len({tuple(row.tolist()) for row in table}) == grid * grid  # every patch its own code
    far = [torch.dist(at(0, 0), at(0, j)).item() for j in range(1, grid)]
    assert far == sorted(far)  # along a row, codes drift apart with the distance


@pytest.mark.parametrize("grid, dim", [(0, 8), (4, 6), (4, 0)])
def test_bad_sizes_are_refused(grid, dim):
    with pytest.raises(ValueError, match=rf"grid, dim: expected grid >= 1 and dim a positive multiple of 4, "
                                         rf"got {grid} and {dim}"):
        sincos_2d(grid, dim)
