# The two set-up commands of the README. Each makes (or updates) .venv and installs what it needs.
# torch is pinned through constraints.txt: an unpinned torch would pull several GB of CUDA wheels.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test notebooks bench

$(VENV)/.demo: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test]'
	touch $@

# Train toy CLIP on the shapes world for about two minutes and show its results.
demo: $(VENV)/.demo
	$(PY) -m minivlm train clip --seconds 120 --out runs/demo

# Every unit test, every lesson grader, every notebook under nbval (notebooks in fast mode).
test: $(VENV)/.test
	MINIVLM_FAST=1 $(PY) -m pytest -q tests --nbval-lax notebooks

# For course staff: re-run every notebook top to bottom in full mode and store its outputs.
notebooks: $(VENV)/.test
	$(PIP) -e '.[test,notebooks]'
	$(PY) notebooks/src/execute.py notebooks/*.ipynb

# Speed and accuracy targets (writes bench/results/*.json).
bench: $(VENV)/.demo
	$(PY) bench/clip_bench.py
	$(PY) bench/generative_bench.py
	$(PY) -m minivlm train clip --seconds 300 --out runs/bench-clip-300
	$(PY) bench/generative_bench.py --clip runs/bench-clip-300/clip.pt --only llava
	$(PY) bench/flamingo_bench.py
	$(PY) bench/vq_bench.py
	$(PY) bench/t2i_bench.py
