"""The judge that reads a picture back into its meaning, and the image tokenizer (a VQ-VAE), on the shapes world:
the recipes behind `train judge` / `train vq`, the notebook and the benchmark.

Judge: a small CNN trained on scenes of any colour×shape pair (held-out pairs included: it must score generations
of them), half two-object, batch 128, lr 3e-3, 3,200 steps. Tokenizer: 8×8 tokens over 512 codes of 8 numbers,
trained on the training split (half two-object) with dead codes restarted, batch 64, lr 6e-3, 4,450 steps; the judge
scores its reconstructions. Measurements and how the settings were chosen: bench/README.md, "Image tokenizer and
judge".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from minivlm.concepts.vq import codebook_usage
from minivlm.data.datasets import ShapesData, eval_set, make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.models.judge import Judge, JudgeConfig, colours_and_shapes, scene_targets
from minivlm.models.vqvae import VQVAE, VQConfig, pixels
from minivlm.recipes.recipe import Recipe
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for


@dataclass(frozen=True)
class JudgeRecipe(Recipe):
    name: ClassVar[str] = "judge"
    title: ClassVar[str] = "judge"
    family: ClassVar[str] = "tool"
    summary: ClassVar[str] = "a small CNN that reads a picture back into its meaning: scores generated images"
    tasks: ClassVar[tuple[str, ...]] = ("judge_acc", "samples_per_s")
    model_cls: ClassVar[type] = Judge
    config_cls: ClassVar[type] = JudgeConfig
    headline: ClassVar[tuple[str, ...]] = ("judge_acc", "judge_acc_1obj", "judge_acc_2obj", "judge_colour_shape_acc",
                                           "judge_heldout_acc")
    curves: ClassVar[tuple[str, ...]] = ("judge_acc", "judge_colour_shape_acc")

    steps: int = 3200  # 410k samples: the 90 s that gave 1.000 exact meanings on real renders
    n: int = 50_000  # rendered scenes, of every colour×shape pair
    p_two: float = 0.5  # share of two-object scenes

    def fit(self, cfg, deps, curves):
        curve_set = eval_sets(("mixed",))["mixed"] if curves else None
        model, history = train_judge(cfg, self, curve_set=curve_set)
        return model, history, {}

    def evaluate(self, model, deps):
        return evaluate_judge(model, eval_sets())

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves and a results table on stdout."""
        super().report(model, metrics, out, history, deps)
        plt.close("all")


