"""`python -m minivlm train clipcap` / `eval clipcap` / `caption`: train ClipCap on a frozen toy CLIP (or load it),
evaluate its captions, write metrics.json and the curves, print a table and a few captions; caption one image."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minivlm.data.folder import load_image
from minivlm.recipes.clip import eval_sets
from minivlm.recipes.clip_cli import frozen_clip
from minivlm.recipes.clipcap import LM_STEPS, caption_images, evaluate_clipcap, load_clipcap, train_clipcap
from minivlm.recipes.lm import pretrain_steps
from minivlm.recipes.runs import (checkpoint_stats, cli_train_config, peak_rss_mb, print_results, run_stats,
                                  show_eval, write_metrics)
from minivlm.train import save_checkpoint

DEFAULT_SECONDS = 60.0
CLIP_SECONDS = 100.0  # the toy CLIP trained first when neither --clip nor --clip-steps is given
SETTING = ("mapper", "prefix_len", "freeze_lm", "trainable_params", "lm_pretrain_steps",
           "lm_pretrain_seconds")  # kept in the checkpoint
HEADLINE = ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em", "bleu4", "val_ce")


def write_report(metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the curves, and a short results table with some captions on stdout."""
    write_metrics(out, metrics, history, ("caption_em", "caption_em_1obj", "caption_em_2obj"), "ClipCap")
    plt.close("all")
    print_results(metrics, HEADLINE)
    for sample in metrics["samples"]:
        print(f"  {sample['true']!r:<60} -> {sample['generated']!r}")
    print(f"wrote {out}/: metrics.json{', clipcap.pt, curves.png' if history else ''}")


def train(args) -> None:
    cfg = cli_train_config(args, DEFAULT_SECONDS)
    out = Path(args.out or f"runs/clipcap-seed{args.seed}")
    clip, tokenizer, clip_stats = frozen_clip(args, CLIP_SECONDS)
    sets = eval_sets(tokenizer, clip.cfg.image_size, names=("mixed", "heldout"))
    model, history, lm_history = train_clipcap(cfg, clip, tokenizer, args.mapper, args.prefix_len, args.freeze_lm,
                                               lm_steps=pretrain_steps(cfg, LM_STEPS) if args.freeze_lm else 0,
                                               curve_sets={"mixed": sets["mixed"]})
    stats = run_stats(model, history, args.seed)
    setting = {"mapper": args.mapper, "prefix_len": args.prefix_len, "freeze_lm": args.freeze_lm,
               "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "lm_pretrain_steps": lm_history.steps[-1]["step"] if lm_history else 0,
               "lm_pretrain_seconds": lm_history.steps[-1]["seconds"] if lm_history else 0.0, **clip_stats}
    with torch.no_grad():
        metrics = {**evaluate_clipcap(model, tokenizer, sets), **stats, **setting, "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / "clipcap.pt", model, "clipcap", model.cfg, cfg,
                    extra={"vocab": tokenizer.vocab, "max_len": tokenizer.max_len, **stats, **setting})
    write_report(metrics, out, history)


def evaluate(args) -> None:
    model, tokenizer, ckpt = load_clipcap(args.checkpoint, args.device)
    sets = eval_sets(tokenizer, model.cfg.clip.image_size, names=("mixed", "heldout"))
    with torch.no_grad():
        metrics = {**evaluate_clipcap(model, tokenizer, sets), **checkpoint_stats(model, ckpt),
                   **{k: ckpt["extra"].get(k) for k in SETTING}}
    show_eval(metrics, args.out, write_report)


def caption(args) -> None:
    """Print the greedy caption of one image: a PNG of the world's size, or any size with --resize."""
    model, tokenizer, _ = load_clipcap(args.checkpoint, args.device)
    image = load_image(args.image, model.cfg.clip.image_size, args.resize)  # (S, S, 3) uint8
    print(caption_images(model, image[None], tokenizer)[0])
