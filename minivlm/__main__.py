"""Command line: `python -m minivlm train clip|lm|clipcap|llava|flamingo ...`, `python -m minivlm eval MODEL CKPT ...`,
`python -m minivlm ask CKPT IMAGE.png "question"` (LLaVA), `python -m minivlm caption CKPT IMAGE.png` (ClipCap) and
`python -m minivlm fewshot CKPT PROMPT_FILE` (Flamingo) and `python -m minivlm draw CKPT "caption"` (DALL-E, CM3).

Any bad argument, unknown model or unreadable checkpoint ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys

from minivlm.recipes import clip_cli, clipcap_cli, flamingo_cli, llava_cli, lm_cli, t2i_cli, vq_cli

MODELS = {"clip": clip_cli, "lm": lm_cli, "llava": llava_cli, "clipcap": clipcap_cli,
          "flamingo": flamingo_cli, "vq": vq_cli, "dalle": t2i_cli, "cm3": t2i_cli}  # name -> module with train(args), evaluate(args)


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
                        help="training wall seconds (default 120 for clip, 30 for lm, 90 for llava, 60 for clipcap, "
                        "120 for flamingo, 180 for vq after a 90 s judge, 360 for dalle, 300 for cm3)")
    budget.add_argument("--steps", type=_positive(int), help="optimiser steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--out", default=None, help="output folder (default runs/MODEL-seedS)")
    t.add_argument("--clip", default=None,
                   help="llava, clipcap, flamingo: a trained CLIP checkpoint for the vision encoder; dalle, cm3: the "
                   "CLIP that reranks samples")
    t.add_argument("--clip-steps", type=_positive(int),
                   help="llava, clipcap, flamingo, dalle, cm3: train the CLIP for this many steps (default 100 s) "
                   "when no --clip")
    t.add_argument("--judge", default=None, help="vq, dalle, cm3: a trained judge checkpoint")
    t.add_argument("--vq", default=None, help="dalle, cm3: a trained image tokenizer (train vq), judge.pt beside it; "
                   "else judge and tokenizer are trained first")
    t.add_argument("--projector", choices=("linear", "mlp"), default="mlp", help="llava: the projector")
    t.add_argument("--mapper", choices=("mlp", "transformer"), default="mlp", help="clipcap: the mapping network F")
    t.add_argument("--prefix-len", type=_positive(int), default=4, help="clipcap: prefix embeddings k (default 4)")
    lm = t.add_mutually_exclusive_group()
    lm.add_argument("--freeze-lm", dest="freeze_lm", action="store_true",
                    help="clipcap: freeze the LM, pretrained on captions alone for 200 steps first")
    lm.add_argument("--finetune-lm", dest="freeze_lm", action="store_false",
                    help="clipcap: train the LM from scratch with the mapper (default)")
    e = sub.add_parser("eval", allow_abbrev=False, help="re-evaluate a checkpoint")
    e.add_argument("model", choices=sorted(MODELS))
    e.add_argument("checkpoint")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    e.add_argument("--out", default=None, help="write metrics.json and plots here")
    e.add_argument("--clip", default=None, help="dalle, cm3: a CLIP checkpoint to rerank samples")
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


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "ask":
            llava_cli.ask(args)
        elif args.command == "caption":
            clipcap_cli.caption(args)
        elif args.command == "fewshot":
            flamingo_cli.fewshot(args)
        elif args.command == "draw":
            t2i_cli.draw_command(args)
        elif args.command == "train":
            MODELS[args.model].train(args)
        else:
            MODELS[args.model].evaluate(args)
    except ValueError as e:  # our boundary checks: bad checkpoint, bad device, bad data
        sys.stderr.write(f"minivlm: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
