"""The toy Flamingo: the recipe behind `python -m minivlm train flamingo`, `eval flamingo` and `fewshot`.

The vision tower is a trained toy CLIP's, frozen; the d128 x 2 LM of recipes/lm.py is pretrained text-only on the
mixture's text for `lm_steps` (steps, not seconds), then frozen, as Flamingo freezes Chinchilla (Sec. 2). Only the
position-aware Perceiver resampler (one latent per patch, grid codes on its queries and keys) and a GATED
XATTN-DENSE block before each LM block train, on the paper's mixture (Sec. 2.4, eq. 2): every update takes one
batch of each source (captions, videos, documents, two-image questions) and minimises the weighted sum of their
losses; the tanh gates learn at `gate_lr_scale` x lr; two-object captions name the left (or top) object first.
Few-shot prompting: recipes/fewshot.py. What it reaches and how it was found: bench/README.md, "Flamingo".
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from minivlm.data.datasets import eval_set, shuffled_batches
from minivlm.data.documents import (Media, flamingo_tokenizer, make_captions_media, make_documents, make_pairs,
                                    make_videos)
from minivlm.data.folder import load_image
from minivlm.data.tokenizer import IMAGE, Tokenizer
from minivlm.evaluate import caption_scores, meaning_matches
from minivlm.models.clip import CLIP
from minivlm.models.flamingo import Flamingo, FlamingoConfig
from minivlm.models.lm import CausalLM, LMConfig
from minivlm.plots import gate_curves
from minivlm.recipes.clip import CLIPRecipe
from minivlm.recipes.fewshot import continue_text, evaluate_fewshot, media_tensor
from minivlm.recipes.lm import lm_config, pretrain_steps
from minivlm.recipes.recipe import Recipe
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for

SOURCES = ("captions", "videos", "documents", "pairs")
MARKER = re.compile(r"<image:([^>]+)>")  # an image of an interleaved prompt file


@dataclass(frozen=True)
class FlamingoRecipe(Recipe):
    name: ClassVar[str] = "flamingo"
    title: ClassVar[str] = "toy Flamingo"
    family: ClassVar[str] = "cross-attention fusion"
    summary: ClassVar[str] = ("toy Flamingo: a Perceiver resampler and tanh-gated cross-attention into a frozen LM, "
                              "on a mixture of captions, videos and documents")
    tasks: ClassVar[tuple[str, ...]] = ("caption_em", "caption_em_1obj", "caption_em_2obj", "caption_heldout_em",
                                        "fewshot_0", "fewshot_4", "samples_per_s")
    model_cls: ClassVar[type] = Flamingo
    config_cls: ClassVar[type] = FlamingoConfig
    verbs: ClassVar[tuple[str, ...]] = ("fewshot",)
    headline: ClassVar[tuple[str, ...]] = ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em",
                                           "video_em", "pair_acc")
    curves: ClassVar[tuple[str, ...]] = ("caption_em_1obj", "caption_em_2obj", "heldout_em")

    steps: int = 1400  # 121,616 samples at 88 a step: the benchmark's 120 s
    lr: float = 2e-3  # of the resampler and the gated blocks; 3e-3 gave noisier curves
    gate_lr_scale: float = 5.0  # the tanh gates' alphas learn at this x lr (1: they hardly leave 0; 30: unstable)
    clip_steps: int = 3750  # the frozen toy CLIP whose vision tower is used
    lm_steps: int = 300  # text-only pretraining of the LM (batch 128) before it is frozen: 15 s on 2 cores
    resampler_positions: float = 3.0  # scale of the resampler's grid codes on queries and keys (2: 2-object EM 0.28)
    # the mixture (eq. 2): rows drawn of each source, rows of each in one update, and the weights of their losses
    n: dict = field(default_factory=lambda: {"captions": 40_000, "videos": 6_000, "documents": 6_000,
                                             "pairs": 6_000})
    batch: dict = field(default_factory=lambda: {"captions": 64, "videos": 8, "documents": 8, "pairs": 8})
    weights: dict = field(default_factory=lambda: {"captions": 1.0, "videos": 0.5, "documents": 1.0, "pairs": 0.5})
    frames: int = 3  # T of a video clip
    doc_images: int = 5  # M of a document: up to 4 examples before an image
    p_two: float = 0.5  # of the caption pairs
    reading_order: bool = True  # two-object captions name the left (or top) object first
    res: int = 32

    def prerequisites(self):
        return {"clip": (CLIPRecipe(), self.clip_steps)}

    def fit(self, cfg, deps, curves):
        tokenizer = flamingo_tokenizer()
        curve = {"captions": caption_sets(tokenizer, self.res, n=300)} if curves else None
        model, history, lm_stats = train_flamingo(cfg, deps["clip"], tokenizer, self, curve=curve)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return model, history, {**lm_stats, "trainable_params": trainable}

    def evaluate(self, model, deps):
        """Every metric of `evaluate_flamingo`, on sets of the model's own frames and resolution (an old checkpoint
        has no recipe)."""
        tokenizer = flamingo_tokenizer()
        sets = dataclasses.replace(self, frames=model.cfg.max_frames, res=model.cfg.vision.image_size)
        return evaluate_flamingo(model, tokenizer, caption_sets(tokenizer, sets.res), eval_media(tokenizer, sets))

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves and the gates over training, and a results table with the few-shot curves and
        the gates on stdout."""
        super().report(model, metrics, out, history, deps)
        if history is not None:
            gate_curves(history).savefig(out / "gates.png", dpi=110)
        plt.close("all")
        for how in ("", "_rices"):
            curve = "  ".join(f"{k}-shot {v:.3f}" for k, v in metrics[f"fewshot_acc{how}"].items())
            print(f"  few-shot{' (RICES)' if how else ' (random)':<10} {curve}")
        gates = "  ".join(f"{g['xattn']:+.2f}/{g['dense']:+.2f}" for g in metrics["gates"])
        print(f"  gates tanh(alpha) xattn/dense per layer: {gates}")

    def tokenizer_extra(self, model):
        tokenizer = flamingo_tokenizer()
        return {"vocab": tokenizer.vocab, "max_len": tokenizer.max_len}


