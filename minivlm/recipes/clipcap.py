"""How ClipCap is trained and evaluated on the shapes world: the recipe behind `train clipcap`, `caption` and the
benchmark.

Recipe: a toy CLIP trained first (recipes/clip.py) and then frozen; k = 4 prefix embeddings; the LM of
recipes/lm.py (d128 × 2 layers × 4 heads), fine-tuned with an MLP mapper, or pretrained on captions alone after a
blank prefix (see models/clipcap.py) and frozen with a transformer mapper; batch 128, lr 3e-3, AdamW (β2 0.98,
wd 0.05), 50 warm-up steps then cosine to 5 %, 50 % two-object scenes. Captions are scored by meaning, greedy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from minivlm.data.datasets import make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.evaluate import caption_scores, meaning_matches, token_metrics
from minivlm.models.clip import CLIP
from minivlm.models.clipcap import ClipCap, ClipCapConfig
from minivlm.models.lm import CausalLM
from minivlm.recipes.lm import lm_config, train_lm
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device

LM_STEPS = 200  # text-only pretraining of a frozen LM, batch 128: what 10 s gave on 2 cores


@dataclass
class ClipCapData:
    n_train: int = 50_000
    p_two: float = 0.5  # share of two-object scenes, as in the course's captioner measurements
    res: int = 32


def clipcap_config(clip: CLIP, tokenizer: Tokenizer, mapper: str = "mlp", prefix_len: int = 4,
                   freeze_lm: bool = False) -> ClipCapConfig:
    """ClipCap around `clip`'s config, with the recipe's LM and room for `prefix_len` embeddings before the text."""
    return ClipCapConfig(clip=clip.cfg, lm=lm_config(tokenizer, prefix_len), mapper=mapper, prefix_len=prefix_len,
                         freeze_lm=freeze_lm)


@torch.no_grad()
def caption_images(model: ClipCap, images: np.ndarray, tokenizer: Tokenizer, batch_size: int = 500) -> list[str]:
    """uint8 (N, S, S, 3) images -> N greedy captions, through the one `preprocess`."""
    device, res = next(model.parameters()).device, model.cfg.clip.image_size
    return [c for i in range(0, len(images), batch_size)
            for c in model.caption(preprocess(images[i:i + batch_size], res).to(device), tokenizer)]


@torch.no_grad()
def evaluate_clipcap(model: ClipCap, tokenizer: Tokenizer, sets: dict, show: int = 8) -> dict:
    """Semantic exact match of greedy captions overall / 1-object / 2-object and BLEU-4 on the "mixed" set,
    teacher-forced cross-entropy there, and on "heldout" how often the caption names the unseen colour×shape pair
    (and size) right. Each set is optional."""
    m = {}
    if "mixed" in sets:
        data = sets["mixed"]
        captions = caption_images(model, data.images, tokenizer)
        m.update(caption_scores(captions, data.scenes))
        device, res = next(model.parameters()).device, model.cfg.clip.image_size
        prefix = torch.cat([model.prefix(preprocess(data.images[i:i + 500], res).to(device))
                            for i in range(0, len(data), 500)])  # (N, k, D)
        tokens = data.tokens.to(device)  # (N, L)
        m.update({f"val_{k}": v for k, v in token_metrics(model.lm(tokens, prefix), tokens,
                                                          model.cfg.lm.pad_id).items()})
        m["samples"] = [{"true": t, "generated": c} for t, c in zip(data.captions[:show], captions[:show])]
    if "heldout" in sets:
        data = sets["heldout"]
        m["heldout_em"] = float(meaning_matches(caption_images(model, data.images, tokenizer), data.scenes).mean())
    return m


def train_clipcap(train_cfg: TrainConfig, clip: CLIP, tokenizer: Tokenizer, mapper: str = "mlp",
                  prefix_len: int = 4, freeze_lm: bool = False, lm: CausalLM | None = None,
                  lm_steps: int = 0, data_cfg: ClipCapData = ClipCapData(),
                  curve_sets: dict | None = None) -> tuple[ClipCap, History, History | None]:
    """Build ClipCap from the seed around the trained `clip` (copied, then frozen) and train it on captions.

    The LM starts from `lm` (built by `lm_config(tokenizer, prefix_len)`), or is pretrained here for `lm_steps`
    on captions alone after a blank prefix, or (fine-tuned only) starts from scratch. Returns the model, its
    history and the LM pretraining's history (None without one). `curve_sets` as in `evaluate_clipcap`.
    """
    cfg = clipcap_config(clip, tokenizer, mapper, prefix_len, freeze_lm)
    if lm is not None and lm.cfg != cfg.lm:
        raise ValueError(f"lm: expected a LM with config {cfg.lm} (lm_config(tokenizer, prefix_len={prefix_len})), "
                         f"got {lm.cfg}")
    if freeze_lm and lm is None and lm_steps <= 0:
        raise ValueError("lm, lm_steps: a frozen LM must be pretrained: pass a trained lm or lm_steps > 0")
    lm_history = None
    if lm is None and lm_steps > 0:
        # in steps, not seconds: a frozen LM trained longer (a faster machine's seconds) is harder to steer
        lm_cfg = TrainConfig(steps=lm_steps, seed=train_cfg.seed, device=train_cfg.device)
        lm, lm_history = train_lm(lm_cfg, tokenizer=tokenizer, prefix_len=prefix_len)
    device = pick_device(train_cfg.device)
    model = build(ClipCap, cfg, train_cfg.seed)
    model.clip.load_state_dict(clip.state_dict())
    if lm is not None:
        model.lm.load_state_dict(lm.state_dict())
    model.to(device)
    data = make_shapes(data_cfg.n_train, train_cfg.seed, tokenizer, data_cfg.res, data_cfg.p_two, progress=True)
    images, tokens = torch.from_numpy(data.images).to(device), data.tokens.to(device)  # (N, S, S, 3) uint8, (N, L)
    batches = shuffled_batches(len(data), train_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed))

    def next_batch():
        idx = next(batches).to(device)
        return preprocess(images[idx], data_cfg.res), tokens[idx]

    evaluate = (lambda m: evaluate_clipcap(m, tokenizer, curve_sets)) if curve_sets else None
    return model, fit(model, next_batch, train_cfg, evaluate, desc="ClipCap"), lm_history


def load_clipcap(path, device: str = "cpu") -> tuple[ClipCap, Tokenizer, dict]:
    """Rebuild a trained ClipCap (its CLIP and LM included) and its tokenizer from a checkpoint of `train clipcap`."""
    return load_run(path, "clipcap", ClipCap, ClipCapConfig, device)
