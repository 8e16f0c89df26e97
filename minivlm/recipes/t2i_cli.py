"""`python -m minivlm train dalle|cm3`, `eval dalle|cm3` and `draw`: text-to-image (and, for CM3, captioning and
infilling) over the image tokenizer's codes.

`train` takes the tokenizer from --vq (its judge.pt beside it) or trains judge and tokenizer first, and the CLIP that
reranks samples from --clip or trains one (saved as clip.pt); it writes MODEL.pt, vq.pt and judge.pt into the
output folder (so that `eval` and `draw` find the tokenizer beside the checkpoint), metrics.json, curves.png and
samples.png.
`draw CKPT "caption" --n 8 --out grid.png` samples pictures of a caption, best first when --clip is given.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from minivlm.models.cm3 import CM3, CM3Config
from minivlm.models.dalle import Dalle, DalleConfig
from minivlm.recipes import vq_cli
from minivlm.recipes.clip import load_clip
from minivlm.recipes.clip_cli import frozen_clip
from minivlm.recipes import cm3 as cm3_recipe
from minivlm.recipes.cm3 import CM3Data, evaluate_cm3, train_cm3
from minivlm.recipes.dalle import (DalleData, clip_scores, draw, evaluate_dalle, prompt_captions, text_tokenizer,
                                   train_dalle)
from minivlm.recipes.runs import (build_from, checkpoint_stats, cli_train_config, peak_rss_mb, print_results,
                                  run_stats, show_eval, write_metrics)
from minivlm.recipes.vq import BATCH_SIZE, LR, eval_sets, evaluate_judge, load_judge, load_vq, train_vq
from minivlm.train import TrainConfig, load_checkpoint, save_checkpoint

DEFAULT_SECONDS = {"dalle": 360.0, "cm3": 300.0}
CLIP_SECONDS = 100.0  # the reranking CLIP, trained first when neither --clip nor --clip-steps is given
HEADLINE = {"dalle": ("t2i_match_1obj", "t2i_match_1obj_rerank8", "t2i_match_2obj", "t2i_exact_2obj",
                      "t2i_match_heldout", "judge_acc"),
            "cm3": ("caption_em_1obj", "caption_em_1obj_l2r", "caption_em_2obj", "t2i_match_1obj",
                    "t2i_match_1obj_rerank8", "infill_judge_acc", "infill_text_acc", "judge_acc")}


def image_tokenizer(args, out: Path) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """The tokenizer and judge: --vq (and the judge.pt beside it), copied into `out`, else both trained here (the
    judge for 90 s, the tokenizer for 180 s, or each for --steps) and saved there."""
    out.mkdir(parents=True, exist_ok=True)
    if args.vq:
        vq, _ = load_vq(args.vq, args.device)
        judge_path = Path(args.vq).parent / "judge.pt"
        if not judge_path.is_file():
            raise ValueError(f"vq: no judge.pt beside {args.vq!r} (train vq writes one there)")
        judge, _ = load_judge(judge_path, args.device)
        for src, name in ((Path(args.vq), "vq.pt"), (judge_path, "judge.pt")):
            if src.resolve() != (out / name).resolve():
                shutil.copyfile(src, out / name)
        return vq, judge, {"vq_checkpoint": str(args.vq)}
    judge, info = vq_cli.get_judge(args, out, eval_sets(("mixed",)))
    budget = dict(steps=args.steps) if args.steps else dict(seconds=vq_cli.DEFAULT_SECONDS)
    cfg = TrainConfig(**budget, batch_size=BATCH_SIZE, lr=LR, seed=args.seed, device=args.device)
    vq, history = train_vq(cfg)
    save_checkpoint(out / "vq.pt", vq, "vq", vq.cfg, cfg, extra={"train_seconds": history.steps[-1]["seconds"]})
    return vq, judge, {**info, "vq_train_seconds": history.steps[-1]["seconds"]}


def sample_sheet(pictures: np.ndarray, captions: list[str], title: str):
    """One row of samples per caption."""
    P, n = pictures.shape[:2]
    fig, axes = plt.subplots(P, n, figsize=(1.1 * n, 1.25 * P), squeeze=False)
    for i in range(P):
        for j in range(n):
            axes[i][j].imshow(pictures[i, j], interpolation="nearest")
            axes[i][j].axis("off")
        axes[i][0].set_title(captions[i], fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _samples(model, vq, kind: str, captions: list[str], n: int = 8, seed: int = 0) -> np.ndarray:
    """n pictures per caption, uint8 (P, n, 32, 32, 3), from either kind of model."""
    return (draw if kind == "dalle" else cm3_recipe.draw)(model, vq, captions, n, seed=seed)


def write_report(kind: str, model, vq, metrics: dict, out: Path, history=None) -> None:
    """metrics.json, the curves, samples.png and a results table on stdout."""
    write_metrics(out, metrics, history, [k for k in ("t2i_match_1obj", "caption_em_1obj", "infill_judge_acc")
                                          if k in metrics], {"dalle": "DALL-E", "cm3": "CM3"}[kind])
    captions = prompt_captions("1obj")[:3] + prompt_captions("2obj")[:3]
    sample_sheet(_samples(model, vq, kind, captions), captions, f"{kind}: 8 samples per caption, not reranked"
                 ).savefig(out / "samples.png", dpi=110)
    plt.close("all")
    print_results(metrics, [k for k in HEADLINE[kind] if metrics.get(k) is not None])
    print(f"wrote {out}/: metrics.json, {f'{kind}.pt, vq.pt, judge.pt, curves.png, ' if history else ''}samples.png")


def train(args) -> None:
    kind = args.model
    data = {"dalle": DalleData, "cm3": CM3Data}[kind]()
    cfg = dataclasses.replace(cli_train_config(args, DEFAULT_SECONDS[kind]), batch_size=data.batch_size, lr=data.lr)
    out = Path(args.out or f"runs/{kind}-seed{args.seed}")
    vq, judge, vq_info = image_tokenizer(args, out)
    clip, clip_tokenizer, clip_info = frozen_clip(args, CLIP_SECONDS)
    if not args.clip:  # keep the CLIP trained here, for `draw --clip`
        save_checkpoint(out / "clip.pt", clip, "clip", clip.cfg, TrainConfig(steps=1, seed=args.seed),
                        extra={"vocab": clip_tokenizer.vocab, **clip_info})
    trainer, evaluate = {"dalle": (train_dalle, evaluate_dalle), "cm3": (train_cm3, evaluate_cm3)}[kind]
    model, history = trainer(cfg, vq, data)
    stats = run_stats(model, history, args.seed)
    metrics = {**evaluate(model, vq, judge, clip), **evaluate_judge(judge, eval_sets(("mixed",))), **stats,
               **vq_info, **clip_info, "peak_rss_mb": peak_rss_mb()}
    save_checkpoint(out / f"{kind}.pt", model, kind, model.cfg, cfg, extra=stats)
    write_report(kind, model, vq, metrics, out, history)


def _beside(path: str, device: str):
    """The tokenizer and judge that `train` saved beside a checkpoint."""
    folder = Path(path).parent
    for name in ("vq.pt", "judge.pt"):
        if not (folder / name).is_file():
            raise ValueError(f"checkpoint: no {name} beside {path!r} (train dalle|cm3 writes one there)")
    return load_vq(folder / "vq.pt", device)[0], load_judge(folder / "judge.pt", device)[0]


def _load(path: str, device: str):
    """A dalle or cm3 checkpoint, whichever kind it is -> (kind, model, checkpoint)."""
    ckpt = load_checkpoint(path, ("dalle", "cm3"))
    model_cls, config_cls = (Dalle, DalleConfig) if ckpt["kind"] == "dalle" else (CM3, CM3Config)
    return ckpt["kind"], build_from(ckpt, path, model_cls, config_cls, device), ckpt


def evaluate(args) -> None:
    kind, model, ckpt = _load(args.checkpoint, args.device)
    if kind != args.model:
        raise ValueError(f"checkpoint: {args.checkpoint!r} holds a {kind} model, not {args.model}")
    vq, judge = _beside(args.checkpoint, args.device)
    clip = load_clip(args.clip, args.device)[0] if args.clip else None
    fn = evaluate_dalle if kind == "dalle" else evaluate_cm3
    metrics = {**fn(model, vq, judge, clip), **evaluate_judge(judge, eval_sets(("mixed",))),
               **checkpoint_stats(model, ckpt)}
    show_eval(metrics, args.out, lambda m, out: write_report(kind, model, vq, m, out))


def save_grid(pictures: np.ndarray, path, scale: int = 4, gap: int = 2) -> None:
    """uint8 pictures (n, S, S, 3) -> one PNG row, each picture enlarged `scale` times, grey gaps between."""
    n, s = len(pictures), pictures.shape[1] * scale
    sheet = np.full((s, n * s + (n - 1) * gap, 3), 96, dtype=np.uint8)  # (H, W, 3)
    for i, pic in enumerate(pictures):
        sheet[:, i * (s + gap):i * (s + gap) + s] = pic.repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(sheet).save(path)


def draw_command(args) -> None:
    """`draw CKPT "caption" --n 8 --out grid.png [--clip CLIP]`: samples in a row, best first with a CLIP."""
    kind, model, _ = _load(args.checkpoint, args.device)
    vq, _ = _beside(args.checkpoint, args.device)
    text_tokenizer().encode_batch([args.caption])  # unknown words or a caption too long: a clear error here
    pictures = _samples(model, vq, kind, [args.caption], args.n, args.seed)[0]  # (n, 32, 32, 3)
    if args.clip:
        clip, _, _ = load_clip(args.clip, args.device)
        scores = clip_scores(clip, pictures[None], [args.caption])[0]  # (n,)
        order = scores.argsort(descending=True).numpy()
        pictures = pictures[order]
        print("CLIP scores, best first: " + " ".join(f"{s:.3f}" for s in scores[order].tolist()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(pictures, out)
    print(f"wrote {out}: {args.n} samples of {args.caption!r}{', best first' if args.clip else ''}")
