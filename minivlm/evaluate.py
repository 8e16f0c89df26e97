"""Metrics shared by the models: zero-shot classification from prompt embeddings, and retrieval recall@K.

A retrieved caption or image counts as correct when it *means* the same scene (`caption_meaning`): the world
repeats captions, and "A left of B" says the same as "B right of A".
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from minivlm.data.datasets import ShapesData
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import COLOURS, SHAPES, SIZES, caption_meaning

CLASSES = [(size, colour, shape) for size, colour, shape in itertools.product(SIZES, COLOURS, SHAPES)]  # 96


@torch.no_grad()
def embed_images(model, images: np.ndarray, batch_size: int = 500) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> (N, E) unit-norm image embeddings, through the one `preprocess`."""
    device = next(model.parameters()).device
    return torch.cat([model.encode_image(preprocess(images[i:i + batch_size], model.cfg.image_size).to(device))
                      for i in range(0, len(images), batch_size)]).cpu()  # (N, E)


@torch.no_grad()
def embed_texts(model, tokens: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, L) token ids -> (N, E) unit-norm text embeddings."""
    device = next(model.parameters()).device
    return torch.cat([model.encode_text(tokens[i:i + batch_size].to(device))
                      for i in range(0, len(tokens), batch_size)]).cpu()  # (N, E)


def zero_shot(model, data: ShapesData, tokenizer: Tokenizer) -> dict:
    """Classify single-object images among the 96 prompts "a {size} {colour} {shape}".

    Returns accuracy on the full label and on each attribute, plus `pred`/`true` class indices for confusions.
    """
    prompts = tokenizer.encode_batch([f"a {z} {c} {s}" for z, c, s in CLASSES])  # (96, L)
    logits = embed_images(model, data.images) @ embed_texts(model, prompts).T  # (N, 96)
    pred = logits.argmax(dim=1).numpy()
    true = np.array([CLASSES.index((o.size, o.colour, o.shape)) for o in (s.objects[0] for s in data.scenes)])
    attr = lambda k: float(np.mean([CLASSES[p][k] == CLASSES[t][k] for p, t in zip(pred, true)]))
    return {"acc": float(np.mean(pred == true)), "size_acc": attr(0), "colour_acc": attr(1),
            "shape_acc": attr(2), "pred": pred, "true": true}


def ranks(sim: torch.Tensor, query_keys: list, item_keys: list) -> np.ndarray:
    """For each query row of sim (Q, N): the 0-based rank of the best-scored item whose key equals the query's
    (N when no item matches)."""
    ids = {k: i for i, k in enumerate(dict.fromkeys(query_keys + item_keys))}
    q_ids = np.array([ids[k] for k in query_keys])  # (Q,)
    item_ids = np.array([ids[k] for k in item_keys])  # (N,)
    order = sim.argsort(dim=1, descending=True).numpy()  # (Q, N): items, best first
    match = item_ids[order] == q_ids[:, None]  # (Q, N): is the item at this rank a right answer?
    return np.where(match.any(axis=1), match.argmax(axis=1), sim.shape[1])  # (Q,)


def retrieval(model, data: ShapesData, ks=(1, 5, 10)) -> dict:
    """Image->text and text->image recall@K and median rank (1 = first), as open_clip reports them, among the
    N captions / N images of `data`."""
    img, txt = embed_images(model, data.images), embed_texts(model, data.tokens)  # (N, E), (N, E)
    sim = img @ txt.T  # (N, N)
    keys = [caption_meaning(c) for c in data.captions]
    out = {}
    for name, r in (("i2t", ranks(sim, keys, keys)), ("t2i", ranks(sim.T, keys, keys))):
        out.update({f"{name}_r{k}": float(np.mean(r < k)) for k in ks})
        out[f"{name}_median_rank"] = float(np.floor(np.median(r)) + 1)  # open_clip: floor(median) + 1
    return out
