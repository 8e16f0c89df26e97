"""How the toy LLaVA is trained and evaluated: the recipe behind `python -m minivlm train llava`.

Vision: the patch tokens (16 of width 64) of a trained toy CLIP ViT, frozen (Liu et al. 2023, Sec. 4.1), taken from
the layer before the last, as LLaVA does (Sec. 5.2: 0.96 points better than the last layer on ScienceQA); here it
lifted VQA accuracy from 0.741 to 0.759 in 180 s, shape questions from 0.78 to 0.90. Projector:
the LLaVA-1.5 MLP by default, its output plus a fixed 2-D sin-cos code of each patch's place (not LLaVA's; see the
last point below). LM: the d128 × 2-layer decoder of recipes/lm.py over the instruction vocabulary, with
a context of 24 text tokens + 15 (the <image> placeholder becomes 16 visual tokens).

Stage 1 (feature alignment, projector only) sees brief-description exchanges, "<bos> <image> what is in the image?
caption <eos>" (LLaVA's stage 1 pairs a brief-description instruction with the image's caption), and stage 2 (end
to end, projector + LM) the instruction data of every question kind (`make_vqa`); both learn the answer tokens
only. The LM starts from scratch, not from text-only pretraining: the captions LM of recipes/lm.py reads text at
positions 0..15, whereas here the text follows 16 visual tokens, and the questions are not captions, so stage 2
would relearn most of it anyway. Against a random frozen LM, stage 1 only lowers the answer loss from about 4.1 to
3.4 nats (the plateau at the start of the curves); it gets the smaller share of the budget (`stage1_frac`), and
stage 2 does the work.
Batch 128, lr 1e-3 (`LR`), AdamW (β2 0.98, wd 0.05), 50 warm-up steps then cosine to 5 %, per stage.

Measured (2 cores, 180 s in all, seed 0, by question kind on the 1600-question set; bench/README.md):
- lr 3e-3 on a 150 s toy CLIP: colour 0.78, shape 0.79, yes/no 0.78; lr 1e-3: colour 0.93, shape 0.94, yes/no 0.77
  (seed 1: colour 0.855); lr 2e-3: colour 0.83. Comparing a question's words with the picture (yes/no, or finding
  "the small circle" to read its colour) is what the lower rate learns faster.
- lr 1e-3 on a 300 s toy CLIP (its patch tokens say more about shape): colour 0.96, shape 0.97, size 0.98, yes/no
  0.965. The frozen encoder sets the ceiling: a probe reads the shape of the left/top object of a two-object scene
  from its tokens 0.87 of the time after 150 s of CLIP training, 0.91 after 300 s.
- Position and relation questions were the hard part: 0.62-0.77 and 0.46-0.58 in every setting tried on 2 cores
  (batch 64 with lr 6e-3, batch 32, the linear projector, 4 LM layers, 75 % two-object scenes, the question before
  the image, 360 s, an LM pretrained text-only on the exchanges, position and relation questions 3x as often,
  conversations of up to 4 questions per image). In two-object scenes the model seldom found where a named object
  was. A GPU's 6.4x the exchanges (2.05M in 180 s) gives position 0.98 and relation 0.995: the LM does learn where
  each of its 16 visual tokens sits on the grid, from its 1-D learned positions, but slowly.
- The fix (`VISUAL_POSITIONS`): add a fixed 2-D sin-cos code of each patch's row and column (concepts/positions.py)
  to the visual tokens, `visual_positions` x the unit sin/cos waves, so the grid is given, not learned. On 2 cores,
  180 s: position 0.975 and relation 0.95 (seed 0), 0.98 and 0.97 (seed 1); at a third of the scale, position 0.875
  and relation 0.57: the code must stand out against the projector's output (about 0.5 per channel at the start).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from minivlm.data.datasets import shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.questions import VQA_EVAL_SETS, VQAData, make_vqa, vqa_accuracy, vqa_eval_set
from minivlm.data.tokenizer import IMAGE, Tokenizer
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.models.llava import LLaVA, LLaVAConfig
from minivlm.recipes.lm import lm_config
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for


LR = 1e-3  # of both stages; 3e-3 (the shared default) left colour and shape questions near 0.8 (see above)
VISUAL_POSITIONS = 3.0  # scale of the fixed 2-D sin-cos code on the visual tokens (see above)


@dataclass
class LLaVAData:
    n_stage1: int = 20_000  # brief-description exchanges (caption pairs)
    n_stage2: int = 50_000  # questions, the kinds balanced
    p_two: float = 0.5
    res: int = 32
    stage1_frac: float = 0.15  # share of the training budget (steps or seconds) spent in stage 1


def llava_config(clip_cfg: CLIPConfig, tokenizer: Tokenizer, projector: str = "mlp", feature_layer: int = -2,
                 visual_positions: float = VISUAL_POSITIONS) -> LLaVAConfig:
    """The LLaVA over a CLIP of `clip_cfg`, whose LM has `tokenizer`'s vocabulary and room for the visual tokens."""
    n = clip_cfg.grid ** 2
    return LLaVAConfig(vision=clip_cfg, lm=lm_config(tokenizer, prefix_len=n - 1), projector=projector,
                       feature_layer=feature_layer, visual_positions=visual_positions, max_len=tokenizer.max_len,
                       image_id=tokenizer.image_id)


def prompts(data: VQAData) -> list[str]:
    """The chat-style prompts of `data`'s questions, as `make_vqa` lays them out: "<image> question"."""
    return [f"{IMAGE} {qa.question}" for qa in data.qas]


