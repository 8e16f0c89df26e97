"""Shared fixtures: one tokenizer, one small rendered dataset and a tiny CLIP config, so every test stays fast."""
import dataclasses
import os
import tempfile

import pytest
import torch

from minivlm.data import Tokenizer, make_shapes
from minivlm.models.clip import CLIPConfig
from minivlm.recipes.clip import clip_config

# The tests use tiny tensors, where a second intra-op thread only adds hand-offs (and, on a busy machine, waits
# several times longer than the work). One thread also keeps the suite from competing with a benchmark.
torch.set_num_threads(1)

# Models trained as prerequisites go to a cache of the test run's own (the command-line tests' subprocesses and the
# notebooks' kernels inherit it), never into the checkout's runs/cache.
os.environ.setdefault("MINIVLM_CACHE", tempfile.mkdtemp(prefix="minivlm-test-cache-"))


@pytest.fixture(scope="session")
def tokenizer():
    return Tokenizer()


@pytest.fixture(scope="session")
def small_data(tokenizer):
    """200 scenes (seed 0, 20 % two-object); tests must not modify it."""
    return make_shapes(n=200, seed=0, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def tiny_cfg(tokenizer) -> CLIPConfig:
    """A CLIP of half the default width and depth (about 36k parameters): enough to test wiring and learning."""
    return dataclasses.replace(clip_config(tokenizer), vision_dim=32, vision_layers=1, text_dim=32, text_layers=1,
                               heads=2, embed_dim=32)
