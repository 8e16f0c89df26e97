"""How the toy Flamingo is trained and evaluated: the recipe behind `python -m minivlm train flamingo`.

1. The LM is pretrained text-only on the text of the training mixture (<image> is an ordinary word there), then
   frozen, as Flamingo freezes its pretrained Chinchilla (Sec. 2). The vision tower is a trained toy CLIP's, frozen.
2. Only the Perceiver resampler and the GATED XATTN-DENSE blocks train, on the paper's mixture (Sec. 2.4, eq. 2):
   every update takes one batch from each source (captions, videos, documents, two-image questions) and minimises
   the weighted sum of their losses.

The gates. AdamW moves a parameter by about lr per step whatever its gradient's size, and the gradient of the
scalar alpha is a sum of many small terms of both signs, so at lr 2e-3 alpha hardly leaves 0 (tanh(alpha) ~ 0.015
in the findings note): the cross-attention weights grow instead, and the gate curve teaches nothing. The fix here:
the gates get their own parameter group at `gate_lr_scale` x the learning rate (the equivalent, for Adam, of
writing alpha = s * a and training a, as some implementations do); the blocks stay exactly the identity at
initialisation, and tanh(alpha) now shows how far each layer opens. At 30x they saturate within 20 steps and the
captions go unstable; 5x is used.

Two-object captions. With the paper's resampler they stayed near 0.02-0.05 (EM) in 120 s, whatever we tried
(bench/README.md). Two causes, each found by removing it:
- The resampler's latents start alike and read an even average of the image; they learn to split the scene only
  slowly, so in a two-object scene the text reads the same blend for both objects (generated captions named one
  object twice). Letting the gated blocks read the 16 patch tokens directly, with a 2-D position code, gave
  two-object EM 0.675; without the code, 0.02. The fix keeps the resampler and makes it position-aware
  (`RESAMPLER_POSITIONS`, concepts/resampler.py): one latent per patch cell, grid codes on its queries and keys, so
  from the first step each latent reads its own neighbourhood. At scale 2: 0.28; at 3: 0.70-0.77.
- A caption may name either object first ("A left of B" or "B right of A"). With a frozen LM, naming the second
  object then means finding "the one not named yet", which the gated blocks do not learn in 120 s: with the
  position-aware resampler but either order, EM 0.036, the same object named twice again. Named in reading order
  (the left, or the top, object first: `FlamingoData.reading_order`), the second object is simply the one on the
  right or below, EM 0.70-0.77. Captions are scored by meaning, so either wording counts as right.

Recipe: the d128 x 2 LM of recipes/lm.py pretrained 300 steps (15 s on 2 cores); 16 latents, one per patch, from a
2-layer position-aware resampler over the ViT's layer before the last; a gated block before each LM block; per
update 64 captions (two-object ones in reading order), 8 videos, 8 documents and 8 two-image questions (16 of each
gave the same captions, better video captions, and fewer updates a second), loss weights 1, 0.5, 1, 0.5; lr 2e-3
(AdamW, 50 warm-up steps, cosine to 5 %).
Measured by bench/flamingo_bench.py (2 cores, 120 s after the LM's 300 steps, 1,013 samples/s): two-object caption
EM 0.803 (0.35 at 46 s), one-object 0.988 (0.964 after a 59.5 s run; seed 1: 0.952), held-out pairs 0.77;
few-shot accuracy 0 at 0 shots (the model captions), 0.99 from one shot on. One-object captions need 60-72k samples
to reach 0.95 (50-66k with the paper's resampler): at 921 samples/s, a slow hour of the same machine, the 59.5 s run
ended at 0.940.
The LM's pretraining is counted in steps, not seconds: a frozen LM trained longer is harder to steer. Pretrained
for 75 s on 2 cores (loss 0.833 against 0.847), the same 60 s of Flamingo reach one-object EM 0.35, not 0.97; a GPU's
15 s did the same (0.52).
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from minivlm.data.datasets import eval_set, shuffled_batches
from minivlm.data.documents import (FORMATS, Media, document_text, make_captions_media, make_documents, make_pairs,
                                    make_videos)
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.evaluate import caption_scores, meaning_matches
from minivlm.models.clip import CLIP
from minivlm.models.flamingo import Flamingo, FlamingoConfig
from minivlm.models.lm import CausalLM, LMConfig
from minivlm.recipes.lm import lm_config, pretrain_steps
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for

SOURCES = ("captions", "videos", "documents", "pairs")
LR = 2e-3  # of the resampler and the gated blocks (the gates: gate_lr_scale x LR); 3e-3 gave noisier curves
RESAMPLER_POSITIONS = 3.0  # scale of the grid codes on the resampler's queries and keys (2: two-object EM 0.28)
SHOTS = (0, 1, 2, 4)
FEWSHOT_TASKS = ("colour", "shape", "size")  # document formats with one-word answers


@dataclass
class FlamingoData:
    n: dict = field(default_factory=lambda: {"captions": 40_000, "videos": 6_000, "documents": 6_000,
                                             "pairs": 6_000})
    batch: dict = field(default_factory=lambda: {"captions": 64, "videos": 8, "documents": 8, "pairs": 8})
    weights: dict = field(default_factory=lambda: {"captions": 1.0, "videos": 0.5, "documents": 1.0, "pairs": 0.5})
    frames: int = 3  # T of a video clip
    doc_images: int = 5  # M of a document: up to 4 examples before an image
    p_two: float = 0.5  # of the caption pairs
    reading_order: bool = True  # two-object captions name the left (or top) object first (see above)
    res: int = 32
    lm_steps: int = 300  # text-only pretraining of the LM (batch 128), before it is frozen: 15 s on 2 cores
    gate_lr_scale: float = 5.0


def media_tensor(media: np.ndarray) -> torch.Tensor:
    """uint8 (N, M, T, S, S, 3) -> float (N, M, T, 3, S, S) through `preprocess`, frame by frame."""
    n, m, t, s = media.shape[:4]
    if n * m * t == 0:
        raise ValueError(f"media: expected at least one image per row and one frame per image, got {media.shape}")
    x = preprocess(media.reshape(n * m * t, s, s, 3), s)  # (N*M*T, 3, S, S)
    return x.reshape(n, m, t, 3, s, s)  # (N, M, T, 3, S, S)


def flamingo_config(clip: CLIP, tokenizer: Tokenizer, data: FlamingoData, lm_layers: int = 2,
                    **overrides) -> FlamingoConfig:
    """The toy Flamingo over `clip`'s vision tower: the d128 LM of recipes/lm.py with `lm_layers` blocks, one latent
    per patch (16) from a 2-layer position-aware resampler reading the ViT's layer before the last, a gated block
    before every LM block."""
    lm = dataclasses.replace(lm_config(tokenizer), layers=lm_layers)
    n = clip.cfg.grid ** 2  # patches per image: one latent each, on the same grid
    return FlamingoConfig(**{"vision": clip.cfg, "lm": lm, "latents": n, "resampler_depth": 2,
                             "max_frames": data.frames, "heads": 4, "feature_layer": -2, "patch_positions": False,
                             "resampler_positions": RESAMPLER_POSITIONS,
                             "image_id": tokenizer.image_id, **overrides})


def make_sources(data: FlamingoData, seed: int, tokenizer: Tokenizer, budget: TrainConfig | None = None
                 ) -> dict[str, Media]:
    """The four training sources drawn from `seed`; under a steps budget no more rows than it will see."""
    cap = lambda name: scenes_for(budget, data.n[name], data.batch[name]) if budget else data.n[name]  # noqa: E731
    return {"captions": make_captions_media(cap("captions"), seed, tokenizer, data.res, data.p_two,
                                            reading_order=data.reading_order),
            "videos": make_videos(cap("videos"), seed, tokenizer, data.frames, res=data.res),
            "documents": make_documents(cap("documents"), seed, tokenizer, data.doc_images, res=data.res),
            "pairs": make_pairs(cap("pairs"), seed, tokenizer, data.res)}


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
        """The tanh gates' alphas train at gate_lr_scale x lr (see the module docstring)."""
        return {n: self.gate_lr_scale for n, _ in self.named_parameters() if n.rsplit(".", 1)[-1].startswith("alpha")}

    def loss(self, *batches) -> torch.Tensor:
        return sum(w * self.model.loss(tokens, media) for w, (tokens, media) in zip(self.weights, batches))


