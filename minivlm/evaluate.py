"""Metrics shared by the models: zero-shot classification from prompt embeddings, retrieval recall@K, and for
generated text: token cross-entropy and accuracy, semantic exact match and BLEU.

A retrieved or generated caption counts as correct when it *means* the same scene (`caption_meaning`): the world
repeats captions, and "A left of B" says the same as "B right of A".
"""
from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import torch

from minivlm.data.datasets import ShapesData
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.concepts.next_token import next_token_targets
from minivlm.data.world import COLOURS, SHAPES, SIZES, Scene, caption_meaning

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


def token_metrics(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int,
                  loss_mask: torch.Tensor | None = None) -> dict:
    """Teacher-forced next-token cross-entropy (nats per target token) and top-1 accuracy over the targets
    that `next_token_loss` counts: logits (B, T, V), tokens (B, T), loss_mask (B, T) or None."""
    pred, target = next_token_targets(logits, tokens, pad_id, loss_mask)  # (N, V), (N,)
    return {"ce": float(torch.nn.functional.cross_entropy(pred, target)),
            "token_acc": float((pred.argmax(dim=-1) == target).float().mean())}


def is_sentence(caption: str) -> bool:
    """Whether a (generated) caption is a sentence of the world, one that `caption_meaning` can read."""
    try:
        caption_meaning(caption)
    except ValueError:
        return False
    return True


def meaning_matches(captions: list[str], scenes: list[Scene]) -> np.ndarray:
    """(N,) bool: whether caption i says what scene i shows, in any wording; a caption that is not a sentence
    of the world is wrong."""
    if len(captions) != len(scenes):
        raise ValueError(f"captions, scenes: expected one caption per scene, got {len(captions)} and {len(scenes)}")
    return np.array([is_sentence(c) and caption_meaning(c) == s.meaning() for c, s in zip(captions, scenes)])


def by_kind(scores: np.ndarray, scenes: list[Scene]) -> dict:
    """The mean of per-scene scores (N,) overall and for 1- and 2-object scenes: {"all", "1obj", "2obj"} (a
    kind with no scene is left out)."""
    n_objects = np.array([len(s.objects) for s in scenes])  # (N,)
    out = {"all": float(np.mean(scores))}
    out.update({f"{k}obj": float(np.mean(scores[n_objects == k])) for k in (1, 2) if (n_objects == k).any()})
    return out


def references(scene: Scene) -> list[str]:
    """Every caption that says what the scene shows: a two-object relation can be stated from either side."""
    return [scene.caption()] + ([scene.caption(flip=True)] if len(scene.objects) == 2 else [])


def caption_scores(captions: list[str], scenes: list[Scene]) -> dict:
    """What the captioning models report on a set of scenes: semantic exact match overall, on 1-object and on
    2-object scenes (`caption_em`, `caption_em_1obj`, `caption_em_2obj`), and corpus BLEU-4 against `references`."""
    em = by_kind(meaning_matches(captions, scenes), scenes)
    return {"caption_em": em["all"], **{f"caption_em_{k}": em[k] for k in ("1obj", "2obj") if k in em},
            "bleu4": bleu(captions, [references(s) for s in scenes])}


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def bleu(candidates: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al. 2002, section 2): the geometric mean of the clipped n-gram precisions
    p_1..p_max_n, each summed over the whole corpus, times the brevity penalty exp(1 - r/c) when the candidates'
    length c is below the reference length r (for each candidate, its reference closest in length).
    `references[i]` holds the acceptable references of `candidates[i]`; words are split on spaces; no smoothing,
    so a corpus without any matching n-gram of some order scores 0."""
    if len(candidates) == 0 or len(candidates) != len(references) or not all(references):
        raise ValueError(f"candidates, references: expected one or more references for each of N >= 1 candidates, "
                         f"got {len(candidates)} candidates and {len(references)} reference lists")
    matched, total, c, r = [0] * max_n, [0] * max_n, 0, 0
    for cand, refs in zip(candidates, references):
        words, ref_words = cand.split(), [ref.split() for ref in refs]
        c += len(words)
        r += min((abs(len(ref) - len(words)), len(ref)) for ref in ref_words)[1]  # closest, the shorter on a tie
        for n in range(1, max_n + 1):
            counts = _ngrams(words, n)
            most = Counter()  # the most times each n-gram occurs in any one reference: the clip
            for ref in ref_words:
                most |= _ngrams(ref, n)
            matched[n - 1] += sum(min(k, most[g]) for g, k in counts.items())
            total[n - 1] += sum(counts.values())
    if min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total)) / max_n
    brevity = min(0.0, 1 - r / c)  # log of the brevity penalty
    return math.exp(brevity + log_precision)
