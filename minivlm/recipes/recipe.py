"""The one shape every system's recipe has: a frozen dataclass of every setting of how the system is trained on the
world, and four methods the command line, the cache and the leaderboard call.

    recipe = LLaVARecipe()                       # the benchmarked settings
    run = train(recipe, steps=None, seed=0)      # None: the recipe's own default budget, `recipe.steps`
    metrics = recipe.evaluate(run.model, run.deps)
    recipe.report(run.model, metrics, Path("runs/x"), run.history, run.deps)
    model, tokenizer, ckpt = recipe.load("runs/x/llava.pt")

A subclass sets the class attributes (name, family, tasks, the checkpoint's model and config classes), declares what
it builds on (`prerequisites`: a trained CLIP, an image tokenizer, a judge) and implements `fit`, `evaluate` and
`report`. Adding a system is one such file in minivlm/recipes/: `registry.recipes()` finds it.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from minivlm.data.tokenizer import Tokenizer
from minivlm.recipes.runs import build_from, peak_rss_mb, run_stats
from minivlm.train import History, TrainConfig, load_checkpoint, save_checkpoint

FAMILIES = ("contrastive", "generative", "prefix for a frozen LM", "cross-attention fusion", "images as tokens",
            "no training", "tool")  # the survey's taxonomy; "tool": what scores the others (the judge)


@dataclass
class Run:
    """A trained system: the model, its training history, the run's statistics (samples, seconds, and what the
    recipe adds, e.g. the LM's pretraining steps) and the trained prerequisites it was built on."""
    model: torch.nn.Module
    history: History
    stats: dict
    deps: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """Settings shared by every recipe: the default budget (optimiser steps) and the optimiser. Subclasses add
    theirs; every field is a plain value (int, float, bool, str, tuple or dict) or another recipe."""
    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()  # the leaderboard tasks (minivlm/recipes/tasks.py) it is scored on
    summary: ClassVar[str] = ""  # one line for `python -m minivlm list`
    title: ClassVar[str] = ""  # the plots' title, e.g. "toy CLIP"
    model_cls: ClassVar[type] = None
    config_cls: ClassVar[type] = None
    verbs: ClassVar[tuple[str, ...]] = ()  # extra command-line verbs (caption, ask, fewshot, draw)
    eval_roles: ClassVar[tuple[str, ...]] = ()  # prerequisites `eval` needs, read from ROLE.pt beside the checkpoint
    headline: ClassVar[tuple[str, ...]] = ()  # the metrics printed after training
    curves: ClassVar[tuple[str, ...]] = ()  # the metrics drawn over training in curves.png

    steps: int = 1000  # the default budget: optimiser steps, so one command and seed give one model
    batch_size: int = 128
    lr: float = 3e-3
    warmup_steps: int = 50
    eval_every_s: float = 10.0  # training seconds between the curves' evaluations

    # --- what a subclass provides ---------------------------------------------------------------------------------
    def prerequisites(self) -> dict[str, tuple[Recipe, int]]:
        """role -> (recipe, steps) of each trained model this one builds on, e.g. {"clip": (CLIPRecipe(), 3750)}."""
        return {}

    def fit(self, cfg: TrainConfig, deps: dict, curves: bool) -> tuple[torch.nn.Module, History, dict]:
        """Train from `cfg.seed` under `cfg`'s budget on top of `deps` (role -> trained model); with `curves`,
        evaluate every `cfg.eval_every_s` training seconds. Returns the model, its history and extra statistics."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, deps: dict) -> dict:
        """Every metric of the system on the fixed evaluation sets."""
        raise NotImplementedError

    def report(self, model: torch.nn.Module, metrics: dict, out: Path, history: History | None = None,
               deps: dict | None = None) -> None:
        """metrics.json, the curves (with a history) and the system's plots in `out`, a table on stdout."""
        from minivlm.recipes.runs import print_results, write_metrics
        write_metrics(out, metrics, history, self.curves, self.title or self.name)
        print_results(metrics, [k for k in self.headline if type(metrics.get(k)) in (int, float)])

    def tokenizer_extra(self, model: torch.nn.Module) -> dict:
        """What the checkpoint keeps of the tokenizer (its vocabulary), for `load`."""
        return {}

    # --- shared by every recipe ------------------------------------------------------------------------------------
    def train_config(self, steps: int | None = None, seconds: float | None = None, seed: int = 0,
                     device: str = "auto") -> TrainConfig:
        """The trainer's settings: this recipe's optimiser, and the budget given (else `self.steps`)."""
        if steps is None and seconds is None:
            steps = self.steps
        return TrainConfig(steps=steps, seconds=seconds, batch_size=self.batch_size, lr=self.lr,
                           warmup_steps=self.warmup_steps, eval_every_s=self.eval_every_s, seed=seed, device=device)

    def load(self, path, device: str = "cpu") -> tuple[torch.nn.Module, Tokenizer | None, dict]:
        """The model a checkpoint of this system holds, its tokenizer (None for image-only models) and the
        checkpoint; a checkpoint of another kind, or whose weights do not fit, is a ValueError naming the file."""
        ckpt = load_checkpoint(path, self.name)
        extra = ckpt["extra"]
        tokenizer = Tokenizer(extra["vocab"], extra.get("max_len", ckpt["model_config"].get("max_len"))) \
            if "vocab" in extra else None
        return build_from(ckpt, path, self.model_cls, self.config_cls, device), tokenizer, ckpt

    def settings(self) -> dict:
        return asdict(self)


