"""Re-run notebooks top to bottom in full mode and store their outputs (`make notebooks`), with each cell's
stream output coalesced (tqdm's many updates become one chunk): nbclient takes `coalesce_streams` only here,
not from the jupyter nbconvert command line.

A notebook's cells come from its jupytext source notebooks/src/<name>.py: edit the source, then `make notebooks`
syncs every source into its notebook and runs this script on them (notebooks/src/README.md).

    python notebooks/src/execute.py notebooks/06_llava.ipynb [...]

It prints each notebook's wall-clock minutes: the figure its first cell and the README's course table state.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

for path in map(Path, sys.argv[1:]):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=1200, coalesce_streams=True).preprocess(nb, {"metadata": {"path": str(path.parent)}})
    nbformat.write(nb, path)
    print(f"executed {path} in {(time.perf_counter() - start) / 60:.1f} minutes")