def evaluate_llava(model: LLaVA, tokenizer: Tokenizer, sets: dict[str, VQAData], batch_size: int = 500) -> dict:
    """Greedy answers to every question of each set, graded by `vqa_correct`: for the set "vqa" `vqa_acc` and
    `vqa_acc_by_type` (one entry per question kind), for another set NAME `NAME_acc` and `NAME_acc_by_type`."""
    device = next(model.parameters()).device
    m = {}
    for name, data in sets.items():
        asked = prompts(data)
        answers = [a for i in range(0, len(data), batch_size)
                   for a in model.answer(preprocess(data.images[i:i + batch_size], model.cfg.vision.image_size)
                                         .to(device), asked[i:i + batch_size], tokenizer)]
        acc = vqa_accuracy(answers, data.qas)
        key = name.replace("-", "_")
        m[f"{key}_acc"] = acc.pop("all")
        m[f"{key}_acc_by_type"] = acc
    return m


def eval_sets(tokenizer: Tokenizer, res: int = 32, names=tuple(VQA_EVAL_SETS)) -> dict[str, VQAData]:
    """The fixed VQA evaluation sets: "vqa" (seen colour+shape pairs) and "vqa-heldout" (unseen pairs)."""
    return {name: vqa_eval_set(name, tokenizer, res) for name in names}


def head(data: VQAData, n: int) -> VQAData:
    """The first n questions of `data` (of a balanced set, still balanced when n is a multiple of the kinds)."""
    return VQAData(data.images[:n], data.qas[:n], data.tokens[:n], data.answer_mask[:n], data.scenes[:n])


def _stage_configs(cfg: TrainConfig, frac: float) -> tuple[TrainConfig, TrainConfig]:
    """Split a budget between the stages: `frac` of the seconds, or of the steps (at least one each), to stage 1."""
    if cfg.steps is not None:
        first = min(max(1, math.ceil(frac * cfg.steps)), cfg.steps - 1) if cfg.steps > 1 else 1
        return dataclasses.replace(cfg, steps=first), dataclasses.replace(cfg, steps=max(1, cfg.steps - first))
    return (dataclasses.replace(cfg, seconds=frac * cfg.seconds),
            dataclasses.replace(cfg, seconds=(1 - frac) * cfg.seconds))


def _join(first: History, second: History) -> History:
    """One history of both stages: the second's step, seconds and samples continue from the first's."""
    last = first.steps[-1]
    shift = lambda r: {**r, **{k: r[k] + last[k] for k in ("step", "seconds", "samples")}}
    return History(first.steps + [shift(r) for r in second.steps], first.evals + [shift(e) for e in second.evals])


def vqa_batches(data: VQAData, batch_size: int, generator: torch.Generator, device: torch.device):
    """A function returning the next shuffled batch of `data`: (images (B, 3, S, S), tokens (B, L), answer_mask
    (B, L)), the arguments of `LLaVA.loss`; the uint8 images are moved to `device` once and preprocessed per batch."""
    images = torch.from_numpy(data.images).to(device)  # (N, S, S, 3) uint8
    tokens, mask = data.tokens.to(device), data.answer_mask.to(device)  # (N, L), (N, L)
    order = shuffled_batches(len(data), batch_size, generator)

    def next_batch():
        idx = next(order).to(device)
        return preprocess(images[idx], images.shape[1]), tokens[idx], mask[idx]
    return next_batch


def train_llava(train_cfg: TrainConfig, clip: CLIP, tokenizer: Tokenizer, data_cfg: LLaVAData = LLaVAData(),
                projector: str = "mlp", curve_sets: dict | None = None, feature_layer: int = -2,
                visual_positions: float = VISUAL_POSITIONS) -> tuple[LLaVA, History, dict]:
    """Build LLaVA from the seed over `clip`'s (frozen) vision tower, then train stage 1 and stage 2 on data drawn
    from the seed. A steps budget renders no more scenes than it will see.

    Returns the model, the joined history and {"stage1_seconds", "stage2_seconds"} (training time of each).
    `curve_sets` (e.g. {"vqa": a few hundred questions}) are evaluated during stage 2 for the curves.
    """
    device = pick_device(train_cfg.device)
    cfg1, cfg2 = _stage_configs(train_cfg, data_cfg.stage1_frac)
    stage1 = make_vqa(scenes_for(cfg1, data_cfg.n_stage1), train_cfg.seed, tokenizer, data_cfg.res, data_cfg.p_two,
                      kinds=("describe",))
    stage2 = make_vqa(scenes_for(cfg2, data_cfg.n_stage2), train_cfg.seed, tokenizer, data_cfg.res, data_cfg.p_two)
    model = build(LLaVA, llava_config(clip.cfg, tokenizer, projector, feature_layer, visual_positions), train_cfg.seed)
    model.vision.load_state_dict(clip.visual.state_dict())
    model.to(device)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    model.set_stage(1)
    hist1 = fit(model, vqa_batches(stage1, cfg1.batch_size, gen, device), cfg1, desc="LLaVA stage 1")
    model.set_stage(2)
    evaluate = (lambda m: evaluate_llava(m, tokenizer, curve_sets)) if curve_sets else None
    hist2 = fit(model, vqa_batches(stage2, cfg2.batch_size, gen, device), cfg2, evaluate, desc="LLaVA stage 2")
    seconds = {"stage1_seconds": hist1.steps[-1]["seconds"], "stage2_seconds": hist2.steps[-1]["seconds"]}
    return model, _join(hist1, hist2), seconds


def load_llava(path, device: str = "cpu") -> tuple[LLaVA, Tokenizer, dict]:
    """Rebuild a trained LLaVA and its instruction tokenizer from a checkpoint written by the CLI."""
    return load_run(path, "llava", LLaVA, LLaVAConfig, device)
