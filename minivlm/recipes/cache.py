"""Trained prerequisites, trained once: a checkpoint per (recipe settings, seed, steps) under `runs/cache/`, so that
`train llava` reuses the CLIP `train clip` made with the same settings, the notebooks share one CLIP and the
leaderboard never trains one thing twice. Fast mode (MINIVLM_FAST=1) is part of the key: a fast-mode run never
overwrites a full-mode model."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from minivlm import fast_mode


def root() -> Path:
    """The cache folder: $MINIVLM_CACHE, else runs/cache under the current folder."""
    return Path(os.environ.get("MINIVLM_CACHE", "runs/cache"))


def key(recipe, seed: int, steps: int) -> str:
    """A file name that changes with any setting of the recipe, the seed, the steps or fast mode."""
    text = json.dumps({"recipe": recipe.settings(), "seed": seed, "steps": steps, "fast": fast_mode()},
                      sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{recipe.name}-seed{seed}-{steps}steps{'-fast' if fast_mode() else ''}-{digest}.pt"


def path_of(recipe, seed: int, steps: int) -> Path:
    return root() / key(recipe, seed, steps)


def obtain(recipe, steps: int, seed: int = 0, device: str = "auto", prereq_steps: int | None = None
           ) -> torch.nn.Module:
    """The model `recipe` trains from `seed` in `steps`: read from the cache, else trained (with its own
    prerequisites, recursively: for `prereq_steps` each when given) and stored there."""
    from minivlm.recipes.recipe import save, train
    path = path_of(recipe, seed, steps)
    if path.is_file():
        print(f"cache: {recipe.name} ({steps} steps, seed {seed}) from {path}")
        return recipe.load(path, device)[0]
    print(f"cache: training {recipe.name} for {steps} steps (seed {seed}), to be kept in {path}")
    run = train(recipe, steps=steps, seed=seed, device=device, prereq_steps=prereq_steps)
    save(recipe, run, path)
    return run.model


def keep(recipe, seed: int, steps: int, checkpoint: Path) -> None:
    """Copy a checkpoint trained by `train` under a steps budget into the cache, for the systems that build on it."""
    copy(checkpoint, path_of(recipe, seed, steps))


def copy(source, target) -> None:
    """`source` to `target` (its folder made), unless they are the same file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if Path(source).resolve() != target.resolve():
        shutil.copyfile(source, target)
