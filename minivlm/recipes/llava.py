"""The toy LLaVA (Liu et al. 2023): the recipe behind `train llava`, `ask` and the benchmark.

Vision: the 16 patch tokens of a trained toy CLIP ViT (7,500 steps), frozen, from the layer before the last (LLaVA's
Sec. 5.2). Projector: the LLaVA-1.5 MLP, its output plus a fixed 2-D sin-cos code of each patch's place scaled by
`visual_positions` (not LLaVA's). LM: the d128 x 2-layer decoder of recipes/lm.py over the instruction vocabulary,
from scratch; or, with `lm_steps` > 0, first pretrained text-only on the exchanges' text (`pretrain_llava_lm`), as
LLaVA starts from a trained LM, so that stage 1 aligns the projector to an LM that has read something. Stage 1 (projector only) sees brief-description exchanges, stage 2 (projector + LM) the instruction
data of every question kind; both learn the answer tokens only; stage 1 gets `stage1_frac` of the budget. Batch
128, lr 1e-3, AdamW (beta2 0.98, wd 0.05), 50 warm-up steps then cosine to 5 % per stage, 2,100 steps in all.
Figures and how the recipe was found: bench/README.md, "Generative path", LLaVA.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import torch
from torch import nn

from minivlm.data.datasets import shuffled_batches
from minivlm.data.folder import load_image
from minivlm.data.images import preprocess
from minivlm.data.questions import VQA_EVAL_SETS, VQAData, instruction_tokenizer, make_vqa, vqa_accuracy, vqa_eval_set
from minivlm.concepts.next_token import next_token_loss
from minivlm.concepts.projector import expand, splice
from minivlm.data.tokenizer import IMAGE, Tokenizer
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.models.llava import LLaVA, LLaVAConfig
from minivlm.models.lm import CausalLM
from minivlm.recipes.clip import CLIPRecipe
from minivlm.recipes.flamingo import trim
from minivlm.recipes.lm import lm_config, pretrain_steps
from minivlm.recipes.recipe import Recipe
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for


@dataclass(frozen=True)
class LLaVARecipe(Recipe):
    name: ClassVar[str] = "llava"
    title: ClassVar[str] = "toy LLaVA"
    family: ClassVar[str] = "prefix for a frozen LM"
    summary: ClassVar[str] = "LLaVA: a frozen CLIP's patch tokens, projected, before an LM's words; two stages"
    tasks: ClassVar[tuple[str, ...]] = ("vqa", "vqa_colour", "vqa_shape", "vqa_size", "vqa_position", "vqa_relation",
                                        "vqa_count", "vqa_yesno", "samples_per_s")
    model_cls: ClassVar[type] = LLaVA
    config_cls: ClassVar[type] = LLaVAConfig
    verbs: ClassVar[tuple[str, ...]] = ("ask",)
    headline: ClassVar[tuple[str, ...]] = ("vqa_acc", "vqa_heldout_acc")
    curves: ClassVar[tuple[str, ...]] = ("vqa_acc",)

    steps: int = 2100  # both stages, 269k exchanges: the benchmark's 180 s (265k)
    lr: float = 1e-3  # of both stages; 3e-3 (the shared default) left colour and shape questions near 0.8
    n_stage1: int = 20_000  # brief-description exchanges (caption pairs)
    n_stage2: int = 50_000  # questions, the kinds balanced
    p_two: float = 0.5
    res: int = 32
    stage1_frac: float = 0.15  # share of the training budget (steps or seconds) spent in stage 1
    projector: str = "mlp"  # or "linear" (LLaVA 1.0)
    feature_layer: int = -2  # the ViT layer read: the one before the last
    visual_positions: float = 3.0  # scale of the fixed 2-D sin-cos code on the visual tokens (0: none)
    clip_steps: int = 7500  # the frozen CLIP's training: its patch tokens say more about shape after 300 s than 150 s
    lm_steps: int = 0  # text-only pretraining steps of the LM before stage 1 (lr 3e-3); 0: from scratch

    def __post_init__(self):
        if isinstance(self.lm_steps, bool) or not isinstance(self.lm_steps, int) or self.lm_steps < 0:
            raise ValueError(f"lm_steps: expected a whole number of steps >= 0 (0: no pretraining), "
                             f"got {self.lm_steps!r}")

    def prerequisites(self):
        return {"clip": (CLIPRecipe(), self.clip_steps)}

    def fit(self, cfg, deps, curves):
        tokenizer = instruction_tokenizer()
        sets = {"vqa": head(vqa_eval_set("vqa", tokenizer, self.res), 400)} if curves else None  # 50 of each kind
        model, history, stage_seconds = train_llava(cfg, deps["clip"], tokenizer, self, curve_sets=sets)
        return model, history, stage_seconds

    def evaluate(self, model, deps):
        tokenizer = instruction_tokenizer()
        return evaluate_llava(model, tokenizer, eval_sets(tokenizer, model.cfg.vision.image_size))

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves (loss; VQA accuracy on 400 questions), and the accuracy of each kind on stdout."""
        super().report(model, metrics, out, history, deps)
        plt.close("all")
        for kind, acc in metrics["vqa_acc_by_type"].items():
            print(f"  {kind:<18} {acc:.3f}  (held-out pairs {metrics['vqa_heldout_acc_by_type'][kind]:.3f})")

    def tokenizer_extra(self, model):
        return {"vocab": instruction_tokenizer().vocab}


