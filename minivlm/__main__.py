"""Command line: `python -m minivlm train clip|lm ...` and `python -m minivlm eval clip|lm CKPT ...`.

Any bad argument, unknown model or unreadable checkpoint ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys

from minivlm.recipes import clip_cli, lm_cli

MODELS = {"clip": clip_cli, "lm": lm_cli}  # model name -> module with train(args) and evaluate(args)


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
    p = _Parser(prog="python -m minivlm", allow_abbrev=False,
                description="Train and evaluate tiny vision-language models.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", allow_abbrev=False, help="train a model, evaluate it, save checkpoint, metrics and plots")
    t.add_argument("model", choices=sorted(MODELS))
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=_positive(float),
                        help="training wall seconds (default 120 for clip, 30 for lm)")
    budget.add_argument("--steps", type=_positive(int), help="optimiser steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--out", default=None, help="output folder (default runs/MODEL-seedS)")
    e = sub.add_parser("eval", allow_abbrev=False, help="re-evaluate a checkpoint")
    e.add_argument("model", choices=sorted(MODELS))
    e.add_argument("checkpoint")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    e.add_argument("--out", default=None, help="write metrics.json and plots here")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    module = MODELS[args.model]
    try:
        if args.command == "train":
            module.train(args)
        else:
            module.evaluate(args)
    except ValueError as e:  # our boundary checks: bad checkpoint, bad device, bad data
        sys.stderr.write(f"minivlm: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
