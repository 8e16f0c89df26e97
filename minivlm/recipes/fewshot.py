"""Prompting a trained Flamingo with interleaved text and images: the greedy continuation of a prompt, few-shot
prompts for a task given only by examples, the examples chosen at random or by RICES (Flamingo Sec. 3, App. A.2),
and Frozen's fast binding (Tsimpoukelli et al. 2021, Sec. 4.2): invented words that name shapes only in the prompt.

The few-shot tasks (colour, shape, size) use answer formats of the training documents; fast binding is the one
task whose answers (the INVENTED words of data/documents.py) never occur in any training text."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from minivlm.data.documents import FORMATS, INVENTED, Media, document_text
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


def binding_prompts(queries: Media, pool: Media, k: int, words=INVENTED, ways: int = 2,
                    seed: int = 0) -> tuple[list[str], np.ndarray, list[str], list[dict]]:
    """Frozen's fast binding (Sec. 4.2): each prompt binds invented `words` to shapes by example only. For query i,
    min(k, ways) shapes (the query's and others drawn from the pool's) each get a word drawn from `words`; k pool
    images of those shapes, each shape min(k, ways)-th of the time, in random order, each followed by its word:
    "<image> dax . <image> blicket . <image>". k = 0 is the query alone; its answer is a word drawn at random,
    which no model can know (chance 1 / len(words)). Returns the texts, media (N, k+1, 1, S, S, 3), the answers
    (the word bound to the query's shape) and the bindings {shape: word} of each prompt."""
    if len(set(words)) < max(ways, 1) or ways < 1:
        raise ValueError(f"words: expected at least ways={ways} distinct words, got {words!r}")
    rng = random.Random(f"binding:{k}:{ways}:{seed}")
    pool_img, query_img = pool.media[:, 0, 0], queries.media[:, 0, 0]  # (P, S, S, 3), (N, S, S, 3)
    by_shape = {}
    for j, scenes in enumerate(pool.scenes):
        by_shape.setdefault(scenes[0].objects[0].shape, []).append(j)
    texts, media, answers, bindings = [], [], [], []
    for i in range(len(queries)):
        shape = queries.scenes[i][0].objects[0].shape
        others = sorted(s for s in by_shape if s != shape)
        shapes = [shape] + rng.sample(others, min(k, ways) - 1) if k else [shape]
        bound = dict(zip(shapes, rng.sample(list(words), len(shapes))))  # {shape: word}, fresh for every prompt
        order = [shapes[t % len(shapes)] for t in range(k)]  # each shape equally often (k = 4, 2 ways: twice)
        rng.shuffle(order)
        picks = [rng.choice(by_shape[s]) for s in order]
        texts.append(f"{document_text([bound[s] for s in order])} <image>".strip())
        media.append(np.concatenate([pool_img[picks], query_img[i:i + 1]])[:, None])  # (k+1, 1, S, S, 3)
        answers.append(bound[shape])
        bindings.append(bound)
    return texts, np.stack(media), answers, bindings


@torch.no_grad()
def next_word_probs(model: Flamingo, tokenizer: Tokenizer, texts: list[str], media: np.ndarray,
                    batch_size: int = 250) -> torch.Tensor:
    """(N, V): the model's next-token distribution after each prompt (all of one length in tokens)."""
    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer.encode(t)[:-1] for t in texts])  # (N, L): <bos> text, no <eos>
    out = [model(ids[i:i + batch_size].to(device), media_tensor(media[i:i + batch_size]).to(device))[:, -1]
           for i in range(0, len(texts), batch_size)]  # (b, V) each
    return torch.cat(out).softmax(dim=-1).cpu()  # (N, V)


def evaluate_binding(model: Flamingo, tokenizer: Tokenizer, queries: Media, pool: Media, shots=SHOTS,
                     words=INVENTED, ways: int = 2, seed: int = 0) -> dict:
    """Fast binding at each shot count k, on `binding_prompts`: {k: {
    "acc": the greedy answer is the word bound to the query's shape;
    "choice_acc": of the invented words, the most probable next one is that word (a forced choice);
    "chance": 1 / len(words), a guess among the invented words; "chance_prompt": a guess among the prompt's words;
    "says_invented": the greedy answer is any invented word; "says_prompt_word": one of the prompt's words;
    "says_shape": the greedy answer is the query's shape in the world's own words;
    "p_invented": the probability the model puts on all the invented words together}}."""
    ids = [tokenizer.index[w] for w in words]
    out = {}
    for k in shots:
        texts, media, answers, bindings = binding_prompts(queries, pool, k, words, ways, seed)
        said = continue_text(model, tokenizer, texts, media, max_new=2)
        probs = next_word_probs(model, tokenizer, texts, media)[:, ids]  # (N, len(words))
        choice = [words[j] for j in probs.argmax(dim=1).tolist()]
        shapes = [s[0].objects[0].shape for s in queries.scenes]
        out[k] = {"acc": float(np.mean([s == a for s, a in zip(said, answers)])),
                  "choice_acc": float(np.mean([c == a for c, a in zip(choice, answers)])),
                  "chance": 1 / len(words),
                  "chance_prompt": float(np.mean([1 / len(b) if k else 1 / len(words) for b in bindings])),
                  "says_invented": float(np.mean([s in words for s in said])),
                  "says_prompt_word": float(np.mean([s in b.values() for s, b in zip(said, bindings)])) if k else 0.0,
                  "says_shape": float(np.mean([s == sh for s, sh in zip(said, shapes)])),
                  "p_invented": float(probs.sum(dim=1).mean())}
    return out