def llava_config(clip_cfg: CLIPConfig, tokenizer: Tokenizer, projector: str = LLaVARecipe.projector,
                 feature_layer: int = LLaVARecipe.feature_layer,
                 visual_positions: float = LLaVARecipe.visual_positions) -> LLaVAConfig:
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


class BlankImage(nn.Module):
    """LLaVA's LM reading an exchange's text alone, laid out as the splice lays it out: N zero embeddings where
    <image> stands (recipes/lm.py's `blank_prefix`, put at the placeholder), so every word after it sits at the
    position LLaVA will give it, and the slots the visual tokens fill carry only their position embeddings.
    `loss(tokens (B, T))`: the next-token loss on every word (no image: nothing to read, the text is all there is)."""

    def __init__(self, lm: CausalLM, n: int, image_id: int):
        super().__init__()
        self.lm, self.n, self.image_id = lm, n, image_id

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        blank = torch.zeros(len(tokens), self.n, self.lm.cfg.dim, device=tokens.device)  # (B, N, D)
        x = splice(self.lm.tok(tokens), blank, tokens, self.image_id)  # (B, T-1+N, D)
        targets = expand(tokens, tokens, self.image_id, self.n, self.lm.cfg.pad_id)  # (B, T-1+N): <pad> at blanks
        return next_token_loss(self.lm.decode(x), targets, self.lm.cfg.pad_id)


