"""`python -m minivlm leaderboard`: every registered system trained at its default budget (or taken from the cache),
scored on every task it supports, in one table (Markdown), one JSON file and one figure (systems x tasks).

With several seeds each cell shows the mean and the range. `--quick` trains each system (and what it builds on) for
a few steps: it checks the whole path in CI, not the figures, and writes to runs/leaderboard-quick/.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from minivlm.recipes import cache, registry
from minivlm.recipes.recipe import measure, save, train
from minivlm.recipes.tasks import TASKS, score
from minivlm.train import pick_device

QUICK_STEPS = 2


def machine(device: torch.device) -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"device": str(device), "cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "date": datetime.date.today().isoformat()}


def scores_of(recipe, seed: int, quick: bool, device: str) -> tuple[dict, dict]:
    """Train `recipe` (or read it from the cache) and score it -> ({task: figure}, the run's statistics)."""
    steps = QUICK_STEPS if quick else recipe.steps
    path = cache.path_of(recipe, seed, steps)
    if path.is_file():
        print(f"leaderboard: {recipe.name} seed {seed} from {path}")
        model, _, ckpt = recipe.load(path, device)
        few = QUICK_STEPS if quick else None
        deps = {role: cache.obtain(prereq, few or prereq_steps, seed, device, few)
                for role, (prereq, prereq_steps) in recipe.prerequisites().items()}
        stats = {k: v for k, v in ckpt["extra"].items() if k in ("samples_seen", "train_seconds", "samples_per_s",
                                                                 "steps", "params", "device")}
        with torch.no_grad():
            metrics = {**recipe.evaluate(model, deps), **stats}
    else:
        run = train(recipe, steps, seed=seed, device=device, prereq_steps=QUICK_STEPS if quick else None)
        save(recipe, run, path)
        metrics, stats = measure(recipe, run), run.stats
    return score(recipe.tasks, metrics), stats


def cell(values: list[float]) -> str:
    """One figure, or the mean of several seeds and their range; rates (>= 10) as whole numbers."""
    mean = float(np.mean(values))
    fmt = (lambda v: f"{v:,.0f}") if mean >= 10 else (lambda v: f"{v:.3f}")  # noqa: E731
    return fmt(mean) if len(values) == 1 else f"{fmt(mean)} ({fmt(min(values))}–{fmt(max(values))})"


def table(results: dict, seeds: list[int]) -> str:
    """Markdown: one column per system, one row per task any system has; '–' where a system has no such task."""
    tasks = [t for t in TASKS if any(t in r["scores"] for r in results.values())]
    rows = [("family", [r["family"] for r in results.values()]),
            ("steps", [f"{r['steps']:,}" for r in results.values()]),
            ("train s (this machine)", [f"{np.mean(r['train_seconds']):.0f}" for r in results.values()])]
    rows += [(TASKS[t].label, [cell(r["scores"][t]) if t in r["scores"] else "–" for r in results.values()])
             for t in tasks]
    lines = ["| | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    note = f"seeds {', '.join(map(str, seeds))}" + ("; mean (min–max)" if len(seeds) > 1 else "")
    return "\n".join(lines) + (f"\n\n{note}; train s: training seconds, prerequisites not counted; caption CE lower "
                               "is better, every other task higher.\n")


def figure(results: dict):
    """Systems x tasks, each task's column coloured from its worst to its best system (samples/s left out)."""
    tasks = [t for t in TASKS if t != "samples_per_s" and any(t in r["scores"] for r in results.values())]
    grid = np.full((len(results), len(tasks)), np.nan)
    for i, r in enumerate(results.values()):
        for j, t in enumerate(tasks):
            if t in r["scores"]:
                grid[i, j] = np.mean(r["scores"][t])
    fig, ax = plt.subplots(figsize=(0.55 * len(tasks) + 2.5, 0.45 * len(results) + 2.2))
    ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(tasks)), [TASKS[t].label for t in tasks], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(results)), list(results), fontsize=8)
    ax.set_xlabel("task (caption CE in nats per token, every other figure a fraction right)")
    ax.set_ylabel("system")
    ax.set_title("minivlm leaderboard: every system on the same world")
    fig.tight_layout()
    return fig


def leaderboard(seeds: list[int], quick: bool = False, only: list[str] | None = None, device: str = "auto",
                out: str | None = None) -> dict:
    """Train or read every registered system (or `only` these) for each seed, score it on its tasks, and write
    leaderboard_<device>.{md,json,png} into `out` (bench/results, or runs/leaderboard-quick with `quick`)."""
    known = registry.recipes()
    for name in only or []:
        registry.get(name)
    dev = pick_device(device)
    results = {}
    for name, cls in known.items():
        if only and name not in only:
            continue
        recipe = cls()
        per_seed = [scores_of(recipe, seed, quick, device) for seed in seeds]
        results[name] = {"family": cls.family, "steps": QUICK_STEPS if quick else recipe.steps,
                         "builds_on": {role: steps for role, (_, steps) in recipe.prerequisites().items()},
                         "scores": {t: [s[t] for s, _ in per_seed] for t in cls.tasks},
                         "train_seconds": [stats["train_seconds"] for _, stats in per_seed]}
    folder = Path(out or ("runs/leaderboard-quick" if quick else "bench/results"))
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"leaderboard_{dev.type}"
    report = {"machine": machine(dev), "seeds": seeds, "quick": quick, "systems": results}
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(results, seeds)
    Path(f"{stem}.md").write_text(f"Measured on {report['machine']['cpu']} ({report['machine']['threads']} threads, "
                                  f"{dev}), torch {torch.__version__}, {report['machine']['date']}.\n\n{text}")
    figure(results).savefig(f"{stem}.png", dpi=120)
    plt.close("all")
    print(text)
    print(f"wrote {stem}.md, .json, .png")
    return report
