"""Command line, built from the registry of recipes (minivlm/recipes/registry.py):

    python -m minivlm list                                   every system, its family, tasks, budget, prerequisites
    python -m minivlm train NAME [--steps N | --seconds S] [--seed S] [--set field=value ...] [--out DIR]
    python -m minivlm eval NAME CKPT [--out DIR]
    python -m minivlm leaderboard [--seeds 0,1] [--quick] [--only a,b]
    python -m minivlm ask|caption|fewshot|draw CKPT ...      verbs the recipes declare

Any bad argument, unknown model or unreadable checkpoint ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

from minivlm.recipes import cache, registry
from minivlm.recipes.recipe import from_settings, measure, override, save, train
from minivlm.recipes.runs import checkpoint_stats, show_eval
from minivlm.train import load_checkpoint

# flags of earlier versions, each the short form of `--set FIELD=value` for the recipes that have the field
SETTING_FLAGS = {"clip_steps": "--clip-steps", "projector": "--projector", "mapper": "--mapper",
                 "prefix_len": "--prefix-len", "freeze_lm": "--freeze-lm"}
# a checkpoint given for a prerequisite's role instead of the cache's
ROLE_FLAGS = ("clip", "vq", "judge")
# Python arguments named in the package's errors -> the command-line flags behind them
FLAG_NAMES = {"unk=True": "--unk", "resize=True": "--resize"}
NOT_STORED = ("vocab", "max_len", "recipe", "overrides")  # checkpoint extras that are not metrics


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"minivlm: error: {message}\n")
        sys.exit(2)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    names = list(registry.recipes())
    p = _Parser(prog="python -m minivlm", allow_abbrev=False,
                description="Train, evaluate and compare tiny vision-language models.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every system: family, tasks, default budget, what it builds on")
    t = sub.add_parser("train", allow_abbrev=False,
                       help="train a system, evaluate it, save checkpoint, metrics and plots")
    t.add_argument("model", choices=names)
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive(int), help="optimiser steps (default: the recipe's own, see list)")
    budget.add_argument("--seconds", type=_positive(float), help="training wall seconds instead of steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--out", default=None, help="output folder (default runs/MODEL-seedS)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a recipe setting, type-checked (e.g. --set lr=1e-3); repeatable")
    for role in ROLE_FLAGS:
        t.add_argument(f"--{role}", default=None, metavar="CKPT",
                       help=f"a trained {role} checkpoint for the systems built on one (else the cache's)")
    t.add_argument("--clip-steps", type=_positive(int), help="= --set clip_steps=N")
    t.add_argument("--projector", choices=("linear", "mlp"), help="llava: = --set projector=...")
    t.add_argument("--mapper", choices=("mlp", "transformer"), help="clipcap: = --set mapper=...")
    t.add_argument("--prefix-len", type=_positive(int), help="clipcap: = --set prefix_len=K")
    lm = t.add_mutually_exclusive_group()
    lm.add_argument("--freeze-lm", dest="freeze_lm", action="store_const", const=True,
                    help="clipcap: = --set freeze_lm=true (the LM pretrained on captions first, then frozen)")
    lm.add_argument("--finetune-lm", dest="freeze_lm", action="store_const", const=False,
                    help="clipcap: = --set freeze_lm=false (the default)")
    e = sub.add_parser("eval", allow_abbrev=False, help="re-evaluate a checkpoint")
    e.add_argument("model", choices=names)
    e.add_argument("checkpoint")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    e.add_argument("--out", default=None, help="write metrics.json and plots here")
    e.add_argument("--clip", default=None, help="dalle, cm3: a CLIP checkpoint to rerank samples")
    lb = sub.add_parser("leaderboard", allow_abbrev=False,
                        help="train (or take from the cache) every system and score it on every task it supports")
    lb.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    lb.add_argument("--quick", action="store_true", help="a few steps each: checks the whole path, not the figures")
    lb.add_argument("--only", default=None, help="comma-separated systems (default: all)")
    lb.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    lb.add_argument("--out", default=None, help="where the table, JSON and figure go (default bench/results)")
    a = sub.add_parser("ask", allow_abbrev=False, help="ask a trained LLaVA a question about a PNG image")
    a.add_argument("checkpoint")
    a.add_argument("image")
    a.add_argument("question", help='e.g. "what colour is the circle?" (<image> goes first unless placed)')
    a.add_argument("--resize", action="store_true", help="resize an image of another size instead of refusing it")
    a.add_argument("--unk", action="store_true", help="read unknown words as <unk> instead of refusing them")
    a.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    c = sub.add_parser("caption", allow_abbrev=False, help="caption a PNG image with a trained ClipCap")
    c.add_argument("checkpoint")
    c.add_argument("image")
    c.add_argument("--resize", action="store_true", help="resize an image of another size instead of refusing it")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    f = sub.add_parser("fewshot", allow_abbrev=False, help="continue an interleaved prompt with a trained Flamingo")
    f.add_argument("checkpoint")
    f.add_argument("prompt_file", help="text with <image:path.png> markers, paths relative to the file, e.g. "
                   "'<image:a.png> red . <image:b.png> blue . <image:c.png>'")
    f.add_argument("--max-new", type=_positive(int), default=14, help="most tokens to generate (default 14)")
    f.add_argument("--resize", action="store_true", help="resize images of another size instead of refusing them")
    f.add_argument("--unk", action="store_true", help="read unknown words as <unk> instead of refusing them")
    f.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    d = sub.add_parser("draw", allow_abbrev=False, help="draw pictures of a caption with a trained dalle or cm3")
    d.add_argument("checkpoint")
    d.add_argument("caption", help='e.g. "a large green star above a small red circle"')
    d.add_argument("--n", type=_positive(int), default=8, help="samples (default 8)")
    d.add_argument("--out", default="grid.png", help="the PNG to write (default grid.png)")
    d.add_argument("--clip", default=None, help="a CLIP checkpoint: order the samples best first")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return p


def recipe_of(name: str, args) -> tuple[object, dict]:
    """The recipe `train NAME` runs: the registered defaults, then the short flags, then every --set, each checked
    against the recipe's fields. Returns it and what was overridden."""
    recipe = registry.get(name)()
    fields = recipe.settings()
    pairs = []
    for field, flag in SETTING_FLAGS.items():
        value = getattr(args, field)
        if value is None:
            continue
        if field not in fields:
            raise ValueError(f"{flag}: not a setting of {name}")
        pairs.append(f"{field}={value}")
    return override(recipe, pairs + args.set)


