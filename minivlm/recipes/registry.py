"""Every system minivlm trains, found once: each module of minivlm/recipes/ that defines a `Recipe` subclass with a
name adds it. The command line (`train`, `eval`, `list`) and the leaderboard read this and nothing else."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import minivlm.recipes
from minivlm.recipes.recipe import FAMILIES, Recipe


def recipes() -> dict[str, type[Recipe]]:
    """name -> recipe class, ordered by family (the survey's taxonomy), then by name."""
    found = {}
    for info in pkgutil.iter_modules(minivlm.recipes.__path__):
        module = importlib.import_module(f"minivlm.recipes.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Recipe) and cls.name and cls.__module__ == module.__name__:
                found[cls.name] = cls
    return dict(sorted(found.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))


def get(name: str) -> type[Recipe]:
    known = recipes()
    if name not in known:
        raise ValueError(f"model: expected one of {', '.join(known)}, got {name!r}")
    return known[name]
