"""ClipCap on the shapes world: the recipe behind `train clipcap`, `caption` and the benchmark.

A toy CLIP (recipes/clip.py, 3,750 steps) frozen; k = 4 prefix embeddings from its pooled embedding; the LM of
recipes/lm.py (d128 x 2 layers x 4 heads), fine-tuned with an MLP mapper, or pretrained on captions alone after a
blank prefix (`lm_steps`, see models/clipcap.py) and frozen with a transformer mapper; batch 128, lr 3e-3, AdamW
(beta2 0.98, wd 0.05), 50 warm-up steps then cosine to 5 %, 50 % two-object scenes, 1,250 steps. Captions are
greedy and scored by meaning. Figures: bench/README.md, "Generative path", ClipCap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch

from minivlm.data.datasets import make_shapes, shuffled_batches
from minivlm.data.folder import load_image
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.evaluate import caption_scores, meaning_matches, token_metrics
from minivlm.models.clip import CLIP
from minivlm.models.clipcap import ClipCap, ClipCapConfig
from minivlm.models.lm import CausalLM
from minivlm.recipes.clip import CLIPRecipe, eval_sets
from minivlm.recipes.lm import lm_config, pretrain_steps, train_lm
from minivlm.recipes.recipe import Recipe
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device


@dataclass(frozen=True)
class ClipCapRecipe(Recipe):
    name: ClassVar[str] = "clipcap"
    title: ClassVar[str] = "ClipCap"
    family: ClassVar[str] = "prefix for a frozen LM"
    summary: ClassVar[str] = "ClipCap: a mapper turns a frozen CLIP's embedding into a prefix for a small LM"
    tasks: ClassVar[tuple[str, ...]] = ("caption_em", "caption_em_1obj", "caption_em_2obj", "caption_heldout_em",
                                        "samples_per_s")
    model_cls: ClassVar[type] = ClipCap
    config_cls: ClassVar[type] = ClipCapConfig
    verbs: ClassVar[tuple[str, ...]] = ("caption",)
    headline: ClassVar[tuple[str, ...]] = ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em", "bleu4",
                                           "val_ce")
    curves: ClassVar[tuple[str, ...]] = ("caption_em", "caption_em_1obj", "caption_em_2obj")

    steps: int = 1250  # 160k samples: the 60 s that `train clipcap` took before budgets were steps
    n_train: int = 50_000  # rendered training scenes
    p_two: float = 0.5  # share of two-object scenes, as in the course's captioner measurements
    res: int = 32
    mapper: str = "mlp"  # or "transformer"
    prefix_len: int = 4  # k prefix embeddings before the text
    freeze_lm: bool = False  # True: the LM is pretrained text-only for `lm_steps`, then frozen
    lm_steps: int = 200  # that pretraining, batch 128 (what 10 s gave on 2 cores); see lm.pretrain_steps
    clip_steps: int = 3750  # the frozen CLIP's training: CLIPRecipe's default

    def prerequisites(self):
        return {"clip": (CLIPRecipe(), self.clip_steps)}

    def fit(self, cfg, deps, curves):
        clip, tokenizer = deps["clip"], Tokenizer()
        sets = eval_sets(tokenizer, clip.cfg.image_size, names=("mixed",)) if curves else None
        model, history, lm_history = train_clipcap(cfg, clip, tokenizer, self, curve_sets=sets)
        return model, history, {
            "mapper": self.mapper, "prefix_len": self.prefix_len, "freeze_lm": self.freeze_lm,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "lm_pretrain_steps": lm_history.steps[-1]["step"] if lm_history else 0,
            "lm_pretrain_seconds": lm_history.steps[-1]["seconds"] if lm_history else 0.0}

    def evaluate(self, model, deps):
        tokenizer = Tokenizer()
        return evaluate_clipcap(model, tokenizer, eval_sets(tokenizer, model.cfg.clip.image_size,
                                                            names=("mixed", "heldout")))

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves, and a short results table with some captions on stdout."""
        super().report(model, metrics, out, history, deps)
        plt.close("all")
        for sample in metrics["samples"]:
            print(f"  {sample['true']!r:<60} -> {sample['generated']!r}")

    def tokenizer_extra(self, model):
        tokenizer = Tokenizer()
        return {"vocab": tokenizer.vocab, "max_len": tokenizer.max_len}


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


