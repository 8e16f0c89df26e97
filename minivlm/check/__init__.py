"""Autograders for the lessons' exercises: `python -m minivlm.check NAME [--file PATH]`.

Each grader (patch_embed.py, attention.py, info_nce.py, retrieval.py, next_token.py, splice.py, flamingo.py, vq.py,
cm3_transform.py) lists the functions a student writes and its CASES, each comparing the student's answer with the
package's reference, and FORBIDDEN, the fused ops that would be the answer itself; this file runs them, after
`refusal` has read the student's file for those and for any import of the package, which holds the answers.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import traceback
from pathlib import Path

import numpy as np
import torch

# in teaching order
EXERCISES = ("patch_embed", "attention", "info_nce", "retrieval", "next_token", "splice", "flamingo", "vq",
             "cm3_transform")
# where the package's own answers live: everywhere (recipes and models re-export the concepts), so a student's file
# imports nothing of the package; the stubs need none of it
REFERENCES = ("minivlm",)


class Wrong(Exception):
    """The student's answer is wrong; the message says how."""


def _array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def compare(expected, got, what: str = "output", atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """Raise Wrong unless `got` has the type, shape and values of `expected`; name the worst entry if not.

    A torch reference wants a torch.Tensor back, a boolean one booleans (not 0/1 numbers); float dtypes may differ.
    """
    if got is None:
        raise Wrong(f"{what}: got None (is a `return` missing?)")
    if isinstance(expected, torch.Tensor) and not isinstance(got, torch.Tensor):
        raise Wrong(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    e, g = _array(expected), _array(got)
    if e.shape != g.shape:
        raise Wrong(f"{what}: wrong shape: expected {e.shape}, got {g.shape}")
    if e.dtype == bool and g.dtype != bool:
        raise Wrong(f"{what}: expected dtype bool, got {g.dtype}")
    err = np.asarray(np.abs(e.astype(np.float64) - g.astype(np.float64)))  # an array even for 0-dim inputs
    err[np.isnan(err)] = np.inf  # a NaN on either side counts as the worst error
    wrong = err > atol + rtol * np.abs(e.astype(np.float64))
    if not wrong.any():
        return
    where = np.unravel_index(np.argmax(err), err.shape)
    expected_got = f"expected {_show(e[where])}, got {_show(g[where])}"
    if not np.isfinite(g[where]):
        hint = " (an overflow, or 0/0?)"
    elif _show(e[where]) == _show(g[where]):  # a case that wants exact values
        hint = f" (off by {err[where]:.2g}: close, but not exactly equal)"
    elif np.allclose(np.sort(e, None), np.sort(g, None), atol=atol, rtol=rtol):
        hint = " (the right numbers in the wrong places)"
    else:
        hint = ""
    if e.ndim == 0:
        raise Wrong(f"{what}: wrong value: {expected_got}{hint}")
    raise Wrong(f"{what}: values differ in {wrong.sum()} of {wrong.size} entries, the worst at index "
                f"{tuple(int(i) for i in where)}: {expected_got}{hint}")


def _show(x) -> str:
    return f"{x:.6g}" if np.issubdtype(type(x), np.floating) else str(x)


def compare_grads(reference, student, inputs: dict[str, torch.Tensor], *rest, seed: int = 0) -> None:
    """Backpropagate through reference(*inputs, *rest) and student(*inputs, *rest); compare each input's gradient.

    A non-scalar output is reduced with fixed random weights, so that the gradient of every entry counts.
    """
    grads = []
    for fn in (reference, student):
        leaves = {name: x.detach().clone().requires_grad_() for name, x in inputs.items()}
        out = fn(*leaves.values(), *rest)
        if not out.requires_grad:
            raise Wrong("gradients: the output is not connected to the inputs by autograd "
                        "(a detour through NumPy, .item(), float() or .detach()?)")
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
        (out * weights).sum().backward()
        grads.append(leaves)
    for name, x in grads[1].items():
        if x.grad is None:
            raise Wrong(f"gradients: no gradient reached {name} (is it detached or turned into a number?)")
        compare(grads[0][name].grad, x.grad, what=f"gradient of {name}")


def refusal(name: str, source: str, forbidden: tuple[str, ...]) -> str | None:
    """Why the student's source is not graded, or None: it imports the package (REFERENCES), or names one of
    `forbidden` (the ops exercise `name` asks the student to write). Read from the syntax tree, before any of it
    runs: the imports, the names and attributes (`F.scaled_dot_product_attention`), and strings
    (`getattr(F, "...")`, `importlib.import_module("minivlm...")`), never the comments or docstrings."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], [a.name.rsplit(".", 1)[-1] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "" if node.level or not node.module else node.module  # a relative import is the student's
            if not module:
                modules = []
            elif module in REFERENCES:  # `from minivlm import concepts` is reported as minivlm.concepts
                modules = [f"{module}.{a.name}" for a in node.names]
            else:
                modules = [module]
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Attribute):
            modules, names = [_dotted(node)], [node.attr]
        elif isinstance(node, ast.Name):
            modules, names = [], [node.id]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.fullmatch(node.value):
            modules, names = [node.value], [node.value.rsplit(".", 1)[-1]]
        else:
            continue
        for module in modules:
            reference = next((r for r in REFERENCES if module == r or module.startswith(r + ".")), None)
            if reference:
                return (f"{name}: your solution imports {module}; the package holds the answers, so an exercise "
                        f"uses nothing from {reference}: write it yourself")
        for op in names:
            if op in forbidden:
                return f"{name}: your solution calls {op}, the op this exercise asks you to write"
    return None


_DOTTED = re.compile(r"[A-Za-z_][\w.]*")  # a string that could name a module or an op, not a docstring


def _dotted(node: ast.expr) -> str:
    """minivlm.concepts.attention for the attribute chain `minivlm.concepts.attention`; "" if it is not one."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def load_student(path: Path):
    """Import a student's file by its path, as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"student_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failure(check, student, path: Path) -> str | None:
    """Run one case: None when it passes, else what went wrong (and where, if it was the student's code)."""
    try:
        check(student)
    except Wrong as e:
        return str(e)
    except NotImplementedError:
        return "not implemented yet"
    except Exception as e:
        frames = traceback.extract_tb(e.__traceback__)
        lines = [f.lineno for f in frames if Path(f.filename).resolve() == path.resolve()]
        at = f" (line {lines[-1]} of {path})" if lines else ""
        return f"raised {type(e).__name__}: {e}{at}"
    return None


def grade(name: str, path: Path) -> bool:
    """Print PASS or what is wrong for each case of exercise `name` on the file at `path`; True if all pass."""
    grader = importlib.import_module(f"minivlm.check.{name}")
    print(f"{name}: grading {path}")
    try:
        refused = refusal(name, path.read_text(), grader.FORBIDDEN)
    except SyntaxError:
        refused = None  # importing it below reports the error
    if refused:
        print(f"  FAIL  {refused}")
        return False
    try:
        student = load_student(path)
    except Exception as e:
        print(f"  FAIL  could not import {path}: {type(e).__name__}: {e}")
        return False
    missing = [f for f in grader.FUNCTIONS if not callable(getattr(student, f, None))]
    if missing:
        print(f"  FAIL  {path} defines no function {', '.join(missing)} (expected: {', '.join(grader.FUNCTIONS)})")
        return False
    failures = 0
    for case, check in grader.CASES:
        message = _failure(check, student, path)
        failures += message is not None
        print(f"  PASS  {case}" if message is None else f"  FAIL  {case}: {message}")
    print(f"{len(grader.CASES) - failures}/{len(grader.CASES)} cases passed")
    return failures == 0
