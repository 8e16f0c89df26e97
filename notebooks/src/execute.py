"""Re-run notebooks top to bottom in full mode and store their outputs (`make notebooks`), with each cell's
stream output coalesced (tqdm's many updates become one chunk): nbclient takes `coalesce_streams` only here,
not from the jupyter nbconvert command line.

    python notebooks/src/execute.py notebooks/06_llava.ipynb [...]
"""
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

for path in map(Path, sys.argv[1:]):
    nb = nbformat.read(path, as_version=4)
    ExecutePreprocessor(timeout=1200, coalesce_streams=True).preprocess(nb, {"metadata": {"path": str(path.parent)}})
    nbformat.write(nb, path)
    print("executed", path)