def train(recipe: Recipe, steps: int | None = None, seconds: float | None = None, seed: int = 0,
          device: str = "auto", deps: dict | None = None, curves: bool = False,
          prereq_steps: int | None = None) -> Run:
    """Train `recipe` from `seed` for `steps` (or `seconds`; neither: its default steps) on `device`. The trained
    prerequisites come from `deps` (role -> model) where given, else from the cache (trained there once, for their
    recipe's steps, or for `prereq_steps` all the way down: the leaderboard's quick check)."""
    from minivlm.recipes.cache import obtain
    deps = dict(deps or {})
    for role, (prereq, default_steps) in recipe.prerequisites().items():
        if role not in deps:
            deps[role] = obtain(prereq, prereq_steps or default_steps, seed, device, prereq_steps)
    cfg = recipe.train_config(steps, seconds, seed, device)
    model, history, extra = recipe.fit(cfg, deps, curves)
    return Run(model, history, {**run_stats(model, history, seed), **extra}, deps)


def save(recipe: Recipe, run: Run, path, overrides: dict | None = None) -> None:
    """The checkpoint of a run: weights, model config, train config, the whole recipe and what was overridden."""
    cfg = recipe.train_config(run.stats["steps"], seed=run.stats["seed"])
    save_checkpoint(path, run.model, recipe.name, run.model.cfg, cfg,
                    extra={**recipe.tokenizer_extra(run.model), **run.stats, "recipe": recipe.settings(),
                           "overrides": overrides or {}})


def measure(recipe: Recipe, run: Run) -> dict:
    """The metrics `train` reports: the evaluation, the run's statistics and the peak memory."""
    with torch.no_grad():
        return {**recipe.evaluate(run.model, run.deps), **run.stats, "peak_rss_mb": peak_rss_mb()}


# --- reading a recipe from text: the command line's --set and a checkpoint's copy ------------------------------------

def _parse(name: str, text: str, kind):
    """`text` as the type `kind` of field `name`, or a ValueError saying what was expected."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if kind in (int, float, str):
            return kind(text)
        if origin in (dict, tuple) or kind in (dict, tuple):
            value = json.loads(text)
            if not isinstance(value, dict if (origin or kind) is dict else list):
                raise ValueError
            return tuple(value) if (origin or kind) is tuple else value
    except (ValueError, json.JSONDecodeError):
        pass
    else:
        raise ValueError(f"--set {name}: this field cannot be set from the command line")
    shown = getattr(kind, "__name__", str(kind))
    raise ValueError(f"--set {name}={text}: expected {shown}"
                     f"{' (JSON)' if origin in (dict, tuple) or kind in (dict, tuple) else ''}, got {text!r}")


def override(recipe: Recipe, pairs: list[str]) -> tuple[Recipe, dict]:
    """The recipe with `--set field=value` pairs applied, each type-checked against the dataclass; an unknown field
    is refused with the list of valid ones. Returns the new recipe and {field: value} of what was set."""
    hints = typing.get_type_hints(type(recipe))
    fields = {f.name for f in dataclasses.fields(recipe)}
    changes = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--set: expected field=value, got {pair!r}")
        if name not in fields:
            raise ValueError(f"--set {name}: not a setting of {recipe.name}; its settings are: "
                             f"{', '.join(sorted(fields))}")
        changes[name] = _parse(name, text, hints[name])
    return dataclasses.replace(recipe, **changes), changes


def from_settings(cls: type, settings: dict, source: str) -> Recipe:
    """A recipe of class `cls` from its saved `settings()` (nested recipes included); a field this version does not
    know is a ValueError naming `source`."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"checkpoint: {source!r} has recipe settings this version does not know: {sorted(unknown)}")
    values = {}
    for name, value in settings.items():
        kind = hints[name]
        if isinstance(kind, type) and issubclass(kind, Recipe):
            value = from_settings(kind, value, source)
        elif typing.get_origin(kind) is tuple or kind is tuple:
            value = tuple(value)
        values[name] = value
    return cls(**values)