def trim(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """tokens (N, L) -> (N, L') without the columns that are padding in every row: a caption of 15 tokens is not
    run through the LM at the context's full 24 (most of a step's time is the LM's, frozen or not)."""
    return tokens[:, :int((tokens != pad_id).sum(dim=1).max())]  # (N, L')


def mixture_batches(sources: dict[str, Media], data: FlamingoData, generator: torch.Generator, device,
                    pad_id: int = 0):
    """A function returning one (tokens, media) batch of each source, in SOURCES order."""
    streams = []
    for name in SOURCES:
        src = sources[name]
        media, tokens = torch.from_numpy(src.media).to(device), trim(src.tokens, pad_id).to(device)  # uint8 media
        streams.append((media, tokens, shuffled_batches(len(src), data.batch[name], generator)))

    def batch(media, tokens, order):
        idx = next(order).to(device)
        return tokens[idx], media_tensor(media[idx])
    return lambda: tuple(batch(*s) for s in streams)


@torch.no_grad()
def continue_text(model: Flamingo, tokenizer: Tokenizer, texts: list[str], media: np.ndarray, max_new: int = 14,
                  batch_size: int = 250, unk: bool = False) -> list[str]:
    """Greedy continuations of prompts `texts` (all the same number of tokens) about media (N, M, T, S, S, 3),
    cut at the first full stop: what the model says next. An unknown word is an error, or <unk> with `unk`."""
    device = next(model.parameters()).device
    ids = [tokenizer.encode(t, unk=unk)[:-1] for t in texts]  # <bos> text, no <eos>
    if len({len(i) for i in ids}) != 1:
        raise ValueError(f"texts: expected prompts of one length in tokens, got {sorted({len(i) for i in ids})}")
    prompts = torch.tensor(ids)  # (N, L)
    out = []
    for i in range(0, len(texts), batch_size):
        rows = model.generate(prompts[i:i + batch_size].to(device), media_tensor(media[i:i + batch_size]).to(device),
                              max_new)  # (b, L + n)
        out += [tokenizer.decode(row[prompts.shape[1]:]).split(" .")[0].removesuffix(".").strip() for row in rows]
    return out


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


@torch.no_grad()
def relation_probe(model: Flamingo, tokenizer: Tokenizer, images: np.ndarray, scenes: list) -> dict:
    """Why two-object captions fail: teacher-force each two-object scene's caption up to its relation and read the
    model's next-token probabilities. `p_vertical_*`: P(above) + P(below) against P(to ...) on scenes whose relation
    is vertical and on those where it is horizontal (equal: the model cannot see the layout); `direction_acc`: how
    often the true side (above vs below, left vs right) is more likely than the opposite one. The scene's first
    object is named first, which half the time goes against a model trained in reading order: for such a model
    read the two p_vertical figures only."""
    device, ids = next(model.parameters()).device, tokenizer.index
    opposite = {"above": "below", "below": "above", "left": "right", "right": "left"}
    p_vert, direction = {"vertical": [], "horizontal": []}, []
    for image, scene in zip(images, scenes):
        if len(scene.objects) != 2:
            continue
        prompt = torch.tensor([tokenizer.encode(f"<image> {scene.objects[0].phrase} to the")[:-1]], device=device)
        p = model(prompt, media_tensor(image[None, None, None]).to(device))[0].softmax(-1)  # (L, V)
        after_object, after_to_the = p[-3], p[-1]  # (V,): next is above / below / to; next is left / right
        vertical = scene.relation in ("above", "below")
        side = scene.relation if vertical else scene.relation.split()[2]  # above, below, left or right
        q = after_object if vertical else after_to_the
        direction.append(bool(q[ids[side]] > q[ids[opposite[side]]]))
        p_vert["vertical" if vertical else "horizontal"].append((after_object[ids["above"]]
                                                                  + after_object[ids["below"]]).item())
    return {"p_vertical_on_vertical": float(np.mean(p_vert["vertical"])),
            "p_vertical_on_horizontal": float(np.mean(p_vert["horizontal"])),
            "direction_acc": float(np.mean(direction))}


@torch.no_grad()
def image_features(model: Flamingo, images: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, D_v) unit vectors: the frozen CLIP tower's pooled features, for RICES."""
    device = next(model.parameters()).device
    x = model.vision(preprocess(images, images.shape[1]).to(device))  # (N, D_v)
    return nn.functional.normalize(x, dim=-1)


def choose_examples(similarity: torch.Tensor | None, n_pool: int, k: int, how: str, rng: random.Random) -> list[int]:
    """k in-context examples from a pool of n_pool for one query: "random", or "rices" (Yang et al. 2022, as in
    open_flamingo) given the query's `similarity` (n_pool,) to each pool image: the k most similar, ordered so the
    most similar one comes last, next to the query."""
    if how == "random":
        return rng.sample(range(n_pool), k)
    if how == "rices":
        return torch.topk(similarity, k).indices.flip(0).tolist() if k else []
    raise ValueError(f"how: expected 'random' or 'rices', got {how!r}")


def fewshot_prompts(task: str, queries: Media, pool: Media, k: int, how: str, model: Flamingo,
                    seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """Few-shot prompts for a task given only by examples: for each query image, k pool images each followed by
    its `task` fact, then the query's <image>. Returns the texts, media (N, k+1, 1, S, S, 3) and the answers."""
    rng = random.Random(f"fewshot:{task}:{k}:{how}:{seed}")
    pool_img, query_img = pool.media[:, 0, 0], queries.media[:, 0, 0]  # (P, S, S, 3), (N, S, S, 3)
    sims = image_features(model, query_img) @ image_features(model, pool_img).T if how == "rices" else None  # (N, P)
    texts, media, answers = [], [], []
    for i in range(len(queries)):
        shots = choose_examples(None if sims is None else sims[i], len(pool_img), k, how, rng)
        texts.append(f"{document_text([FORMATS[task](pool.scenes[j][0]) for j in shots])} <image>".strip())
        media.append(np.concatenate([pool_img[shots], query_img[i:i + 1]])[:, None])  # (k+1, 1, S, S, 3)
        answers.append(FORMATS[task](queries.scenes[i][0]))
    return texts, np.stack(media), answers


def evaluate_fewshot(model: Flamingo, tokenizer: Tokenizer, queries: Media, pool: Media, shots=SHOTS,
                     tasks=FEWSHOT_TASKS, how: str = "random") -> dict:
    """Accuracy on each task at each shot count: `fewshot_acc` {k: mean over tasks}, `fewshot_acc_by_task`."""
    by_task = {}
    for task in tasks:
        for k in shots:
            texts, media, answers = fewshot_prompts(task, queries, pool, k, how, model)
            said = continue_text(model, tokenizer, texts, media, max_new=3)
            by_task.setdefault(task, {})[k] = float(np.mean([s == a for s, a in zip(said, answers)]))
    return {"fewshot_acc": {k: float(np.mean([by_task[t][k] for t in tasks])) for k in shots},
            "fewshot_acc_by_task": by_task}


def eval_media(tokenizer: Tokenizer, data: FlamingoData, n: int = 300) -> dict[str, Media]:
    """Fixed evaluation sets, from their own seeds: videos, two-image questions, few-shot queries and their pool."""
    return {"videos": make_videos(n, "eval-videos", tokenizer, data.frames, res=data.res),
            "pairs": make_pairs(n, "eval-pairs", tokenizer, data.res),
            "queries": make_documents(n, "eval-fewshot-queries", tokenizer, images=1, res=data.res),
            "pool": make_documents(500, "eval-fewshot-pool", tokenizer, images=1, res=data.res)}


def evaluate_flamingo(model: Flamingo, tokenizer: Tokenizer, captions: dict, media: dict,
                      fewshot: bool = True) -> dict:
    """Everything `train flamingo` reports: captions (`evaluate_captions`) and the `relation_probe` of the two-object
    ones, `video_em`, `pair_acc`, the few-shot curves with random and RICES examples, and the gates."""
    m = evaluate_captions(model, tokenizer, captions)
    if "mixed" in captions:
        m["relation_probe"] = relation_probe(model, tokenizer, captions["mixed"].images, captions["mixed"].scenes)
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


def train_flamingo(train_cfg: TrainConfig, clip: CLIP, tokenizer: Tokenizer, data: FlamingoData = FlamingoData(),
                   curve: dict | None = None, **overrides) -> tuple[Flamingo, History, dict]:
    """Pretrain the LM text-only for `data.lm_steps` (at most a tenth of a steps budget), freeze it, then train the
    resampler and gated blocks on the mixture. `curve` = {"captions": sets, "media": sets} is evaluated during
    training (few-shot only at the end). Returns the model, the history and {"lm_pretrain_steps",
    "lm_pretrain_seconds", "lm_loss"}."""
    device = pick_device(train_cfg.device)
    sources = make_sources(data, train_cfg.seed, tokenizer, train_cfg)
    texts = torch.cat([sources[s].tokens for s in SOURCES])  # (N, L)
    cfg = flamingo_config(clip, tokenizer, data, **overrides)
    lm_cfg = TrainConfig(steps=pretrain_steps(train_cfg, data.lm_steps), seed=train_cfg.seed, device=train_cfg.device)
    lm, lm_hist = pretrain_lm(lm_cfg, cfg.lm, texts)
    model = build(Flamingo, cfg, train_cfg.seed)
    model.vision.load_state_dict(clip.visual.state_dict())
    model.lm.load_state_dict(lm.state_dict())
    model.to(device)
    mixture = Mixture(model, [data.weights[s] for s in SOURCES], data.gate_lr_scale)
    evaluate = ((lambda m: evaluate_flamingo(m.model, tokenizer, curve["captions"], curve.get("media", {}),
                                             fewshot=False)) if curve else None)
    batches = mixture_batches(sources, data, torch.Generator().manual_seed(train_cfg.seed), device, tokenizer.pad_id)
    hist = fit(mixture, batches, train_cfg, evaluate, desc="Flamingo")
    last = lm_hist.steps[-1]
    return model, hist, {"lm_pretrain_steps": last["step"], "lm_pretrain_seconds": last["seconds"],
                         "lm_loss": last["loss"]}


def load_flamingo(path, device: str = "cpu") -> tuple[Flamingo, Tokenizer, dict]:
    """Rebuild a trained Flamingo and its tokenizer from a checkpoint written by the CLI."""
    return load_run(path, "flamingo", Flamingo, FlamingoConfig, device)
