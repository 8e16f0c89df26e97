"""Exercise 6, the <image> splice (lessons/06_prefix_and_splice.md). Check with `python -m minivlm.check splice`.

Fill in the three functions in torch; splice's gradients must reach embeds and visual. B batch, T text length,
N visual tokens, D width. Each row of tokens holds exactly one <image> placeholder, with the id image_id.
"""
import torch


def splice(embeds: torch.Tensor, visual: torch.Tensor, tokens: torch.Tensor, image_id: int) -> torch.Tensor:
    """Token embeddings (B, T, D) with the visual tokens (B, N, D) in place of the <image> placeholder of
    tokens (B, T) -> (B, T-1+N, D): the text before the placeholder, the N visual tokens, the text after it."""
    raise NotImplementedError("splice: for each row, text before <image>, the visual tokens, text after <image>")


def expand(x: torch.Tensor, tokens: torch.Tensor, image_id: int, n: int, fill) -> torch.Tensor:
    """A per-token tensor x (B, T) (target ids, a bool loss mask) laid out like `splice`'s output -> (B, T-1+N),
    the dtype of x, with `fill` at the n visual positions (<pad> for targets, False for a loss mask)."""
    raise NotImplementedError("expand: the same layout as splice, with fill where the visual tokens go")


def sincos_2d(grid: int, dim: int, base: float = 10.0) -> torch.Tensor:
    """The fixed code of a grid x grid patch layout, (grid*grid, dim) float: patch n sits at row n // grid, column
    n % grid, and its code is [sin(col w), cos(col w), sin(row w), cos(row w)], each block over the D/4
    frequencies w_k = base^(-k / (D/4)), k = 0 .. D/4 - 1."""
    raise NotImplementedError("sincos_2d: four blocks of D/4 channels, sin and cos of the column, then of the row")
