# The two set-up commands of the README. Each makes (or updates) .venv and installs what it needs.
# torch is pinned to 2.13.0 through constraints.txt. On Linux, PyPI's wheel of it carries CUDA (several GB): right
# for a GPU machine. On a CPU-only Linux machine, take PyTorch's CPU wheel of the same version instead (a few
# hundred MB) with `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu` (or `make demo ...`), run before
# .venv holds a torch. Empty by default: plain pip and the pin. macOS takes the ordinary wheel either way.
PYTHON ?= python3
TORCH_INDEX ?=
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt$(if $(TORCH_INDEX), \
	--extra-index-url $(TORCH_INDEX))

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
	$(PY) -m minivlm train clip --out runs/demo

# Every unit test, every lesson grader, every notebook under nbval (notebooks in fast mode).
test: $(VENV)/.test
	MINIVLM_FAST=1 $(PY) -m pytest -q -n 2 --dist loadfile tests --nbval-lax notebooks

# For course staff: after editing a notebook's source notebooks/src/0N_name.py (notebooks/src/README.md), sync every
# source into its notebook (jupytext: the source's cells, the notebook's stored outputs and metadata kept), then re-run
# every notebook top to bottom in full mode and store its outputs.
notebooks: $(VENV)/.test
	$(PIP) -e '.[test,notebooks]' 'jupytext>=1.16'
	for src in notebooks/src/[0-9]*.py; do \
		$(VENV)/bin/jupytext --update --to notebook --output notebooks/$$(basename $$src .py).ipynb $$src || exit 1; \
	done
	$(PY) notebooks/src/execute.py notebooks/*.ipynb

# Speed and accuracy targets (writes bench/results/*.json).
bench: $(VENV)/.demo
	$(PY) bench/clip_bench.py
	$(PY) bench/generative_bench.py
	$(PY) -m minivlm train clip --steps 7500 --out runs/bench-clip-7500
	$(PY) bench/generative_bench.py --clip runs/bench-clip-7500/clip.pt --only llava
	$(PY) bench/flamingo_bench.py
	$(PY) bench/vq_bench.py
	$(PY) bench/t2i_bench.py
