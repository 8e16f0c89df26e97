"""How the DALL-E-style model is trained and scored on the shapes world: the recipe behind `train dalle`, `draw`, the
notebook and the benchmark.

Data: 50k training-split scenes, half of them two-object, turned into 64 image tokens each by a trained tokenizer
(once, before training). Model: `Dalle`, 4 layers of width 128. Scoring follows DALL-E's own evaluation at toy
scale: draw 8 samples per caption, decode them, and let the judge say whether each shows what the caption asks
(the colour and shape of every object; `t2i_exact_*` also asks for sizes and relation); reranking keeps the sample
the toy CLIP scores highest against the caption (Sec. 2.5 of the paper reranks 512 samples; we rerank 8).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from minivlm.data.datasets import ShapesData, eval_set, make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import caption_meaning
from minivlm.models.dalle import Dalle, DalleConfig
from minivlm.models.judge import colours_and_shapes
from minivlm.models.vqvae import VQVAE, pixels
from minivlm.recipes.vq import tokenize
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for

TEXT_LEN = 14  # <bos> + 12 words (the longest two-object caption) + <eos>
TEMPERATURE = 0.7  # sampling temperature: 1.0 gave 0.83 of one-object samples right after 240 s, 0.7 gave 0.87
PROMPT_SETS = {"1obj": ("zeroshot", 64), "2obj": ("two", 64), "heldout": ("heldout", 32)}  # eval set, captions


@dataclass
class DalleData:
    n: int = 50_000
    p_two: float = 0.5
    batch_size: int = 64
    lr: float = 2e-3


def text_tokenizer() -> Tokenizer:
    return Tokenizer(max_len=TEXT_LEN)


def dalle_config(vq: VQVAE, **overrides) -> DalleConfig:
    """The model for this tokenizer's codebook and grid and the world's words."""
    tokenizer = text_tokenizer()
    return DalleConfig(text_vocab=len(tokenizer), codes=vq.cfg.codes, grid=vq.cfg.grid, text_len=TEXT_LEN,
                       image_id=tokenizer.image_id, **overrides)


def token_data(vq: VQVAE, n: int, seed, p_two: float = 0.5) -> tuple[ShapesData, torch.Tensor]:
    """n rendered training-split scenes with captions of TEXT_LEN tokens, and their image tokens (n, grid²)."""
    data = make_shapes(n, seed, text_tokenizer(), p_two=p_two, progress=True)
    return data, tokenize(vq, data.images)  # (n, grid²)


def train_dalle(train_cfg: TrainConfig, vq: VQVAE, data_cfg: DalleData = DalleData(), evaluate=None,
                model_cfg: DalleConfig | None = None) -> tuple[Dalle, History]:
    """Tokenize data_cfg.n scenes with the (frozen) tokenizer and train a Dalle on [caption, image tokens]."""
    device = pick_device(train_cfg.device)
    data, codes = token_data(vq, scenes_for(train_cfg, data_cfg.n, data_cfg.batch_size), train_cfg.seed, data_cfg.p_two)
    text, codes = data.tokens.to(device), codes.to(device)  # (N, text_len), (N, grid²)
    model = build(Dalle, model_cfg or dalle_config(vq), train_cfg.seed).to(device)
    batches = shuffled_batches(len(data), data_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed))

    def next_batch():
        idx = next(batches).to(device)
        return text[idx], codes[idx]

    cfg = dataclasses.replace(train_cfg, batch_size=data_cfg.batch_size, lr=data_cfg.lr)
    return model, fit(model, next_batch, cfg, evaluate, desc="DALL-E")


def prompt_captions(kind: str) -> list[str]:
    """The fixed evaluation captions of a PROMPT_SETS kind: distinct meanings from its evaluation set, in order."""
    if kind not in PROMPT_SETS:
        raise ValueError(f"kind: expected one of {sorted(PROMPT_SETS)}, got {kind!r}")
    name, count = PROMPT_SETS[kind]
    data, seen, out = eval_set(name, text_tokenizer()), set(), []
    for caption, meaning in zip(data.captions, data.meanings.tolist()):
        if meaning not in seen:
            seen.add(meaning)
            out.append(caption)
    return out[:count]


@torch.no_grad()
def draw(model: Dalle, vq: VQVAE, captions: list[str], n: int = 8, temperature: float = TEMPERATURE,
         top_k: int | None = None, seed: int = 0, batch: int = 256) -> np.ndarray:
    """Captions -> n sampled pictures each, uint8 (len(captions), n, 32, 32, 3); same seed, same pictures."""
    device = next(model.parameters()).device
    text = text_tokenizer().encode_batch(captions).to(device)  # (P, text_len)
    generator = torch.Generator(device).manual_seed(seed)
    per = max(1, batch // n)  # captions per generation call
    pictures = []
    for i in tqdm(range(0, len(text), per), desc="drawing", leave=False, disable=len(text) <= per):
        codes = model.generate(text[i:i + per], n, temperature, top_k, generator)  # (p, n, grid²)
        images = vq.decode(codes.flatten(0, 1).to(next(vq.parameters()).device))  # (p n, 3, 32, 32)
        pictures.append(pixels(images).reshape(len(codes), n, *images.shape[2:], 3))
    return np.concatenate(pictures)  # (P, n, 32, 32, 3)


@torch.no_grad()
def clip_scores(clip, pictures: np.ndarray, captions: list[str]) -> torch.Tensor:
    """CLIP's cosine similarity of every picture (P, n, 32, 32, 3) with its own caption -> (P, n)."""
    device = next(clip.parameters()).device
    P, n = pictures.shape[:2]
    images = clip.encode_image(preprocess(pictures.reshape(P * n, *pictures.shape[2:])).to(device))  # (P n, E)
    texts = clip.encode_text(Tokenizer().encode_batch(captions).to(device))  # (P, E)
    return (images.reshape(P, n, -1) * texts[:, None]).sum(-1).cpu()  # (P, n)