@dataclass(frozen=True)
class VQRecipe(Recipe):
    name: ClassVar[str] = "vq"
    title: ClassVar[str] = "VQ-VAE"
    family: ClassVar[str] = "images as tokens"
    summary: ClassVar[str] = "VQ-VAE image tokenizer: 32x32 pictures as 8x8 tokens over 512 codes"
    tasks: ClassVar[tuple[str, ...]] = ("recon_judge_acc", "samples_per_s")
    model_cls: ClassVar[type] = VQVAE
    config_cls: ClassVar[type] = VQConfig
    eval_roles: ClassVar[tuple[str, ...]] = ("judge",)
    headline: ClassVar[tuple[str, ...]] = ("recon_judge_acc", "recon_colour_shape_acc",
                                           "heldout_recon_colour_shape_acc", "recon_mse", "codebook_perplexity",
                                           "dead_codes", "judge_acc", "judge_heldout_acc")
    curves: ClassVar[tuple[str, ...]] = ("recon_judge_acc", "recon_colour_shape_acc")

    steps: int = 4450  # 285k images: the 180 s of the benchmark
    batch_size: int = 64  # more, smaller steps at the same images per second: 0.965 against 0.944 at batch 128
    lr: float = 6e-3
    n: int = 50_000  # rendered training-split scenes
    p_two: float = 0.5
    judge_steps: int = 3200  # the judge that scores the reconstructions (curves and evaluation)

    def prerequisites(self):
        return {"judge": (JudgeRecipe(), self.judge_steps)}

    def fit(self, cfg, deps, curves):
        curve_set = eval_sets(("mixed",))["mixed"].subset(range(500)) if curves else None
        model, history = train_vq(cfg, self, judge=deps["judge"], curve_set=curve_set)
        return model, history, {}

    def evaluate(self, model, deps):
        sets = eval_sets()
        return {**evaluate_vq(model, deps["judge"], sets), **evaluate_judge(deps["judge"], sets)}

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves, reconstructions.png and a results table on stdout."""
        super().report(model, metrics, out, history, deps)
        reconstructions(model, eval_sets(("mixed",))["mixed"]).savefig(out / "reconstructions.png", dpi=110)
        plt.close("all")



def judge_accuracy(judge, images, scenes: list, batch_size: int = 500) -> dict[str, float]:
    """uint8 images (N, 32, 32, 3) and their true scenes -> {"judge_acc": predicted meaning == true meaning,
    "judge_acc_1obj", "judge_acc_2obj" (None when the set has none), "colour_shape_acc": the right colour and shape
    for every object, in either order}. `judge` is anything with `predict(images)`."""
    if len(images) != len(scenes):
        raise ValueError(f"scenes: expected one scene per image ({len(images)}), got {len(scenes)}")
    device = next(judge.parameters()).device if isinstance(judge, nn.Module) else torch.device("cpu")
    preds = []
    for i in range(0, len(images), batch_size):
        preds += judge.predict(preprocess(images[i:i + batch_size]).to(device))
    truth = [s.meaning() for s in scenes]
    exact = [p == t for p, t in zip(preds, truth)]
    by_count = {k: [e for e, t in zip(exact, truth) if (len(t) == 3) == (k == 2)] for k in (1, 2)}
    return {"judge_acc": sum(exact) / len(exact),
            "judge_acc_1obj": sum(by_count[1]) / len(by_count[1]) if by_count[1] else None,
            "judge_acc_2obj": sum(by_count[2]) / len(by_count[2]) if by_count[2] else None,
            "colour_shape_acc": sum(colours_and_shapes(p) == colours_and_shapes(t)
                                    for p, t in zip(preds, truth)) / len(truth)}

def eval_sets(names=("mixed", "heldout")) -> dict[str, ShapesData]:
    """The fixed evaluation sets: "mixed" (half two-object, seen pairs) and "heldout" (one object, unseen pairs)."""
    tokenizer = Tokenizer()
    return {name: eval_set(name, tokenizer) for name in names}


def _images(data: ShapesData, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(data.images).to(device)  # (N, 32, 32, 3) uint8: 4x smaller than floats


def train_judge(train_cfg: TrainConfig, recipe: JudgeRecipe = JudgeRecipe(), train_data: ShapesData | None = None,
                curve_set: ShapesData | None = None) -> tuple[Judge, History]:
    """Render recipe.n scenes of any colour×shape pair from the seed (or take `train_data`) and train a judge on
    their meanings; `curve_set` is scored every `train_cfg.eval_every_s` seconds for the curves."""
    device = pick_device(train_cfg.device)
    data = train_data or make_shapes(scenes_for(train_cfg, recipe.n), f"judge:{train_cfg.seed}", Tokenizer(),
                                     p_two=recipe.p_two, split="any", progress=True)
    images = _images(data, device)
    targets = {h: t.to(device) for h, t in scene_targets(data.scenes).items()}  # each (N,)
    judge = build(Judge, JudgeConfig(), train_cfg.seed).to(device)
    batches = shuffled_batches(len(data), train_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed))

    def next_batch():
        idx = next(batches).to(device)
        return preprocess(images[idx]), {h: t[idx] for h, t in targets.items()}

    evaluate = (lambda m: evaluate_judge(m, {"mixed": curve_set})) if curve_set is not None else None
    return judge, fit(judge, next_batch, train_cfg, evaluate, desc="judge")


def evaluate_judge(judge: Judge, sets: dict[str, ShapesData]) -> dict[str, float]:
    """The judge on real renders: judge_acc (exact meaning), per object count and judge_colour_shape_acc on "mixed";
    judge_heldout_acc on "heldout" when given."""
    m = {}
    if "mixed" in sets:
        acc = judge_accuracy(judge, sets["mixed"].images, sets["mixed"].scenes)
        m.update({k if k.startswith("judge") else f"judge_{k}": v for k, v in acc.items()})
    if "heldout" in sets:
        m["judge_heldout_acc"] = judge_accuracy(judge, sets["heldout"].images, sets["heldout"].scenes)["judge_acc"]
    return m


def train_vq(train_cfg: TrainConfig, recipe: VQRecipe = VQRecipe(), train_data: ShapesData | None = None,
             judge: Judge | None = None, curve_set: ShapesData | None = None,
             vq_cfg: VQConfig = VQConfig()) -> tuple[VQVAE, History]:
    """Render recipe.n training-split scenes from the seed (or take `train_data`) and train the tokenizer to
    reconstruct them under `train_cfg` (`recipe.train_config` holds the recipe's batch and lr); with a `judge` and a
    `curve_set`, the reconstructions are scored for the curves."""
    device = pick_device(train_cfg.device)
    data = train_data or make_shapes(scenes_for(train_cfg, recipe.n), train_cfg.seed, Tokenizer(), p_two=recipe.p_two,
                                     progress=True)
    images = _images(data, device)
    vq = build(VQVAE, vq_cfg, train_cfg.seed).to(device)
    batches = shuffled_batches(len(data), train_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed))

    def next_batch():
        return (preprocess(images[next(batches).to(device)]),)

    evaluate = None
    if judge is not None and curve_set is not None:
        evaluate = lambda m: evaluate_vq(m, judge, {"mixed": curve_set})  # noqa: E731
    return vq, fit(vq, next_batch, train_cfg, evaluate, desc="VQ-VAE")


@torch.no_grad()
def tokenize(vq: VQVAE, images, batch_size: int = 500) -> torch.Tensor:
    """uint8 images (N, 32, 32, 3) -> their token ids (N, grid²), on the CPU."""
    device = next(vq.parameters()).device
    return torch.cat([vq.encode(preprocess(images[i:i + batch_size]).to(device)).cpu()
                      for i in range(0, len(images), batch_size)])  # (N, grid²)


@torch.no_grad()
def reconstruct(vq: VQVAE, images, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 32, 32, 3) -> their reconstructions through the codes (N, 3, 32, 32) in [-1, 1] and the
    token ids (N, grid²), on the CPU."""
    ids = tokenize(vq, images, batch_size)  # (N, grid²)
    recons = [vq.decode(ids[i:i + batch_size]).cpu() for i in range(0, len(ids), batch_size)]
    return torch.cat(recons), ids  # (N, 3, 32, 32), (N, grid²)


def evaluate_vq(vq: VQVAE, judge: Judge, sets: dict[str, ShapesData]) -> dict[str, float]:
    """The tokenizer on "mixed": recon_mse (on the [-1, 1] scale), recon_judge_acc (the judge reads the
    reconstruction as the original's true meaning), recon_colour_shape_acc, and codebook usage over its tokens;
    heldout_recon_colour_shape_acc on "heldout" (pairs the tokenizer never saw) when given."""
    vq.eval()
    m = {}
    for name, prefix in (("mixed", "recon"), ("heldout", "heldout_recon")):
        if name not in sets:
            continue
        data = sets[name]
        recon, ids = reconstruct(vq, data.images)  # (N, 3, 32, 32), (N, grid²)
        judged = judge_accuracy(judge, pixels(recon), data.scenes)
        m[f"{prefix}_colour_shape_acc"] = judged["colour_shape_acc"]
        if name == "mixed":
            usage = codebook_usage(ids, vq.cfg.codes)
            m.update(recon_mse=F.mse_loss(recon, preprocess(data.images)).item(), recon_judge_acc=judged["judge_acc"],
                     codebook_perplexity=usage["perplexity"], dead_codes=usage["dead_codes"])
    return m


def reconstructions(vq: VQVAE, data: ShapesData, n: int = 8):
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


def load_vq(path, device: str = "cpu") -> tuple[VQVAE, dict]:
    """Rebuild a trained tokenizer from a checkpoint of kind "vq"; returns it (in eval mode) and the checkpoint."""
    model, _, ckpt = VQRecipe().load(path, device)
    return model, ckpt


def load_judge(path, device: str = "cpu") -> tuple[Judge, dict]:
    """Rebuild a trained judge from a checkpoint of kind "judge"; returns it (in eval mode) and the checkpoint."""
    model, _, ckpt = JudgeRecipe().load(path, device)
    return model, ckpt
