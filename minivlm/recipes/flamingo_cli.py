"""`python -m minivlm train flamingo` / `eval flamingo` / `fewshot`: train a toy CLIP (or load one with --clip),
pretrain the LM text-only, train Flamingo's resampler and gated blocks on the mixture; evaluate captions, videos,
two-image questions and few-shot prompts; write metrics.json, the curves and the gates; continue an interleaved
prompt written in a text file."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minivlm.data.documents import flamingo_tokenizer
from minivlm.data.folder import load_image
from minivlm.data.tokenizer import IMAGE
from minivlm.plots import gate_curves
from minivlm.recipes.clip_cli import frozen_clip
from minivlm.recipes.flamingo import (LR, FlamingoData, caption_sets, continue_text, eval_media,
                                      evaluate_flamingo, load_flamingo, train_flamingo)
from minivlm.recipes.runs import (checkpoint_stats, cli_train_config, peak_rss_mb, print_results, run_stats,
                                  show_eval, write_metrics)
from minivlm.train import save_checkpoint

DEFAULT_SECONDS = 120.0
CLIP_SECONDS = 100.0  # the toy CLIP trained first when neither --clip nor --clip-steps is given
SETTING = ("lm_pretrain_steps", "lm_pretrain_seconds", "lm_loss", "trainable_params")  # kept in the checkpoint
HEADLINE = ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em", "video_em", "pair_acc")
MARKER = re.compile(r"<image:([^>]+)>")


def write_report(metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the curves and the gates over training, and a results table on stdout."""
    write_metrics(out, metrics, history, ("caption_em_1obj", "caption_em_2obj", "heldout_em"), "toy Flamingo")
    if history is not None:
        gate_curves(history).savefig(out / "gates.png", dpi=110)
    plt.close("all")
    print_results(metrics, HEADLINE)
    for how in ("", "_rices"):
        curve = "  ".join(f"{k}-shot {v:.3f}" for k, v in metrics[f"fewshot_acc{how}"].items())
        print(f"  few-shot{' (RICES)' if how else ' (random)':<10} {curve}")
    gates = "  ".join(f"{g['xattn']:+.2f}/{g['dense']:+.2f}" for g in metrics["gates"])
    print(f"  gates tanh(alpha) xattn/dense per layer: {gates}")
    print(f"wrote {out}/: metrics.json{', flamingo.pt, curves.png, gates.png' if history else ''}")


def train(args) -> None:
    cfg = dataclasses.replace(cli_train_config(args, DEFAULT_SECONDS), lr=LR)
    out = Path(args.out or f"runs/flamingo-seed{args.seed}")
    clip, _, clip_stats = frozen_clip(args, CLIP_SECONDS)  # only its vision tower is used
    tokenizer, data = flamingo_tokenizer(), FlamingoData()
    captions, media = caption_sets(tokenizer, data.res), eval_media(tokenizer, data)
    model, history, lm_stats = train_flamingo(cfg, clip, tokenizer, data,
                                              curve={"captions": caption_sets(tokenizer, data.res, n=300)})
    stats = run_stats(model, history, args.seed)
    setting = {**lm_stats, "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    metrics = {**evaluate_flamingo(model, tokenizer, captions, media), **stats, **setting, **clip_stats,
               "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / "flamingo.pt", model, "flamingo", model.cfg, cfg,
                    extra={"vocab": tokenizer.vocab, "max_len": tokenizer.max_len, **stats, **setting})
    write_report(metrics, out, history)


def evaluate(args) -> None:
    model, tokenizer, ckpt = load_flamingo(args.checkpoint, args.device)
    data = FlamingoData(frames=model.cfg.max_frames, res=model.cfg.vision.image_size)
    metrics = {**evaluate_flamingo(model, tokenizer, caption_sets(tokenizer, data.res), eval_media(tokenizer, data)),
               **checkpoint_stats(model, ckpt), **{k: ckpt["extra"].get(k) for k in SETTING}}
    show_eval(metrics, args.out, write_report)


def parse_prompt(text: str, folder: Path) -> tuple[str, list[Path]]:
    """An interleaved prompt "<image:a.png> red . <image:b.png>" -> ("<image> red . <image>", [folder/a.png, ...]):
    the text with plain placeholders, and the images in order (paths relative to `folder`)."""
    paths = [folder / p.strip() for p in MARKER.findall(text)]
    if IMAGE in text:
        raise ValueError(f"prompt: write each image as <image:path.png>, not a bare {IMAGE}")
    if not paths:
        raise ValueError("prompt: expected at least one <image:path.png> marker, found none")
    return MARKER.sub(IMAGE, text).strip(), paths


def fewshot(args) -> None:
    """Print the greedy continuation of the interleaved prompt in the file `args.prompt_file`, up to its first
    full stop (the end of an answer in the documents the model was trained on)."""
    model, tokenizer, _ = load_flamingo(args.checkpoint, args.device)
    path = Path(args.prompt_file)
    if not path.is_file():
        raise ValueError(f"prompt_file: no file at {str(path)!r}")
    prompt, paths = parse_prompt(path.read_text(), path.parent)
    res = model.cfg.vision.image_size
    images = np.stack([load_image(p, res, resize=args.resize) for p in paths])  # (M, S, S, 3)
    print(continue_text(model, tokenizer, [prompt], images[None, :, None], max_new=args.max_new, unk=args.unk)[0])