@torch.no_grad()
def judge_matches(judge, pictures: np.ndarray, captions: list[str]) -> dict[str, np.ndarray]:
    """Did the judge read what each caption asks? -> {"match": colours and shapes of every object, "exact": the
    whole meaning}, each bool (P, n)."""
    device = next(judge.parameters()).device
    P, n = pictures.shape[:2]
    preds = judge.predict(preprocess(pictures.reshape(P * n, *pictures.shape[2:])).to(device))
    truth = [caption_meaning(c) for c in captions]
    match = [colours_and_shapes(p) == colours_and_shapes(truth[i // n]) for i, p in enumerate(preds)]
    exact = [p == truth[i // n] for i, p in enumerate(preds)]
    return {"match": np.array(match).reshape(P, n), "exact": np.array(exact).reshape(P, n)}


def score_t2i(judge, clip, pictures: np.ndarray, captions: list[str], kind: str) -> dict[str, float]:
    """The judge's verdicts on all samples, and on CLIP's top-1 of each caption's samples when a CLIP is given."""
    verdict = judge_matches(judge, pictures, captions)
    m = {f"t2i_match_{kind}": float(verdict["match"].mean()), f"t2i_exact_{kind}": float(verdict["exact"].mean())}
    if clip is not None:
        best = clip_scores(clip, pictures, captions).argmax(1).numpy()  # (P,)
        rows = np.arange(len(captions))
        n = pictures.shape[1]
        m[f"t2i_match_{kind}_rerank{n}"] = float(verdict["match"][rows, best].mean())
        m[f"t2i_exact_{kind}_rerank{n}"] = float(verdict["exact"][rows, best].mean())
    return m


def evaluate_dalle(model: Dalle, vq: VQVAE, judge, clip=None, kinds=tuple(PROMPT_SETS), n: int = 8,
                   temperature: float = TEMPERATURE, top_k: int | None = None, seed: int = 0) -> dict[str, float]:
    """t2i_match_<kind> for every kind of prompt (and _rerank<n> with a CLIP): n samples per caption."""
    model.eval()
    m = {}
    for kind in kinds:
        captions = prompt_captions(kind)
        m.update(score_t2i(judge, clip, draw(model, vq, captions, n, temperature, top_k, seed), captions, kind))
    return m
