"""Toy CLIP on the shapes world: the recipe behind `train clip`, the notebooks and the benchmark, so all three
train the same model in the same way.

32 px, patch 8, d64 x 2 layers per tower, batch 128, lr 3e-3, AdamW (beta2 0.98, wd 0.05), 50 warm-up steps then
cosine to 5 %, 10 % two-object scenes, 3,750 steps (480k samples, 150 s on 2 cores). How it was found and what
it reaches: bench/README.md, "Toy CLIP".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import torch

from minivlm import fast_mode
from minivlm.data.datasets import ShapesData, eval_set, make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import COLOURS, SHAPES
from minivlm.evaluate import CLASSES, embed_images, embed_texts, retrieval, zero_shot
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.plots import confusion, similarity_matrix
from minivlm.recipes.recipe import Recipe
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device


@dataclass(frozen=True)
class CLIPRecipe(Recipe):
    name: ClassVar[str] = "clip"
    title: ClassVar[str] = "toy CLIP"
    family: ClassVar[str] = "contrastive"
    summary: ClassVar[str] = "toy CLIP: a ViT and a text transformer trained with symmetric InfoNCE"
    tasks: ClassVar[tuple[str, ...]] = ("zero_shot", "heldout_zero_shot", "i2t_r1", "t2i_r1", "two_obj_i2t_r1",
                                        "two_obj_t2i_r1", "samples_per_s")
    model_cls: ClassVar[type] = CLIP
    config_cls: ClassVar[type] = CLIPConfig
    headline: ClassVar[tuple[str, ...]] = ("zero_shot_acc", "colour_acc", "shape_acc", "heldout_acc", "i2t_r1",
                                           "t2i_r1", "i2t_r5", "two_obj_i2t_r1")
    curves: ClassVar[tuple[str, ...]] = ("zero_shot_acc", "colour_acc", "shape_acc")

    steps: int = 3750  # 480k samples: zero-shot 0.99 and more
    n_train: int = 50_000  # rendered training scenes
    p_two: float = 0.1  # share of two-object scenes: more helps relations, fewer helps single-object shape
    res: int = 32

    def fit(self, cfg, deps, curves):
        tokenizer = Tokenizer()
        sets = {"zeroshot": eval_set("zeroshot", tokenizer, self.res)} if curves else None
        model, history = train_clip(cfg, self, tokenizer, curve_sets=sets)
        return model, history, {}

    def evaluate(self, model, deps):
        tokenizer = Tokenizer()
        return evaluate_clip(model, tokenizer, eval_sets(tokenizer, model.cfg.image_size))

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves, the confusion matrices by colour and by shape, the similarity of ten
        image-caption pairs, and a short results table on stdout."""
        super().report(model, metrics, out, history, deps)
        tokenizer = Tokenizer()
        sets = eval_sets(tokenizer, model.cfg.image_size, names=("zeroshot", "mixed"))
        zs = zero_shot(model, sets["zeroshot"], tokenizer)
        for k, name, labels in ((1, "colour", list(COLOURS)), (2, "shape", list(SHAPES))):
            fig = confusion([CLASSES[t][k] for t in zs["true"]], [CLASSES[p][k] for p in zs["pred"]], labels,
                            f"zero-shot confusion by {name}")
            fig.savefig(out / f"confusion_{name}.png", dpi=110)
        mixed, pick = sets["mixed"], list(range(0, 30, 3))  # ten fixed examples of the mixed set
        sim = (embed_images(model, mixed.images[pick]) @ embed_texts(model, mixed.tokens[pick]).T).numpy()
        similarity_matrix(sim, [f"img {i}" for i in pick], [mixed.captions[i] for i in pick],
                          "image-caption cosine similarity").savefig(out / "similarity.png", dpi=110)
        plt.close("all")

    def tokenizer_extra(self, model):
        return {"vocab": Tokenizer().vocab}


def clip_config(tokenizer: Tokenizer, res: int = 32) -> CLIPConfig:
    return CLIPConfig(image_size=res, vocab_size=len(tokenizer), max_len=tokenizer.max_len,
                      pad_id=tokenizer.pad_id, eos_id=tokenizer.eos_id)


def eval_sets(tokenizer: Tokenizer, res: int = 32, names=("zeroshot", "heldout", "mixed", "two")) -> dict:
    return {name: eval_set(name, tokenizer, res) for name in names}


def evaluate_clip(model: CLIP, tokenizer: Tokenizer, sets: dict) -> dict:
    """The CLIP metrics: zero-shot (96 prompts) on seen and held-out pairs, retrieval on mixed and 2-object sets.
    Each set is optional, so a training curve can use the zero-shot set alone."""
    m = {"logit_scale": model.logit_scale().item()}  # exp(t) = 1/temperature
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


def train_clip(train_cfg: TrainConfig, data_cfg: CLIPRecipe = CLIPRecipe(), tokenizer: Tokenizer | None = None,
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


def notebook_clip_steps(fast: bool | None = None) -> int:
    """The course CLIP's budget: the recipe's own 3,750 steps (480k samples), 40 in fast mode."""
    return 40 if (fast_mode() if fast is None else fast) else CLIPRecipe.steps


def notebook_clip(fast: bool | None = None) -> CLIP:
    """The toy CLIP that notebooks 05-08 build on: the one notebook 03 trains and keeps in the cache (CLIPRecipe,
    seed 0, `notebook_clip_steps`), read from there, or trained there first, the same model, if 03 was not run."""
    from minivlm.recipes.cache import obtain
    return obtain(CLIPRecipe(), notebook_clip_steps(fast), seed=0)


def load_clip(path, device: str = "cpu") -> tuple[CLIP, Tokenizer, dict]:
    """Rebuild a trained CLIP and its tokenizer from a checkpoint written by the CLI or `save_checkpoint`."""
    return load_run(path, "clip", CLIP, CLIPConfig, device)