def pretrain_llava_lm(cfg: TrainConfig, llava_cfg: LLaVAConfig, texts: torch.Tensor) -> tuple[CausalLM, History]:
    """The LM of `llava_cfg` from the seed, trained text-only on next tokens of `texts` (N, L), exchanges with one
    <image> each, read through `BlankImage`. Not recipes/flamingo.py's `pretrain_lm`: that one puts the text at
    positions 0..L-1, where Flamingo's cross-attention leaves it; LLaVA's splice moves every word after <image> on by
    N - 1, to positions (up to 38 here) that text at 0..23 never trains, and stage 1 keeps the LM frozen."""
    device = pick_device(cfg.device)
    lm = build(CausalLM, llava_cfg.lm, cfg.seed).to(device)
    texts = texts.to(device)
    order = shuffled_batches(len(texts), cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    reader = BlankImage(lm, llava_cfg.vision.grid ** 2, llava_cfg.image_id)
    return lm, fit(reader, lambda: (trim(texts[next(order).to(device)], llava_cfg.lm.pad_id),), cfg,
                   desc="LLaVA LM text-only pretraining")


def train_llava(train_cfg: TrainConfig, clip: CLIP, tokenizer: Tokenizer, recipe: LLaVARecipe = LLaVARecipe(),
                curve_sets: dict | None = None, stage1_eval=None) -> tuple[LLaVA, History, dict]:
    """Build LLaVA of `recipe`'s projector, feature layer and grid code from the seed over `clip`'s (frozen) vision
    tower, then train stage 1 and stage 2 on data drawn from the seed. A steps budget renders no more scenes than it
    will see; the optimiser settings are `train_cfg`'s (`recipe.train_config(...)` gives the recipe's). With
    `recipe.lm_steps` > 0 the LM is first pretrained text-only on the text of both stages' exchanges for that many
    steps (a tenth of a steps budget shorter than that, as Flamingo's), and stage 1 starts from it.

    Returns the model, the joined history and {"stage1_seconds", "stage2_seconds"} (training time of each), plus
    {"lm_pretrain_steps", "lm_pretrain_seconds", "lm_loss"} when the LM was pretrained (its time is not in the
    history). `curve_sets` (e.g. {"vqa": a few hundred questions}) are evaluated during stage 2 for the curves;
    `stage1_eval(model) -> dict`, if given, during stage 1 (as `fit`'s evaluate: at least once, at its end).
    """
    device = pick_device(train_cfg.device)
    cfg1, cfg2 = _stage_configs(train_cfg, recipe.stage1_frac)
    stage1 = make_vqa(scenes_for(cfg1, recipe.n_stage1), train_cfg.seed, tokenizer, recipe.res, recipe.p_two,
                      kinds=("describe",))
    stage2 = make_vqa(scenes_for(cfg2, recipe.n_stage2), train_cfg.seed, tokenizer, recipe.res, recipe.p_two)
    config = llava_config(clip.cfg, tokenizer, recipe.projector, recipe.feature_layer, recipe.visual_positions)
    model = build(LLaVA, config, train_cfg.seed)
    model.vision.load_state_dict(clip.visual.state_dict())
    stats = {}
    if recipe.lm_steps:
        short = train_cfg.steps is not None and train_cfg.steps < recipe.lm_steps  # a smoke test: a tenth of it
        lm_cfg = TrainConfig(steps=pretrain_steps(train_cfg, recipe.lm_steps) if short else recipe.lm_steps,
                             batch_size=train_cfg.batch_size, seed=train_cfg.seed, device=train_cfg.device)
        lm, lm_hist = pretrain_llava_lm(lm_cfg, config, torch.cat([stage1.tokens, stage2.tokens]))
        model.lm.load_state_dict(lm.state_dict())
        last = lm_hist.steps[-1]
        stats = {"lm_pretrain_steps": last["step"], "lm_pretrain_seconds": last["seconds"], "lm_loss": last["loss"]}
    model.to(device)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    model.set_stage(1)
    hist1 = fit(model, vqa_batches(stage1, cfg1.batch_size, gen, device), cfg1, stage1_eval, desc="LLaVA stage 1")
    model.set_stage(2)
    evaluate = (lambda m: evaluate_llava(m, tokenizer, curve_sets)) if curve_sets else None
    hist2 = fit(model, vqa_batches(stage2, cfg2.batch_size, gen, device), cfg2, evaluate, desc="LLaVA stage 2")
    seconds = {"stage1_seconds": hist1.steps[-1]["seconds"], "stage2_seconds": hist2.steps[-1]["seconds"]}
    return model, _join(hist1, hist2), {**seconds, **stats}


def load_llava(path, device: str = "cpu") -> tuple[LLaVA, Tokenizer, dict]:
    """Rebuild a trained LLaVA and its instruction tokenizer from a checkpoint written by the CLI."""
    return load_run(path, "llava", LLaVA, LLaVAConfig, device)


def ask(checkpoint, image, question: str, resize: bool = False, unk: bool = False, device: str = "auto") -> None:
    """`ask CKPT IMAGE QUESTION`: print LLaVA's answer to `question` about the PNG `image`; "<image>" is put before
    a question that does not place it itself."""
    model, tokenizer, _ = load_llava(checkpoint, device)
    res = model.cfg.vision.image_size
    picture = load_image(image, res, resize=resize)  # (res, res, 3) uint8
    prompt = question if IMAGE in tokenizer.split(question) else f"{IMAGE} {question}"
    with torch.no_grad():
        print(model.answer(preprocess(picture, res).to(next(model.parameters()).device), [prompt], tokenizer,
                           unk=unk)[0])