def flamingo_config(clip: CLIP, tokenizer: Tokenizer, recipe: FlamingoRecipe, lm_layers: int = 2,
                    **overrides) -> FlamingoConfig:
    """The toy Flamingo over `clip`'s vision tower: the d128 LM of recipes/lm.py with `lm_layers` blocks, one latent
    per patch (16) from a 2-layer position-aware resampler reading the ViT's layer before the last, a gated block
    before every LM block."""
    lm = dataclasses.replace(lm_config(tokenizer), layers=lm_layers)
    n = clip.cfg.grid ** 2  # patches per image: one latent each, on the same grid
    return FlamingoConfig(**{"vision": clip.cfg, "lm": lm, "latents": n, "resampler_depth": 2,
                             "max_frames": recipe.frames, "heads": 4, "feature_layer": -2, "patch_positions": False,
                             "resampler_positions": recipe.resampler_positions,
                             "image_id": tokenizer.image_id, **overrides})


def make_sources(recipe: FlamingoRecipe, seed: int, tokenizer: Tokenizer, budget: TrainConfig | None = None
                 ) -> dict[str, Media]:
    """The four training sources drawn from `seed`; under a steps budget no more rows than it will see."""
    cap = lambda name: (scenes_for(budget, recipe.n[name], recipe.batch[name]) if budget  # noqa: E731
                        else recipe.n[name])
    return {"captions": make_captions_media(cap("captions"), seed, tokenizer, recipe.res, recipe.p_two,
                                            reading_order=recipe.reading_order),
            "videos": make_videos(cap("videos"), seed, tokenizer, recipe.frames, res=recipe.res),
            "documents": make_documents(cap("documents"), seed, tokenizer, recipe.doc_images, res=recipe.res),
            "pairs": make_pairs(cap("pairs"), seed, tokenizer, recipe.res)}


