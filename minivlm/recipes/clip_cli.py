"""`python -m minivlm train clip` / `eval clip`: train or load, evaluate, write metrics.json, plots, a table."""
from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from minivlm.data.world import COLOURS, SHAPES
from minivlm.evaluate import CLASSES, embed_images, embed_texts, zero_shot
from minivlm.plots import confusion, similarity_matrix, training_curves
from minivlm.recipes.clip import Tokenizer, eval_sets, evaluate_clip, load_clip, train_clip
from minivlm.train import TrainConfig, save_checkpoint

DEFAULT_SECONDS = 120.0
HEADLINE = ("zero_shot_acc", "colour_acc", "shape_acc", "heldout_acc", "i2t_r1", "t2i_r1", "i2t_r5",
            "two_obj_i2t_r1")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_report(model, tokenizer, sets, metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the plots, and a short results table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if history is not None:
        (out / "history.json").write_text(json.dumps({"steps": history.steps, "evals": history.evals}) + "\n")
        training_curves(history).savefig(out / "curves.png", dpi=110)
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
    print(f"\nresults ({metrics['device']}, seed {metrics['seed']}, {metrics['params']:,} params)")
    for key in HEADLINE:
        print(f"  {key:<18} {metrics[key]:.3f}")
    print(f"  {'samples_seen':<18} {metrics['samples_seen']:,}  in {metrics['train_seconds']:.1f} s "
          f"({metrics['samples_per_s']:.0f} samples/s)")
    print(f"wrote {out}/: metrics.json, clip.pt, *.png")


def train(args) -> None:
    seconds = args.seconds if args.seconds or args.steps else DEFAULT_SECONDS
    cfg = TrainConfig(seconds=seconds, steps=args.steps, seed=args.seed, device=args.device)
    out = Path(args.out or f"runs/clip-seed{args.seed}")
    tokenizer = Tokenizer()
    sets = eval_sets(tokenizer)
    model, history = train_clip(cfg, tokenizer=tokenizer, curve_sets={"zeroshot": sets["zeroshot"]})
    last = history.steps[-1]
    stats = {"samples_seen": last["samples"], "train_seconds": last["seconds"],
             "samples_per_s": last["samples"] / last["seconds"], "steps": last["step"],
             "params": sum(p.numel() for p in model.parameters()),
             "device": str(next(model.parameters()).device), "seed": args.seed,
             "threads": torch.get_num_threads(), "torch": str(torch.__version__)}
    with torch.no_grad():
        metrics = {**evaluate_clip(model, tokenizer, sets), **stats, "peak_rss_mb": _peak_rss_mb()}
    save_checkpoint(out / "clip.pt", model, "clip", model.cfg, cfg, extra={"vocab": tokenizer.vocab, **stats})
    write_report(model, tokenizer, sets, metrics, out, history)


def evaluate(args) -> None:
    model, tokenizer, ckpt = load_clip(args.checkpoint, args.device)
    stats = {"params": sum(p.numel() for p in model.parameters()), "seed": ckpt["seed"],
             **{k: ckpt["extra"].get(k) for k in ("samples_seen", "train_seconds", "samples_per_s")}}
    sets = eval_sets(tokenizer, model.cfg.image_size)
    with torch.no_grad():
        metrics = {**evaluate_clip(model, tokenizer, sets), **stats, "device": str(next(model.parameters()).device)}
    if args.out:
        write_report(model, tokenizer, sets, metrics, Path(args.out))
    else:
        json.dump(metrics, sys.stdout, indent=2)
        print()
