"""Checks at the public boundary: state what a tensor (or a setting) must be, once, with a message that names the
argument, what was expected and what came:

    dims = check_tensor("images", images, ("B", 3, 32, 32), torch.float32)
    # ValueError: images: expected (B, 3, 32, 32) torch.float32, got (4, 32, 32) torch.uint8

A shape is a string of names ("B T D") or a tuple mixing names, fixed sizes and None (any size, 0 included); a
leading "..." takes any number of leading sizes. A named size must be >= 1, and the same name in `dims` must have
the same size across calls: that is how "tokens has the batch of images" is said. Inner code trusts what passed.
"""
from __future__ import annotations

import torch

_KINDS = {"float": torch.Tensor.is_floating_point, "bool": lambda x: x.dtype == torch.bool,
          "int": lambda x: not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool}


class DTypeError(TypeError, ValueError):
    """The wrong type or dtype. A TypeError, and a ValueError too, so that callers which catch ValueError for every
    bad input (the CLI) still catch it, as NumPy's AxisError is both a ValueError and an IndexError."""


def describe(x) -> str:
    """What came: "(4, 32, 32) torch.uint8" for a tensor, the type's name for anything else."""
    return f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def _shape_text(shape: tuple) -> str:
    comma = "," if len(shape) == 1 and shape[0] != "..." else ""  # (B,) as Python writes a 1-tuple
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + comma + ")"


def check_tensor(name: str, x, shape: str | tuple, dtype: torch.dtype | str | None = None, *, finite: bool = False,
                 low: float | None = None, high: float | None = None, dims: dict[str, int] | None = None,
                 empty: tuple[str, ...] = (), hint: str = "") -> dict[str, int]:
    """Raise unless x is a tensor of `shape` and `dtype` (a torch dtype, or "float", "int", "bool"); with `finite`,
    no NaN or inf; with `low`/`high`, every value in [low, high); the names in `empty` may be 0. Returns `dims`,
    the named sizes bound so far (updated in place when given), for the next call or a check of its own."""
    dims = {} if dims is None else dims
    shape = tuple(shape.split()) if isinstance(shape, str) else tuple(shape)
    known = {s: dims[s] for s in shape if isinstance(s, str) and s in dims}
    want = _shape_text(shape) + ("" if dtype is None else f" {dtype}")
    want += "".join(f" with {k} = {v}" if i == 0 else f", {k} = {v}" for i, (k, v) in enumerate(known.items()))
    tail = f" ({hint})" if hint else ""
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{name}: expected a tensor {want}, got {describe(x)}{tail}")
    lead = shape[:1] == ("...",)
    body = shape[1:] if lead else shape
    sizes = tuple(x.shape[x.ndim - len(body):]) if x.ndim >= len(body) else None
    if sizes is None or (not lead and x.ndim != len(body)):
        raise ValueError(f"{name}: expected {want}, got {describe(x)}{tail}")
    bound = dict(dims)
    if lead:
        body, sizes = ("...",) + body, (tuple(x.shape[:x.ndim - len(body)]),) + sizes
    for s, n in zip(body, sizes):
        if isinstance(s, int) and n != s:
            raise ValueError(f"{name}: expected {want}, got {describe(x)}{tail}")
        if isinstance(s, str):
            if s != "..." and s not in empty and n < 1:
                raise ValueError(f"{name}: expected {want} with {s} >= 1, got {describe(x)}{tail}")
            if bound.setdefault(s, n) != n:
                same = "" if s in known else f" with {s} = {bound[s]}"  # a name used twice in this shape
                raise ValueError(f"{name}: expected {want}{same}, got {describe(x)}{tail}")
    kind = _KINDS.get(dtype) if isinstance(dtype, str) else None
    if dtype is not None and not (kind(x) if kind else x.dtype == dtype):
        raise DTypeError(f"{name}: expected {want}, got {describe(x)}{tail}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf{tail}")
    if (low is not None or high is not None) and x.numel():
        lo, hi = x.min().item(), x.max().item()
        if (low is not None and lo < low) or (high is not None and hi >= high):
            raise ValueError(f"{name}: expected values in [{low}, {high}), got {lo}..{hi}{tail}")
    dims.update(bound)
    return dims


def check_ids(name: str, ids, vocab_size: int, shape: str | tuple = ("...",), dtype: torch.dtype | str = "int",
              dims: dict[str, int] | None = None, hint: str = "") -> dict[str, int]:
    """Raise unless ids is an integer tensor of `shape` with every id in [0, vocab_size): what an embedding or a
    cross-entropy can index with. Returns the bound dims, as `check_tensor`."""
    return check_tensor(name, ids, shape, dtype, low=0, high=vocab_size, dims=dims, hint=hint)


def check_positive(name: str, value, zero: bool = False) -> None:
    """Raise a ValueError (a TypeError for a non-number) unless value > 0, or >= 0 with `zero`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DTypeError(f"{name}: expected a number, got {type(value).__name__}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name}: expected {'>=' if zero else '>'} 0, got {value}")


def check_broadcasts(name: str, x, shape: tuple[int, ...], dtype: torch.dtype | str | None = None) -> None:
    """Raise unless x is a tensor of `dtype` that broadcasts to `shape` (a mask over heads and queries, say)."""
    check_tensor(name, x, ("...",), dtype)
    try:
        ok = torch.broadcast_shapes(x.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected a shape that broadcasts to {tuple(shape)}, got {describe(x)}")


def check_divides(name: str, divisor: int, of: str, value: int) -> None:
    """Raise a ValueError naming `name` unless divisor divides value (heads the width, a patch the image side)."""
    check_positive(name, divisor)
    if value % divisor:
        raise ValueError(f"{name}: {divisor} does not divide {of} {value}")