def pretrain_lm(cfg: TrainConfig, lm_cfg: LMConfig, texts: torch.Tensor) -> tuple[CausalLM, History]:
    """The LM of `lm_cfg` from the seed trained on next tokens of `texts` (N, L), the mixture's text without its
    images (<image> is one more word)."""
    device = pick_device(cfg.device)
    lm = build(CausalLM, lm_cfg, cfg.seed).to(device)
    texts = texts.to(device)
    order = shuffled_batches(len(texts), cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    return lm, fit(lm, lambda: (trim(texts[next(order).to(device)], lm_cfg.pad_id),), cfg,
                   desc="LM text-only pretraining")


class Mixture(nn.Module):
    """What `fit` trains: Flamingo's loss summed over one batch of each source, sum_m lambda_m L_m (eq. 2)."""

    def __init__(self, model: Flamingo, weights: list[float], gate_lr_scale: float = 1.0):
        super().__init__()
        self.model, self.weights, self.gate_lr_scale = model, weights, gate_lr_scale

    def lr_scales(self) -> dict[str, float]:
        """The tanh gates' alphas train at gate_lr_scale x lr: AdamW moves a parameter by about lr a step whatever
        its gradient, and alpha's gradient mostly cancels, so at the one lr the gates hardly leave 0 (for Adam the
        same as writing alpha = s * a and training a)."""
        return {n: self.gate_lr_scale for n, _ in self.named_parameters() if n.rsplit(".", 1)[-1].startswith("alpha")}

    def loss(self, *batches) -> torch.Tensor:
        return sum(w * self.model.loss(tokens, media) for w, (tokens, media) in zip(self.weights, batches))


def trim(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """tokens (N, L) -> (N, L') without the columns that are padding in every row: a caption of 15 tokens is not
    run through the LM at the context's full 24 (most of a step's time is the LM's, frozen or not)."""
    return tokens[:, :int((tokens != pad_id).sum(dim=1).max())]  # (N, L')


def mixture_batches(sources: dict[str, Media], recipe: FlamingoRecipe, generator: torch.Generator, device,
                    pad_id: int = 0):
    """A function returning one (tokens, media) batch of each source, in SOURCES order."""
    streams = []
    for name in SOURCES:
        src = sources[name]
        media, tokens = torch.from_numpy(src.media).to(device), trim(src.tokens, pad_id).to(device)  # uint8 media
        streams.append((media, tokens, shuffled_batches(len(src), recipe.batch[name], generator)))

    def batch(media, tokens, order):
        idx = next(order).to(device)
        return tokens[idx], media_tensor(media[idx])
    return lambda: tuple(batch(*s) for s in streams)


def caption_sets(tokenizer: Tokenizer, res: int = 32, n: int | None = None) -> dict:
    """The fixed sets the captions are graded on: "mixed" (half two-object) and "heldout" (unseen pairs)."""
    sets = {name: eval_set(name, tokenizer, res) for name in ("mixed", "heldout")}
    return {k: v.subset(np.arange(n)) for k, v in sets.items()} if n else sets


def evaluate_captions(model: Flamingo, tokenizer: Tokenizer, sets: dict) -> dict:
    """caption_em, _1obj, _2obj, bleu4 on "mixed" and heldout_em on "heldout", prompted with "<image>" alone."""
    m = {}
    for name, data in sets.items():
        captions = continue_text(model, tokenizer, ["<image>"] * len(data), data.images[:, None, None])
        if name == "mixed":
            m.update(caption_scores(captions, data.scenes))
        else:
            m["heldout_em"] = float(meaning_matches(captions, data.scenes).mean())
    return m


def grade(model: Flamingo, tokenizer: Tokenizer, data: Media, prompt: str) -> float:
    """Fraction of rows whose continuation of `prompt` equals their last target ("<image>" -> a video's caption,
    "same shape ? <image> and <image>" -> yes or no)."""
    said = continue_text(model, tokenizer, [prompt] * len(data), data.media)
    return float(np.mean([s == t[-1] for s, t in zip(said, data.targets)]))


def eval_media(tokenizer: Tokenizer, recipe: FlamingoRecipe, n: int = 300) -> dict[str, Media]:
    """Fixed evaluation sets, from their own seeds: videos, two-image questions, few-shot queries and their pool."""
    return {"videos": make_videos(n, "eval-videos", tokenizer, recipe.frames, res=recipe.res),
            "pairs": make_pairs(n, "eval-pairs", tokenizer, recipe.res),
            "queries": make_documents(n, "eval-fewshot-queries", tokenizer, images=1, res=recipe.res),
            "pool": make_documents(500, "eval-fewshot-pool", tokenizer, images=1, res=recipe.res)}


def evaluate_flamingo(model: Flamingo, tokenizer: Tokenizer, captions: dict, media: dict,
                      fewshot: bool = True) -> dict:
    """Everything `train flamingo` reports: captions (`evaluate_captions`), `video_em`, `pair_acc`, the few-shot
    curves with random and RICES examples (recipes/fewshot.py), and the gates."""
    m = evaluate_captions(model, tokenizer, captions)
    if "videos" in media:
        m["video_em"] = grade(model, tokenizer, media["videos"], "<image>")
    if "pairs" in media:
        m["pair_acc"] = grade(model, tokenizer, media["pairs"], "same shape ? <image> and <image>")
    if fewshot and "queries" in media:
        m.update(evaluate_fewshot(model, tokenizer, media["queries"], media["pool"]))
        rices = evaluate_fewshot(model, tokenizer, media["queries"], media["pool"], how="rices")
        m.update({f"{k}_rices": v for k, v in rices.items()})
    m["gates"] = model.gates()
    return m


def train_flamingo(train_cfg: TrainConfig, clip: CLIP, tokenizer: Tokenizer,
                   recipe: FlamingoRecipe = FlamingoRecipe(), curve: dict | None = None,
                   **overrides) -> tuple[Flamingo, History, dict]:
    """Pretrain the LM text-only for `recipe.lm_steps` (a tenth of a steps budget shorter than that), freeze it,
    then train the resampler and gated blocks on the mixture. `curve` = {"captions": sets, "media": sets} is
    evaluated during training (few-shot only at the end). Returns the model, the history and {"lm_pretrain_steps",
    "lm_pretrain_seconds", "lm_loss"}."""
    device = pick_device(train_cfg.device)
    sources = make_sources(recipe, train_cfg.seed, tokenizer, train_cfg)
    texts = torch.cat([sources[s].tokens for s in SOURCES])  # (N, L)
    cfg = flamingo_config(clip, tokenizer, recipe, **overrides)
    short = train_cfg.steps is not None and train_cfg.steps < recipe.lm_steps  # a smoke test: a tenth of its steps
    lm_steps = pretrain_steps(train_cfg, recipe.lm_steps) if short else recipe.lm_steps
    lm_cfg = TrainConfig(steps=lm_steps, seed=train_cfg.seed, device=train_cfg.device)
    lm, lm_hist = pretrain_lm(lm_cfg, cfg.lm, texts)
    model = build(Flamingo, cfg, train_cfg.seed)
    model.vision.load_state_dict(clip.visual.state_dict())
    model.lm.load_state_dict(lm.state_dict())
    model.to(device)
    mixture = Mixture(model, [recipe.weights[s] for s in SOURCES], recipe.gate_lr_scale)
    evaluate = ((lambda m: evaluate_flamingo(m.model, tokenizer, curve["captions"], curve.get("media", {}),
                                             fewshot=False)) if curve else None)
    batches = mixture_batches(sources, recipe, torch.Generator().manual_seed(train_cfg.seed), device, tokenizer.pad_id)
    hist = fit(mixture, batches, train_cfg, evaluate, desc="Flamingo")
    last = lm_hist.steps[-1]
    return model, hist, {"lm_pretrain_steps": last["step"], "lm_pretrain_seconds": last["seconds"],
                         "lm_loss": last["loss"]}


def load_flamingo(path, device: str = "cpu") -> tuple[Flamingo, Tokenizer, dict]:
    """Rebuild a trained Flamingo and its tokenizer from a checkpoint written by the CLI."""
    return load_run(path, "flamingo", Flamingo, FlamingoConfig, device)


def parse_prompt(text: str, folder: Path) -> tuple[str, list[Path]]:
    """An interleaved prompt "<image:a.png> red . <image:b.png>" -> ("<image> red . <image>", [folder/a.png, ...]):
    the text with plain placeholders, and the images in order (paths relative to `folder`)."""
    paths = [folder / p.strip() for p in MARKER.findall(text)]
    if IMAGE in text:
        raise ValueError(f"prompt: write each image as <image:path.png>, not a bare {IMAGE}")
    if not paths:
        raise ValueError("prompt: expected at least one <image:path.png> marker, found none")
    return MARKER.sub(IMAGE, text).strip(), paths


def fewshot(checkpoint, prompt_file, max_new: int = 14, resize: bool = False, unk: bool = False,
            device: str = "auto") -> None:
    """`python -m minivlm fewshot CKPT PROMPT_FILE`: print the greedy continuation of the interleaved prompt in the
    file, up to its first full stop (the end of an answer in the documents the model was trained on)."""
    model, tokenizer, _ = load_flamingo(checkpoint, device)
    path = Path(prompt_file)
    if not path.is_file():
        raise ValueError(f"prompt_file: no file at {str(path)!r}")
    prompt, paths = parse_prompt(path.read_text(), path.parent)
    res = model.cfg.vision.image_size
    images = np.stack([load_image(p, res, resize=resize) for p in paths])  # (M, S, S, 3)
    print(continue_text(model, tokenizer, [prompt], images[None, :, None], max_new=max_new, unk=unk)[0])
