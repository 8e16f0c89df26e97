"""Prompting a trained Flamingo with interleaved text and images: the greedy continuation of a prompt, and few-shot
prompts for a task given only by examples, the examples chosen at random or by RICES (Flamingo Sec. 3, App. A.2)."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from minivlm.data.documents import FORMATS, Media, document_text
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.models.flamingo import Flamingo

SHOTS = (0, 1, 2, 4)
FEWSHOT_TASKS = ("colour", "shape", "size")  # document formats with one-word answers


def media_tensor(media: np.ndarray) -> torch.Tensor:
    """uint8 (N, M, T, S, S, 3) -> float (N, M, T, 3, S, S) through `preprocess`, frame by frame."""
    n, m, t, s = media.shape[:4]
    if n * m * t == 0:
        raise ValueError(f"media: expected at least one image per row and one frame per image, got {media.shape}")
    x = preprocess(media.reshape(n * m * t, s, s, 3), s)  # (N*M*T, 3, S, S)
    return x.reshape(n, m, t, 3, s, s)  # (N, M, T, 3, S, S)


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
