"""The patch-token captioner: LLaVA (models/llava.py) trained end to end on one instruction only, "<image> what is
in the image?" answered with the caption. It is the benchmark's "captioner on a frozen toy-CLIP encoder" and, with
the vision tower built from the seed and trained too (`clip=None`, reading its last layer), its "captioner from
scratch" baseline. Against ClipCap the LM reads CLIP's 16 patch tokens instead of its one pooled embedding.

The ViT tokens of the layer before the last, the MLP projector without the grid code, the d128 x 2-layer LM of
recipes/lm.py from scratch; 50,000 scenes, half of them two-object; the trainer's defaults (batch 128, lr 3e-3,
AdamW, 50 warm-up steps then cosine to 5 %). Not a registered system: no `train` command of its own.
Figures: bench/README.md, "Generative path".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from minivlm.data.images import preprocess
from minivlm.data.questions import make_vqa
from minivlm.data.tokenizer import IMAGE, Tokenizer
from minivlm.evaluate import caption_scores, meaning_matches
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.models.llava import LLaVA
from minivlm.recipes.llava import llava_config, vqa_batches
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for

PROMPT = f"{IMAGE} what is in the image?"  # the "describe" question of data/questions.py


@dataclass(frozen=True)
class CaptionerRecipe:
    """The captioner's data and the ViT layer it reads; the optimiser is the TrainConfig's."""
    n_train: int = 50_000
    p_two: float = 0.5
    res: int = 32
    feature_layer: int | None = None  # None: -2 on a frozen CLIP, -1 from scratch (a tower that trains uses all)


@torch.no_grad()
def describe(model: LLaVA, images: np.ndarray, tokenizer: Tokenizer, batch_size: int = 500) -> list[str]:
    """uint8 (N, S, S, 3) images -> N greedy captions, the answers to PROMPT."""
    device, res = next(model.parameters()).device, model.cfg.vision.image_size
    return [c for i in range(0, len(images), batch_size)
            for c in model.answer(preprocess(images[i:i + batch_size], res).to(device),
                                  [PROMPT] * len(images[i:i + batch_size]), tokenizer)]


def evaluate_captioner(model: LLaVA, tokenizer: Tokenizer, sets: dict) -> dict:
    """`caption_scores` on the "mixed" set and `heldout_em` (unseen colour×shape pairs named right) on "heldout",
    the sets of recipes/clip.py `eval_sets`; each set is optional."""
    m = {}
    if "mixed" in sets:
        m.update(caption_scores(describe(model, sets["mixed"].images, tokenizer), sets["mixed"].scenes))
    if "heldout" in sets:
        held = sets["heldout"]
        m["heldout_em"] = float(meaning_matches(describe(model, held.images, tokenizer), held.scenes).mean())
    return m


def train_captioner(train_cfg: TrainConfig, tokenizer: Tokenizer, clip: CLIP | None = None,
                    recipe: CaptionerRecipe = CaptionerRecipe(), curve_sets: dict | None = None
                    ) -> tuple[LLaVA, History]:
    """Build the captioner from the seed over `clip`'s vision tower (copied and frozen), or over a fresh one that
    trains with the rest when `clip` is None; train projector and LM (and that tower) on captions drawn from the seed.
    `tokenizer` is `instruction_tokenizer()`; `curve_sets` as in `evaluate_captioner`, evaluated during training.
    The ViT layer read is `recipe.feature_layer`, by default -2 on CLIP and -1 from scratch."""
    feature_layer = recipe.feature_layer if recipe.feature_layer is not None else (-2 if clip is not None else -1)
    device = pick_device(train_cfg.device)
    data = make_vqa(scenes_for(train_cfg, recipe.n_train), train_cfg.seed, tokenizer, recipe.res, recipe.p_two,
                    kinds=("describe",))
    cfg = dataclasses.replace(llava_config(clip.cfg if clip else CLIPConfig(image_size=recipe.res), tokenizer,
                                           feature_layer=feature_layer, visual_positions=0.0),
                              freeze_vision=clip is not None)
    model = build(LLaVA, cfg, train_cfg.seed)
    if clip is not None:
        model.vision.load_state_dict(clip.visual.state_dict())
    model.to(device)
    model.set_stage(2)
    evaluate = (lambda m: evaluate_captioner(m, tokenizer, curve_sets)) if curve_sets else None
    batches = vqa_batches(data, train_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed), device)
    return model, fit(model, batches, train_cfg, evaluate, desc="captioner")