def given_deps(recipe, args) -> tuple[dict, dict]:
    """The prerequisites named on the command line (--clip, --vq, --judge; a --vq's judge.pt beside it unless
    --judge is given) -> (role -> model, role -> checkpoint path)."""
    roles = recipe.prerequisites()
    paths = {}
    for role in ROLE_FLAGS:
        path = getattr(args, role)
        if path is None:
            continue
        if role not in roles:
            raise ValueError(f"--{role}: {recipe.name} builds on no {role} (it builds on: "
                             f"{', '.join(roles) or 'nothing'})")
        paths[role] = Path(path)
    deps = {role: roles[role][0].load(path, args.device)[0] for role, path in paths.items()}
    if "vq" in paths and "judge" in roles and "judge" not in paths:
        paths["judge"] = paths["vq"].parent / "judge.pt"
        if not paths["judge"].is_file():
            raise ValueError(f"--vq: no judge.pt beside {str(paths['vq'])!r} (train vq writes one there)")
        deps["judge"] = roles["judge"][0].load(paths["judge"], args.device)[0]
    return deps, paths


def train_command(args) -> None:
    recipe, overrides = recipe_of(args.model, args)
    deps, paths = given_deps(recipe, args)
    out = Path(args.out or f"runs/{recipe.name}-seed{args.seed}")
    run = train(recipe, args.steps, args.seconds, args.seed, args.device, deps, curves=True)
    metrics = {**measure(recipe, run), "overrides": overrides,
               **{f"{role}_checkpoint": str(path) for role, path in paths.items()}}
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / f"{recipe.name}.pt"
    save(recipe, run, ckpt, overrides)
    for role, (prereq, steps) in recipe.prerequisites().items():  # beside the model, for eval and the verbs
        source = paths.get(role) or cache.path_of(prereq, args.seed, steps)
        cache.copy(source, out / f"{role}.pt")
        metrics[f"{role}_train_seconds"] = load_checkpoint(source, prereq.name)["extra"].get("train_seconds")
    if args.seconds is None and not paths:  # a steps budget on the cache's prerequisites: reusable
        cache.keep(recipe, args.seed, run.stats["steps"], ckpt)
    recipe.report(run.model, metrics, out, run.history, run.deps)
    print(f"wrote {out}/: metrics.json, {ckpt.name}, *.png")


def eval_command(args) -> None:
    cls = registry.get(args.model)
    ckpt_info = load_checkpoint(args.checkpoint, cls.name)
    saved = ckpt_info["extra"].get("recipe")
    recipe = from_settings(cls, saved, args.checkpoint) if saved else cls()
    model, _, ckpt = recipe.load(args.checkpoint, args.device)
    folder, roles = Path(args.checkpoint).parent, recipe.prerequisites()
    deps = {}
    for role in recipe.eval_roles:
        path = folder / f"{role}.pt"
        if not path.is_file():
            raise ValueError(f"checkpoint: no {role}.pt beside {args.checkpoint!r} (train {recipe.name} writes one "
                             "there)")
        deps[role] = roles[role][0].load(path, args.device)[0]
    if args.clip:
        deps["clip"] = registry.get("clip")().load(args.clip, args.device)[0]
    extra = {k: v for k, v in ckpt["extra"].items() if k not in NOT_STORED}
    with torch.no_grad():
        metrics = {**recipe.evaluate(model, deps), **extra, **checkpoint_stats(model, ckpt)}
    show_eval(metrics, args.out, lambda m, out: recipe.report(model, m, out, None, deps))


def list_command() -> None:
    rows = [(cls.name, cls.family, ", ".join(cls.tasks), f"{cls.steps:,} steps",
             ", ".join(f"{role} ({steps:,} steps)" for role, (_, steps) in cls().prerequisites().items()) or "–")
            for cls in registry.recipes().values()]
    head = ("system", "family", "tasks", "default budget", "builds on")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for row in [head] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def verb_command(args) -> None:
    """ask (llava), caption (clipcap), fewshot (flamingo), draw (dalle, cm3): the recipe module's function."""
    for cls in registry.recipes().values():
        if args.command in cls.verbs:
            module = importlib.import_module(cls.__module__)
            options = {k: v for k, v in vars(args).items() if k != "command"}
            getattr(module, args.command)(**options)
            return
    raise ValueError(f"{args.command}: no recipe declares this verb")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            list_command()
        elif args.command == "train":
            train_command(args)
        elif args.command == "eval":
            eval_command(args)
        elif args.command == "leaderboard":
            from minivlm.recipes.leaderboard import leaderboard
            leaderboard([int(s) for s in args.seeds.split(",")], args.quick,
                        args.only.split(",") if args.only else None, args.device, args.out)
        else:
            verb_command(args)
    except ValueError as e:  # our boundary checks: bad checkpoint, bad device, bad data, bad --set
        message = str(e)
        for name, flag in FLAG_NAMES.items():
            message = message.replace(name, flag)
        sys.stderr.write(f"minivlm: error: {message}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
