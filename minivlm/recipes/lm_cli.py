"""`python -m minivlm train lm` / `eval lm`: train the language model on captions alone (or load it), evaluate
it, write metrics.json (and the training curves), print a table and a few generated captions."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minivlm.recipes.lm import Tokenizer, evaluate_lm, load_lm, train_lm, val_tokens
from minivlm.recipes.runs import (checkpoint_stats, cli_train_config, peak_rss_mb, print_results, run_stats,
                                  show_eval, write_metrics)
from minivlm.train import save_checkpoint

DEFAULT_SECONDS = 30.0
HEADLINE = ("val_ce", "val_token_acc", "sample_valid_frac", "sample_two_object_frac")


def write_report(metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the curves, and a short results table with the generated captions on stdout."""
    write_metrics(out, metrics, history, ("val_token_acc", "sample_valid_frac"), "toy LM")
    plt.close("all")
    print_results(metrics, HEADLINE)
    print(f"  greedy from <bos>: {metrics['greedy_sample']!r}")
    for caption in metrics["samples"]:
        print(f"  sampled:           {caption!r}")
    print(f"wrote {out}/: metrics.json{', lm.pt, curves.png' if history else ''}")


def train(args) -> None:
    cfg = cli_train_config(args, DEFAULT_SECONDS)
    out = Path(args.out or f"runs/lm-seed{args.seed}")
    tokenizer = Tokenizer()
    val = val_tokens(tokenizer)
    model, history = train_lm(cfg, tokenizer=tokenizer, curve_tokens=val)
    stats = run_stats(model, history, args.seed)
    with torch.no_grad():
        metrics = {**evaluate_lm(model, tokenizer, val), **stats, "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / "lm.pt", model, "lm", model.cfg, cfg, extra={"vocab": tokenizer.vocab, **stats})
    write_report(metrics, out, history)


def evaluate(args) -> None:
    model, tokenizer, ckpt = load_lm(args.checkpoint, args.device)
    with torch.no_grad():
        metrics = {**evaluate_lm(model, tokenizer, val_tokens(tokenizer)), **checkpoint_stats(model, ckpt)}
    show_eval(metrics, args.out, write_report)
