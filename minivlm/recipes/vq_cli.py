"""`python -m minivlm train vq` / `eval vq`: train the judge (unless --judge gives one; --steps N when given, else
90 s), then the image tokenizer; evaluate both, write metrics.json, vq.pt, judge.pt, curves and reconstructions.png.
`eval vq CKPT` reads the judge.pt that training wrote beside the tokenizer's checkpoint."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minivlm.models.vqvae import pixels
from minivlm.plots import training_curves
from minivlm.recipes.runs import (checkpoint_stats, cli_train_config, peak_rss_mb, print_results, run_stats,
                                  show_eval, write_metrics)
from minivlm.recipes.vq import (BATCH_SIZE, LR, eval_sets, evaluate_judge, evaluate_vq, load_judge, load_vq,
                                reconstruct, train_judge, train_vq)
from minivlm.train import TrainConfig, save_checkpoint

DEFAULT_SECONDS = 180.0  # the budget for the tokenizer
JUDGE_SECONDS = 90.0  # 0.999 exact on real renders in bench/vq_bench.py
HEADLINE = ("recon_judge_acc", "recon_colour_shape_acc", "heldout_recon_colour_shape_acc", "recon_mse",
            "codebook_perplexity", "dead_codes", "judge_acc", "judge_heldout_acc")


def reconstructions(vq, data, n: int = 8):
    """The first n images of `data` above their reconstructions through the tokenizer's codes."""
    recon, _ = reconstruct(vq, data.images[:n])  # (n, 3, 32, 32)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.2), squeeze=False)
    for row, (images, label) in enumerate(((data.images[:n], "original"), (pixels(recon), "reconstruction"))):
        for i, ax in enumerate(axes[row]):
            ax.imshow(images[i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"VQ-VAE: 32x32 images through {vq.cfg.grid}x{vq.cfg.grid} tokens over {vq.cfg.codes} codes")
    fig.tight_layout()
    return fig


def write_report(vq, sets, metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the curves, reconstructions.png and a short results table on stdout."""
    write_metrics(out, metrics, history, ("recon_judge_acc", "recon_colour_shape_acc"), "VQ-VAE")
    reconstructions(vq, sets["mixed"]).savefig(out / "reconstructions.png", dpi=110)
    plt.close("all")
    print_results(metrics, [k for k in HEADLINE if metrics.get(k) is not None])
    print(f"wrote {out}/: metrics.json, {'vq.pt, judge.pt, curves.png, ' if history else ''}reconstructions.png")


def get_judge(args, out: Path, sets) -> tuple[torch.nn.Module, dict]:
    """The --judge checkpoint (copied to out/judge.pt), else a judge trained here and saved there."""
    out.mkdir(parents=True, exist_ok=True)
    if args.judge:
        judge, _ = load_judge(args.judge, args.device)
        if Path(args.judge).resolve() != (out / "judge.pt").resolve():
            shutil.copyfile(args.judge, out / "judge.pt")
        return judge, {"judge_checkpoint": str(args.judge)}
    budget = dict(steps=args.steps) if args.steps else dict(seconds=JUDGE_SECONDS)
    cfg = TrainConfig(**budget, seed=args.seed, device=args.device)
    judge, history = train_judge(cfg, curve_set=sets["mixed"])
    seconds = history.steps[-1]["seconds"]
    save_checkpoint(out / "judge.pt", judge, "judge", judge.cfg, cfg, extra={"train_seconds": seconds})
    fig = training_curves(history, ("judge_acc", "judge_colour_shape_acc"), "judge")
    fig.savefig(out / "judge_curves.png", dpi=110)
    return judge, {"judge_train_seconds": seconds}


def train(args) -> None:
    cfg = dataclasses.replace(cli_train_config(args, DEFAULT_SECONDS), batch_size=BATCH_SIZE, lr=LR)
    out = Path(args.out or f"runs/vq-seed{args.seed}")
    sets = eval_sets()
    judge, judge_info = get_judge(args, out, sets)
    vq, history = train_vq(cfg, judge=judge, curve_set=sets["mixed"].subset(range(500)))
    stats = run_stats(vq, history, args.seed)
    with torch.no_grad():
        metrics = {**evaluate_vq(vq, judge, sets), **evaluate_judge(judge, sets), **stats, **judge_info,
                   "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / "vq.pt", vq, "vq", vq.cfg, cfg, extra=stats)
    write_report(vq, sets, metrics, out, history)


def evaluate(args) -> None:
    vq, ckpt = load_vq(args.checkpoint, args.device)
    judge_path = Path(args.checkpoint).parent / "judge.pt"
    if not judge_path.is_file():
        raise ValueError(f"checkpoint: no judge.pt beside {args.checkpoint!r} to score the reconstructions "
                         "(train vq writes one there)")
    judge, _ = load_judge(judge_path, args.device)
    sets = eval_sets()
    with torch.no_grad():
        metrics = {**evaluate_vq(vq, judge, sets), **evaluate_judge(judge, sets), **checkpoint_stats(vq, ckpt)}
    show_eval(metrics, args.out, lambda m, out: write_report(vq, sets, m, out))
