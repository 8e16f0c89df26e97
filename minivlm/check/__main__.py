"""`python -m minivlm.check NAME [--file PATH]` grades lessons/exercises/NAME.py; `--list` lists the exercises.

Exit status: 0 when every case passes, 1 when one fails, 2 for an unknown NAME or a missing file (one line).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from minivlm.check import EXERCISES, grade


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"minivlm.check: error: {message}\n")
        sys.exit(2)


def _list() -> None:
    rows = [(name, ", ".join(g.FUNCTIONS), g.LESSON)
            for name, g in ((n, importlib.import_module(f"minivlm.check.{n}")) for n in EXERCISES)]
    names = max(len(name) for name, _, _ in rows)  # columns as wide as the longest name, list of functions
    width = max(len(functions) for _, functions, _ in rows)
    for name, functions, lesson in rows:
        print(f"{name:{names}} {functions:{width}} {lesson}")


def main(argv=None) -> int:
    p = _Parser(prog="python -m minivlm.check", description="Grade a lesson exercise against minivlm's reference.")
    p.add_argument("name", nargs="?", help=f"the exercise: {', '.join(EXERCISES)}")
    p.add_argument("--file", help="the file to grade (default lessons/exercises/NAME.py, from the current folder)")
    p.add_argument("--list", action="store_true", help="list the exercises, their functions and lesson pages")
    args = p.parse_args(argv)
    if args.list:
        _list()
        return 0
    if args.name not in EXERCISES:
        p.error(f"NAME: expected one of {', '.join(EXERCISES)}, got {args.name!r}")
    path = Path(args.file or f"lessons/exercises/{args.name}.py")
    if not path.is_file():
        p.error(f"no file {str(path)!r} (run from the repository root, or pass --file PATH)")
    return 0 if grade(args.name, path) else 1


if __name__ == "__main__":
    sys.exit(main())
