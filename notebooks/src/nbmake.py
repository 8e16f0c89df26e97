"""What every notebook generator here shares: `md` and `code` append cells, `write` saves the notebook (without
outputs) next to the other notebooks. Execute it in full mode afterwards to store real outputs."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CHECK = "# NBVAL_CHECK_OUTPUT\n"  # nbval --nbval-lax compares the outputs of these cells only
cells = []


def md(text: str) -> None:
    cells.append(new_markdown_cell(text.strip()))


def code(text: str, checked: bool = False) -> None:
    cells.append(new_code_cell((CHECK if checked else "") + text.strip()))


def write(name: str) -> None:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"}})
    out = Path(__file__).resolve().parents[1] / name
    nbformat.write(nb, out)
    print("wrote", out)
