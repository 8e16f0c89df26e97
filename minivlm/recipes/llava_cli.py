"""`python -m minivlm train llava` / `eval llava` / `ask`: train a toy CLIP (or load one with --clip), then LLaVA's
two stages on top; evaluate VQA accuracy by question kind, write metrics.json and the curves; answer a question
about a PNG."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minivlm.data.folder import load_image
from minivlm.data.images import preprocess
from minivlm.data.questions import instruction_tokenizer
from minivlm.data.tokenizer import IMAGE
from minivlm.recipes.clip_cli import frozen_clip
from minivlm.recipes.llava import LR, eval_sets, evaluate_llava, head, load_llava, train_llava
from minivlm.recipes.runs import (checkpoint_stats, cli_train_config, peak_rss_mb, print_results, run_stats,
                                  show_eval, write_metrics)
from minivlm.train import save_checkpoint

DEFAULT_SECONDS = 90.0  # both stages
DEFAULT_CLIP_SECONDS = 100.0  # the toy CLIP recipe reaches about 95 % zero-shot by then
HEADLINE = ("vqa_acc", "vqa_heldout_acc")


def write_report(metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the curves (loss; VQA accuracy on 400 questions), and the accuracy of each kind on stdout."""
    write_metrics(out, metrics, history, ("vqa_acc",), "toy LLaVA")
    plt.close("all")
    print_results(metrics, HEADLINE)
    for kind, acc in metrics["vqa_acc_by_type"].items():
        print(f"  {kind:<18} {acc:.3f}  (held-out pairs {metrics['vqa_heldout_acc_by_type'][kind]:.3f})")
    print(f"wrote {out}/: metrics.json{', llava.pt, curves.png' if history else ''}")


def train(args) -> None:
    cfg = dataclasses.replace(cli_train_config(args, DEFAULT_SECONDS), lr=LR)
    out = Path(args.out or f"runs/llava-seed{args.seed}")
    clip, _, clip_source = frozen_clip(args, DEFAULT_CLIP_SECONDS)  # only its vision tower is used
    tokenizer = instruction_tokenizer()
    sets = eval_sets(tokenizer)
    model, history, stage_seconds = train_llava(cfg, clip, tokenizer, projector=args.projector,
                                                curve_sets={"vqa": head(sets["vqa"], 400)})  # 50 of each kind
    stats = {**run_stats(model, history, args.seed), **stage_seconds, **clip_source}
    metrics = {**evaluate_llava(model, tokenizer, sets), **stats, "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / "llava.pt", model, "llava", model.cfg, cfg, extra={"vocab": tokenizer.vocab, **stats})
    write_report(metrics, out, history)


def evaluate(args) -> None:
    model, tokenizer, ckpt = load_llava(args.checkpoint, args.device)
    metrics = {**evaluate_llava(model, tokenizer, eval_sets(tokenizer, model.cfg.vision.image_size)),
               **checkpoint_stats(model, ckpt),
               **{k: ckpt["extra"].get(k) for k in ("stage1_seconds", "stage2_seconds")}}
    show_eval(metrics, args.out, write_report)


def ask(args) -> None:
    """Print LLaVA's answer to `args.question` about the PNG `args.image`; "<image>" is put before a question that
    does not place it itself."""
    model, tokenizer, _ = load_llava(args.checkpoint, args.device)
    res = model.cfg.vision.image_size
    image = load_image(args.image, res, resize=args.resize)  # (res, res, 3) uint8
    prompt = args.question if IMAGE in tokenizer.split(args.question) else f"{IMAGE} {args.question}"
    with torch.no_grad():
        print(model.answer(preprocess(image, res).to(next(model.parameters()).device), [prompt], tokenizer,
                           unk=args.unk)[0])
