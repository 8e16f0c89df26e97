"""How toy CLIP is trained and evaluated on the shapes world: the recipe behind the CLI, the notebook and the
benchmark, so all three train the same model in the same way.

Recipe (the course's design measurements, bench/README.md): 32 px, patch 8, d64 × 2 layers per tower,
batch 128, lr 3e-3, AdamW (β2 0.98, wd 0.05), 50 warm-up steps then cosine to 5 %, 10 % two-object scenes
(fewer two-object scenes speed up single-object shape learning; more help relations: 0.1 meets both targets).
"""
from __future__ import annotations

import os

from dataclasses import dataclass

import torch

from minivlm.data.datasets import ShapesData, eval_set, make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.evaluate import retrieval, zero_shot
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device


@dataclass
class CLIPData:
    n_train: int = 50_000
    p_two: float = 0.1  # share of two-object scenes: more helps relations, fewer helps single-object shape
    res: int = 32


def clip_config(tokenizer: Tokenizer, res: int = 32) -> CLIPConfig:
    return CLIPConfig(image_size=res, vocab_size=len(tokenizer), max_len=tokenizer.max_len,
                      pad_id=tokenizer.pad_id, eos_id=tokenizer.eos_id)


def eval_sets(tokenizer: Tokenizer, res: int = 32, names=("zeroshot", "heldout", "mixed", "two")) -> dict:
    return {name: eval_set(name, tokenizer, res) for name in names}


def evaluate_clip(model: CLIP, tokenizer: Tokenizer, sets: dict) -> dict:
    """The CLIP metrics: zero-shot (96 prompts) on seen and held-out pairs, retrieval on mixed and 2-object sets.
    Each set is optional, so a training curve can use the zero-shot set alone."""
    m = {}
    if "zeroshot" in sets:
        zs = zero_shot(model, sets["zeroshot"], tokenizer)
        m.update(zero_shot_acc=zs["acc"], colour_acc=zs["colour_acc"], shape_acc=zs["shape_acc"],
                 size_acc=zs["size_acc"])
    if "heldout" in sets:
        m["heldout_acc"] = zero_shot(model, sets["heldout"], tokenizer)["acc"]
    if "mixed" in sets:
        m.update(retrieval(model, sets["mixed"]))
    if "two" in sets:
        m.update({f"two_obj_{k}": v for k, v in retrieval(model, sets["two"]).items() if k.endswith("_r1")})
    return m


def train_clip(train_cfg: TrainConfig, data_cfg: CLIPData = CLIPData(), tokenizer: Tokenizer | None = None,
               train_data: ShapesData | None = None, curve_sets: dict | None = None) -> tuple[CLIP, History]:
    """Render the training set (or take `train_data`), build CLIP from the seed and train it.

    `curve_sets` (e.g. {"zeroshot": ...}) are evaluated every `train_cfg.eval_every_s` seconds for the curves.
    """
    tokenizer = tokenizer or Tokenizer()
    device = pick_device(train_cfg.device)
    data = train_data or make_shapes(data_cfg.n_train, train_cfg.seed, tokenizer, data_cfg.res, data_cfg.p_two,
                                     progress=True)
    images = torch.from_numpy(data.images).to(device)  # (N, S, S, 3) uint8: 4x smaller than floats
    tokens, meanings = data.tokens.to(device), data.meanings.to(device)  # (N, L), (N,)
    model = build(CLIP, clip_config(tokenizer, data_cfg.res), train_cfg.seed).to(device)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    batches = shuffled_batches(len(data), train_cfg.batch_size, gen)

    def next_batch():
        idx = next(batches).to(device)
        return preprocess(images[idx], data_cfg.res), tokens[idx], meanings[idx]

    evaluate = (lambda m: evaluate_clip(m, tokenizer, curve_sets)) if curve_sets else None
    return model, fit(model, next_batch, train_cfg, evaluate, desc="toy CLIP")


def notebook_clip(path: str = "../runs/notebook03_clip.pt", fast: bool = False, seconds: float = 100.0) -> CLIP:
    """The toy CLIP that later notebooks build on: notebook 03's checkpoint when it was trained for at least
    `seconds` (a fast-mode run of notebook 03 leaves one of a few seconds: not that one), else one trained here for
    `seconds` (5 in fast mode)."""
    trained_s = load_clip(path)[2]["extra"].get("train_seconds", 0) if os.path.exists(path) else 0
    if trained_s >= seconds and not fast:
        print(f"loaded {path} (trained for {trained_s:.0f} s)")
        return load_clip(path)[0]
    clip, _ = train_clip(TrainConfig(seconds=5 if fast else seconds, seed=0), tokenizer=Tokenizer())
    print("trained a toy CLIP here")
    return clip


def load_clip(path, device: str = "cpu") -> tuple[CLIP, Tokenizer, dict]:
    """Rebuild a trained CLIP and its tokenizer from a checkpoint written by the CLI or `save_checkpoint`."""
    return load_run(path, "clip", CLIP, CLIPConfig, device)
