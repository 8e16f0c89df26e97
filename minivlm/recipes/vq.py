"""How the image tokenizer (a VQ-VAE) and the judge that scores images are trained and evaluated on the shapes world:
the recipe behind the CLI, the notebook and the benchmark.

Judge: scenes of any colour×shape pair (held-out pairs included: it must score generations of them), half of them
two-object, batch 128, AdamW lr 3e-3 (the shared TrainConfig); its target is ≥98 % exact meanings on real renders.
Tokenizer: 8×8 tokens over 512 codes of 8 numbers each, trained on the training split (half two-object scenes)
with dead codes restarted, batch 64, lr 6e-3 (`BATCH_SIZE`, `LR`); its target is that the judge reads colour and
shape right on ≥95 % of reconstructions within 180 s on two cores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from minivlm.concepts.vq import codebook_usage
from minivlm.data.datasets import ShapesData, eval_set, make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.models.judge import Judge, JudgeConfig, judge_accuracy, scene_targets
from minivlm.models.vqvae import VQVAE, VQConfig, pixels
from minivlm.recipes.runs import build_from
from minivlm.train import History, TrainConfig, build, fit, load_checkpoint, pick_device, scenes_for

# The tokenizer's training settings. At 245k images (180 s on two cores) the judge read colour and shape right on
# 0.944 of reconstructions with batch 128 and 0.965 with 64: more, smaller steps, at the same images per second.
# At batch 128 and the CPU's 265k images, on a GPU: lr 3e-3 (the shared default) 0.92 with codes of 32 numbers and
# 0.94 with codes of 8; lr 6e-3 0.95-0.96 with codes of 8 (bench/README.md).
BATCH_SIZE = 64
LR = 6e-3


def eval_sets(names=("mixed", "heldout")) -> dict[str, ShapesData]:
    """The fixed evaluation sets: "mixed" (half two-object, seen pairs) and "heldout" (one object, unseen pairs)."""
    tokenizer = Tokenizer()
    return {name: eval_set(name, tokenizer) for name in names}


def _images(data: ShapesData, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(data.images).to(device)  # (N, 32, 32, 3) uint8: 4x smaller than floats


def train_judge(train_cfg: TrainConfig, n: int = 50_000, p_two: float = 0.5, train_data: ShapesData | None = None,
                curve_set: ShapesData | None = None) -> tuple[Judge, History]:
    """Render n scenes of any colour×shape pair from the seed (or take `train_data`) and train a judge on their
    meanings; `curve_set` is scored every `train_cfg.eval_every_s` seconds for the curves."""
    device = pick_device(train_cfg.device)
    data = train_data or make_shapes(scenes_for(train_cfg, n), f"judge:{train_cfg.seed}", Tokenizer(), p_two=p_two,
                                     split="any", progress=True)
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


def train_vq(train_cfg: TrainConfig, vq_cfg: VQConfig = VQConfig(), n: int = 50_000, p_two: float = 0.5,
             train_data: ShapesData | None = None, judge: Judge | None = None,
             curve_set: ShapesData | None = None) -> tuple[VQVAE, History]:
    """Render n training-split scenes from the seed (or take `train_data`) and train the tokenizer to reconstruct
    them; with a `judge` and a `curve_set`, the reconstructions are scored for the curves."""
    device = pick_device(train_cfg.device)
    data = train_data or make_shapes(scenes_for(train_cfg, n), train_cfg.seed, Tokenizer(), p_two=p_two, progress=True)
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


def _load(path, kind: str, model_cls, config_cls, device: str):
    ckpt = load_checkpoint(path, kind)
    return build_from(ckpt, path, model_cls, config_cls, device), ckpt


def load_vq(path, device: str = "cpu") -> tuple[VQVAE, dict]:
    """Rebuild a trained tokenizer from a checkpoint of kind "vq"; returns it (in eval mode) and the checkpoint."""
    return _load(path, "vq", VQVAE, VQConfig, device)


def load_judge(path, device: str = "cpu") -> tuple[Judge, dict]:
    """Rebuild a trained judge from a checkpoint of kind "judge"; returns it (in eval mode) and the checkpoint."""
    return _load(path, "judge", Judge, JudgeConfig, device)