def train_clipcap(train_cfg: TrainConfig, clip: CLIP, tokenizer: Tokenizer, recipe: ClipCapRecipe = ClipCapRecipe(),
                  lm: CausalLM | None = None, curve_sets: dict | None = None
                  ) -> tuple[ClipCap, History, History | None]:
    """Build ClipCap of `recipe`'s mapper, prefix length and LM setting from the seed around the trained `clip`
    (copied, then frozen) and train it on captions.

    The LM starts from `lm` (built by `lm_config(tokenizer, recipe.prefix_len)`); else a frozen one is pretrained
    here on captions alone after a blank prefix for `pretrain_steps(train_cfg, recipe.lm_steps)`, and a fine-tuned
    one starts from scratch. Returns the model, its history and the LM pretraining's history (None without one).
    `curve_sets` as in `evaluate_clipcap`.
    """
    cfg = clipcap_config(clip, tokenizer, recipe.mapper, recipe.prefix_len, recipe.freeze_lm)
    if lm is not None and lm.cfg != cfg.lm:
        raise ValueError(f"lm: expected a LM with config {cfg.lm} (lm_config(tokenizer, prefix_len="
                         f"{recipe.prefix_len})), got {lm.cfg}")
    if recipe.freeze_lm and lm is None and recipe.lm_steps <= 0:
        raise ValueError("lm, lm_steps: a frozen LM must be pretrained: pass a trained lm or lm_steps > 0")
    lm_history = None
    if lm is None and recipe.freeze_lm:
        # in steps, not seconds: a frozen LM trained longer (a faster machine's seconds) is harder to steer
        lm_cfg = TrainConfig(steps=pretrain_steps(train_cfg, recipe.lm_steps), seed=train_cfg.seed,
                             device=train_cfg.device)
        lm, lm_history = train_lm(lm_cfg, tokenizer=tokenizer, prefix_len=recipe.prefix_len)
    device = pick_device(train_cfg.device)
    model = build(ClipCap, cfg, train_cfg.seed)
    model.clip.load_state_dict(clip.state_dict())
    if lm is not None:
        model.lm.load_state_dict(lm.state_dict())
    model.to(device)
    data = make_shapes(recipe.n_train, train_cfg.seed, tokenizer, recipe.res, recipe.p_two, progress=True)
    images, tokens = torch.from_numpy(data.images).to(device), data.tokens.to(device)  # (N, S, S, 3) uint8, (N, L)
    batches = shuffled_batches(len(data), train_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed))

    def next_batch():
        idx = next(batches).to(device)
        return preprocess(images[idx], recipe.res), tokens[idx]

    evaluate = (lambda m: evaluate_clipcap(m, tokenizer, curve_sets)) if curve_sets else None
    return model, fit(model, next_batch, train_cfg, evaluate, desc="ClipCap"), lm_history


def load_clipcap(path, device: str = "cpu") -> tuple[ClipCap, Tokenizer, dict]:
    """Rebuild a trained ClipCap (its CLIP and LM included) and its tokenizer from a checkpoint of `train clipcap`."""
    return load_run(path, "clipcap", ClipCap, ClipCapConfig, device)


def caption(checkpoint, image, resize: bool = False, device: str = "auto") -> None:
    """`caption CKPT IMAGE`: print the greedy caption of one image, a PNG of the world's size (any size with
    `resize`)."""
    model, tokenizer, _ = load_clipcap(checkpoint, device)
    picture = load_image(image, model.cfg.clip.image_size, resize)  # (S, S, 3) uint8
    print(caption_images(model, picture[None], tokenizer)[0])
