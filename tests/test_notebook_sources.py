"""The notebooks' reviewable sources: each notebooks/<stem>.ipynb has a jupytext percent-format source
notebooks/src/<stem>.py with exactly its cells (`make notebooks` syncs a source into its notebook, keeping the stored
outputs). These checks catch a notebook edited without its source, or the reverse, and keep the sources plain Python
within the package's line length. Fast: no notebook is executed."""
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SRC = NOTEBOOKS / "src"
TOOLS = {"execute.py"}  # the one script in notebooks/src that is not a notebook source
MAX_LINE = 120  # the package's line length
SYNC = "jupytext --update --to notebook --output notebooks/{0}.ipynb notebooks/src/{0}.py"


def sources() -> list[Path]:
    return sorted(p for p in SRC.glob("*.py") if p.name not in TOOLS)


def cells(nb) -> list[tuple]:
    """What must agree between a source and its notebook: each cell's type, source text and tags (nbval reads tags)."""
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    notebooks = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    srcs = {p.stem for p in sources()}
    assert not notebooks - srcs, f"notebooks without a source in notebooks/src: {sorted(notebooks - srcs)}"
    assert not srcs - notebooks, f"sources without a notebook: {sorted(srcs - notebooks)}"


@pytest.mark.parametrize("src", sources(), ids=lambda p: p.stem)
def test_source_has_the_notebooks_cells(src):
    ipynb = NOTEBOOKS / f"{src.stem}.ipynb"
    if not ipynb.exists():
        pytest.skip("no notebook (reported by the pairing test)")
    want = cells(nbformat.read(ipynb, as_version=4))
    got = cells(jupytext.read(src, fmt="py:percent"))
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    assert got == want, (f"{src.name} and {ipynb.name} differ from cell {first} on ({len(got)} and {len(want)} cells): "
                         f"edit the source, then `{SYNC.format(src.stem)}` (or `make notebooks`)")


@pytest.mark.parametrize("src", sources(), ids=lambda p: p.stem)
def test_source_is_python_within_the_line_length(src):
    text = src.read_text(encoding="utf-8")
    # The percent format keeps markdown as comments and comments out magics (`# %matplotlib inline`), so the file is
    # the notebook's code cells joined into one plain Python module.
    compile(text, str(src), "exec")
    long = [f"line {n}: {len(line)} characters" for n, line in enumerate(text.splitlines(), 1) if len(line) > MAX_LINE]
    assert not long, f"{src.name} has lines over {MAX_LINE} characters: {long}"


@pytest.mark.parametrize("src", sources(), ids=lambda p: p.stem)
def test_source_header_is_only_the_kernelspec(src):
    """No jupytext version (or other metadata that changes from one machine or upgrade to the next) in the header:
    sources written with `--opt notebook_metadata_filter=kernelspec,-jupytext` (see notebooks/src/README.md)."""
    header = src.read_text(encoding="utf-8").split("# %%", 1)[0]
    assert "jupytext" not in header and "language_info" not in header, f"{src.name}: header {header!r}"
