"""`python -m minivlm train clip` / `eval clip`: train or load, evaluate, write metrics.json, plots, a table."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minivlm.data.world import COLOURS, SHAPES
from minivlm.evaluate import CLASSES, embed_images, embed_texts, zero_shot
from minivlm.models.clip import CLIP
from minivlm.plots import confusion, similarity_matrix
from minivlm.recipes.clip import Tokenizer, eval_sets, evaluate_clip, load_clip, train_clip
from minivlm.recipes.runs import (checkpoint_stats, cli_train_config, peak_rss_mb, print_results, run_stats,
                                  show_eval, write_metrics)
from minivlm.train import TrainConfig, save_checkpoint

DEFAULT_SECONDS = 120.0
HEADLINE = ("zero_shot_acc", "colour_acc", "shape_acc", "heldout_acc", "i2t_r1", "t2i_r1", "i2t_r5",
            "two_obj_i2t_r1")


def write_report(model, tokenizer, sets, metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the plots, and a short results table on stdout."""
    write_metrics(out, metrics, history, ("zero_shot_acc", "colour_acc", "shape_acc"), "toy CLIP")
    zs = zero_shot(model, sets["zeroshot"], tokenizer)
    for k, name, labels in ((1, "colour", list(COLOURS)), (2, "shape", list(SHAPES))):
        fig = confusion([CLASSES[t][k] for t in zs["true"]], [CLASSES[p][k] for p in zs["pred"]], labels,
                        f"zero-shot confusion by {name}")
        fig.savefig(out / f"confusion_{name}.png", dpi=110)
    mixed = sets["mixed"]
    pick = list(range(0, 30, 3))  # ten fixed examples of the mixed set
    sim = (embed_images(model, mixed.images[pick]) @ embed_texts(model, mixed.tokens[pick]).T).numpy()
    similarity_matrix(sim, [f"img {i}" for i in pick], [mixed.captions[i] for i in pick],
                      "image-caption cosine similarity").savefig(out / "similarity.png", dpi=110)
    plt.close("all")
    print_results(metrics, HEADLINE)
    print(f"wrote {out}/: metrics.json, clip.pt, *.png")


def train(args) -> None:
    cfg = cli_train_config(args, DEFAULT_SECONDS)
    out = Path(args.out or f"runs/clip-seed{args.seed}")
    tokenizer = Tokenizer()
    sets = eval_sets(tokenizer)
    model, history = train_clip(cfg, tokenizer=tokenizer, curve_sets={"zeroshot": sets["zeroshot"]})
    stats = run_stats(model, history, args.seed)
    with torch.no_grad():
        metrics = {**evaluate_clip(model, tokenizer, sets), **stats, "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / "clip.pt", model, "clip", model.cfg, cfg, extra={"vocab": tokenizer.vocab, **stats})
    write_report(model, tokenizer, sets, metrics, out, history)


def frozen_clip(args, default_seconds: float) -> tuple[CLIP, Tokenizer, dict]:
    """The CLIP that `train` of a later model builds on: the --clip checkpoint, else a toy CLIP trained here for
    --clip-steps steps or `default_seconds`. Returns it, its tokenizer and where it came from (for metrics.json)."""
    if args.clip:
        clip, tokenizer, _ = load_clip(args.clip, args.device)
        return clip, tokenizer, {"clip_checkpoint": args.clip}
    tokenizer = Tokenizer()
    budget = dict(steps=args.clip_steps) if args.clip_steps else dict(seconds=default_seconds)
    clip, history = train_clip(TrainConfig(**budget, seed=args.seed, device=args.device), tokenizer=tokenizer)
    return clip, tokenizer, {"clip_train_seconds": history.steps[-1]["seconds"]}


def evaluate(args) -> None:
    model, tokenizer, ckpt = load_clip(args.checkpoint, args.device)
    sets = eval_sets(tokenizer, model.cfg.image_size)
    with torch.no_grad():
        metrics = {**evaluate_clip(model, tokenizer, sets), **checkpoint_stats(model, ckpt)}
    show_eval(metrics, args.out, lambda m, out: write_report(model, tokenizer, sets, m, out))
