"""How the CM3-style model is trained and scored on the shapes world: the recipe behind `train cm3` (`draw` reads its
checkpoints too: recipes/dalle.py), the notebook and the benchmark.

Documents: 50k training-split scenes (half two-object) as caption + image tokens, the image first in half of them;
batch 64, lr 2e-3, 1,600 steps. CM3 draws span ends uniformly over the document; in 5 CPU minutes a tiny model cannot
learn every kind of hole that way, so each document draws one of five kinds (`SPAN_KINDS`): none (the plain causal
LM), the whole caption, the whole image, the grid rows one object covers (`object_rows`), or one or two caption
words. The paper's own spans are a sixth kind, "random" (`random_spans`), for comparison: `span_mix={"random": 1.0}`
trains the paper's way. `span_mix={"none": 1.0}` gives the left-to-right baseline on the same documents. Masking is
drawn afresh for every batch from one seeded generator. Measurements: bench/README.md, "Text to image and CM3".
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import torch

from minivlm.data.datasets import ShapesData, eval_set
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import COLOURS, Obj, Scene, allowed, caption_meaning
from minivlm.evaluate import meaning_matches
from minivlm.models.cm3 import CM3, CM3Config
from minivlm.models.judge import colours_and_shapes
from minivlm.models.vqvae import VQVAE, pixels
from minivlm.recipes.dalle import TEXT_LEN, ImageTokenRecipe, prompt_captions, score_t2i, text_tokenizer, token_data
from minivlm.recipes.recipe import Recipe
from minivlm.recipes.vq import eval_sets, evaluate_judge, tokenize
from minivlm.train import History, TrainConfig, build, fit, pick_device, scenes_for

SPAN_KINDS = ("none", "caption", "image", "region", "phrase")  # the course's task-shaped kinds
MIX_KINDS = SPAN_KINDS + ("random",)  # what `span_mix` may name: those and the paper's random spans


@dataclass(frozen=True)
class CM3Recipe(ImageTokenRecipe):
    name: ClassVar[str] = "cm3"
    title: ClassVar[str] = "CM3"
    summary: ClassVar[str] = "CM3: causally masked documents of caption and image tokens: caption, draw and infill"
    tasks: ClassVar[tuple[str, ...]] = ("caption_em_1obj", "caption_em_2obj", "t2i_match_1obj",
                                        "t2i_match_1obj_rerank", "samples_per_s")
    model_cls: ClassVar[type] = CM3
    config_cls: ClassVar[type] = CM3Config
    headline: ClassVar[tuple[str, ...]] = ("caption_em_1obj", "caption_em_1obj_l2r", "caption_em_2obj",
                                           "t2i_match_1obj", "t2i_match_1obj_rerank8", "infill_judge_acc",
                                           "infill_text_acc", "judge_acc")

    steps: int = 1600  # 103k documents: the 300 s of the benchmark
    p_image_first: float = 0.5
    span_mix: dict = field(default_factory=lambda: {"none": 0.15, "caption": 0.15, "image": 0.2, "region": 0.35,
                                                    "phrase": 0.15})  # region share 0.35: bench/README.md

    def __post_init__(self):
        check_span_mix(self.span_mix)

    def fit(self, cfg, deps, curves):
        model, history = train_cm3(cfg, deps["vq"], self)
        return model, history, {}

    def score(self, model, vq, judge, clip):
        return evaluate_cm3(model, vq, judge, clip, temperature=self.temperature)

    def samples(self, model, vq, captions, n=8, seed=0):
        return sample_pictures(model, vq, captions, n, self.temperature, seed=seed)


def cm3_config(vq: VQVAE, **overrides) -> CM3Config:
    tok = text_tokenizer()
    return CM3Config(text_vocab=len(tok), codes=vq.cfg.codes, grid=vq.cfg.grid, pad_id=tok.pad_id, bos_id=tok.bos_id,
                     eos_id=tok.eos_id, unk_id=tok.unk_id, image_id=tok.image_id,
                     sentinel_ids=tuple(tok.index[f"<mask:{i}>"] for i in range(8)), **overrides)


def object_rows(obj: Obj, grid: int, res: int = 32) -> tuple[int, int]:
    """The grid rows [first, last + 1) that an object's bounding box touches: its tokens, a contiguous run of the
    row-major image tokens."""
    cell = res / grid
    first = max(0, math.floor((obj.y - obj.r) / cell))
    last = min(grid - 1, math.floor((obj.y + obj.r) / cell))
    return first, last + 1


def words_of(tokens: torch.Tensor, tok: Tokenizer) -> list[int]:
    """A padded caption row (L,) with <bos>/<eos> -> its word ids."""
    row = tokens.tolist()
    return row[1:row.index(tok.eos_id)]


def check_span_mix(span_mix) -> None:
    """A ValueError naming `span_mix` unless it maps kinds of MIX_KINDS to finite weights >= 0, not all 0."""
    if not isinstance(span_mix, dict) or not span_mix:
        raise ValueError(f"span_mix: expected a non-empty dict of kind -> weight, got {span_mix!r}")
    unknown = sorted(set(span_mix) - set(MIX_KINDS))
    if unknown:
        raise ValueError(f"span_mix: expected kinds among {MIX_KINDS}, got {unknown}")
    bad = {k: w for k, w in span_mix.items()
           if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0}
    if bad:
        raise ValueError(f"span_mix: expected finite weights >= 0, got {bad}")
    if sum(span_mix.values()) <= 0:
        raise ValueError(f"span_mix: expected at least one weight > 0, got {span_mix}")


def span_count(rng: random.Random, most: int, mean: float = 1.0) -> int:
    """CM3's number of spans, n = clamp(Poisson(mean), 1, most): the Poisson draw by inverting its CDF with one
    uniform, stopped at `most` (everything above it is clamped there anyway)."""
    u, k, p = rng.random(), 0, math.exp(-mean)
    cdf = p
    while u > cdf and k < most:
        k += 1
        p *= mean / k
        cdf += p
    return min(max(k, 1), most)


def random_spans(length: int, rng: random.Random, max_spans: int = 8) -> list[tuple[int, int]]:
    """The paper's spans in a document of `length` tokens (CM3 Sec. 2): n = clamp(Poisson(1), 1, 16) spans, each
    between two end points drawn uniformly over the document, none overlapping; we clamp at `max_spans` (our 8
    sentinels) and at `length`. Drawing end points until no two spans overlap makes every set of n non-empty,
    non-overlapping spans equally likely; we draw that set directly: 2n distinct points of [0, length + n), sorted,
    the k-th moved down by k // 2, are the ends s_0 < s_1 <= s_2 < s_3 <= ... in [0, length] of n such spans, one to
    one. Sorted [start, end) pairs."""
    n = span_count(rng, min(max_spans, length))
    points = sorted(rng.sample(range(length + n), 2 * n))
    ends = [p - k // 2 for k, p in enumerate(points)]
    return list(zip(ends[0::2], ends[1::2]))


def choose_span(kind: str, n_words: int, image_first: bool, scene: Scene, grid: int,
                rng: random.Random, max_spans: int = 8) -> list[tuple[int, int]]:
    """The spans of a MIX_KINDS kind in a document body (see `CM3.document` for its layout): one span or none for the
    five SPAN_KINDS, up to `max_spans` (the sentinels) for "random"."""
    n = grid * grid
    words0, codes0 = (n + 1, 1) if image_first else (0, n_words + 1)  # where the words and the codes start
    if kind == "none":
        return []
    if kind == "caption":
        return [(words0, words0 + n_words)]
    if kind == "image":
        return [(codes0, codes0 + n)]
    if kind == "region":
        first, last = object_rows(rng.choice(scene.objects), grid)
        return [(codes0 + first * grid, codes0 + last * grid)]
    if kind == "phrase":
        length = rng.choice((1, 2))
        start = rng.randrange(n_words - length + 1)
        return [(words0 + start, words0 + start + length)]
    if kind == "random":
        return random_spans(n_words + 1 + n, rng, max_spans)  # over the whole body: words, <image>, codes
    raise ValueError(f"kind: expected one of {MIX_KINDS}, got {kind!r}")


def pad_rows(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


def document_batches(model: CM3, words: list[list[int]], codes: torch.Tensor, scenes: list[Scene],
                     recipe: CM3Recipe, seed: int, device="cpu") -> Callable[[], tuple[torch.Tensor]]:
    """A function giving one padded batch (B, T) of masked training sequences a call: recipe.batch_size documents
    (word ids, codes (N, grid²), scenes) drawn at random, each in a random order with spans of a kind drawn from
    recipe.span_mix, all from one generator seeded by `seed`."""
    tok = text_tokenizer()
    rng = random.Random(f"cm3:{seed}")
    kinds, weights = list(recipe.span_mix), list(recipe.span_mix.values())
    grid, max_spans = model.cfg.grid, len(model.cfg.sentinel_ids)

    def next_batch():
        rows = []
        for i in rng.sample(range(len(words)), recipe.batch_size):
            first = rng.random() < recipe.p_image_first
            body = model.document(words[i], codes[i].tolist(), first)
            kind = rng.choices(kinds, weights)[0]
            spans = choose_span(kind, len(words[i]), first, scenes[i], grid, rng, max_spans)
            rows.append(model.masked(body, spans))
        return (pad_rows(rows, tok.pad_id).to(device),)  # (B, T)
    return next_batch


def recipe_config(vq: VQVAE, recipe: CM3Recipe) -> CM3Config:
    """`cm3_config`, long enough for the recipe's documents: one span (the default max_len) unless the mix has
    random spans, which may move one span per sentinel, two sentinels each."""
    cfg = cm3_config(vq)
    if recipe.span_mix.get("random", 0) > 0:
        longest = TEXT_LEN + 1 + vq.cfg.grid ** 2 + 2 * len(cfg.sentinel_ids)  # <bos> words <eos>, <image>, codes
        cfg = dataclasses.replace(cfg, max_len=max(cfg.max_len, longest))
    return cfg


def train_cm3(train_cfg: TrainConfig, vq: VQVAE, recipe: CM3Recipe = CM3Recipe(), evaluate=None,
              model_cfg: CM3Config | None = None) -> tuple[CM3, History]:
    """Tokenize recipe.n scenes with the frozen tokenizer and train a CM3 on causally masked documents
    (`document_batches`), at the recipe's batch size and lr under `train_cfg`'s budget."""
    device = pick_device(train_cfg.device)
    data, codes = token_data(vq, scenes_for(train_cfg, recipe.n, recipe.batch_size), train_cfg.seed, recipe.p_two)
    tok = text_tokenizer()
    words = [words_of(t, tok) for t in data.tokens]
    model = build(CM3, model_cfg or recipe_config(vq, recipe), train_cfg.seed).to(device)
    next_batch = document_batches(model, words, codes, data.scenes, recipe, train_cfg.seed, device)
    cfg = dataclasses.replace(train_cfg, batch_size=recipe.batch_size, lr=recipe.lr)
    return model, fit(model, next_batch, cfg, evaluate, desc="CM3")


# --- the three uses, from prompts alone ---------------------------------------------------------------------------

def caption_images(model: CM3, codes: torch.Tensor, masked: bool = True) -> list[str]:
    """Image tokens (N, grid²) -> captions: with `masked`, CM3's prompt <bos> <mask:0> <image> codes <mask:0>;
    else plain left to right, <bos> <image> codes."""
    cfg, tok = model.cfg, text_tokenizer()
    s0 = cfg.sentinel_ids[0]
    prompts = [[cfg.bos_id] + ([s0] if masked else []) + model.document([], row, image_first=False)
               + ([s0] if masked else []) for row in codes.tolist()]
    return [tok.decode(w) for w in model.complete(prompts, tok.max_len, "text")]


def generate_images(model: CM3, captions: list[str], n: int = 8, temperature: float = CM3Recipe.temperature, top_k=None,
                    seed: int = 0) -> torch.Tensor:
    """Captions -> n sampled image-token grids each (P, n, grid²), left to right after <bos> caption <image>."""
    tok, cfg = text_tokenizer(), model.cfg
    prompts = [[cfg.bos_id] + tok.encode(c)[1:-1] + [cfg.image_id] for c in captions for _ in range(n)]
    generator = torch.Generator(model.lm.tok.weight.device).manual_seed(seed)
    out = model.complete(prompts, cfg.grid ** 2, "image", temperature, top_k, generator)
    return torch.tensor(out).reshape(len(captions), n, -1)  # (P, n, grid²)


def sample_pictures(model: CM3, vq: VQVAE, captions: list[str], n: int = 8,
                    temperature: float = CM3Recipe.temperature, top_k=None, seed: int = 0) -> np.ndarray:
    """Captions -> n sampled pictures each, uint8 (P, n, 32, 32, 3): `generate_images` decoded by the tokenizer."""
    codes = generate_images(model, captions, n, temperature, top_k, seed)  # (P, n, grid²)
    pictures = pixels(vq.decode(codes.flatten(0, 1)))  # (P n, 32, 32, 3)
    return pictures.reshape(len(captions), n, *pictures.shape[1:])


def recolour(scene: Scene, rng: random.Random, which: int = -1) -> tuple[str, str]:
    """An edit for infilling: the scene's caption with object `which` (the last by default: the second of two) in
    another colour, still a seen colour×shape pair -> (new caption, new colour)."""
    obj = scene.objects[which]
    colour = rng.choice([c for c in COLOURS if c != obj.colour and allowed(c, obj.shape, "train")])
    objects = list(scene.objects)
    objects[which] = dataclasses.replace(obj, colour=colour)
    return Scene(tuple(objects), scene.relation).caption(), colour


def infill_images(model: CM3, captions: list[str], codes: torch.Tensor, spans: list[tuple[int, int]],
                  temperature: float = CM3Recipe.temperature, top_k=None, seed: int = 0) -> torch.Tensor:
    """Image tokens (N, grid²) with the code range spans[i] = [a, b) of each redrawn to fit captions[i] -> (N, grid²).
    CM3 prompt: <bos> caption <image> codes[:a] <mask:0> codes[b:] <mask:0>, then b - a image tokens."""
    tok, cfg = text_tokenizer(), model.cfg
    out = codes.clone()
    generator = torch.Generator(model.lm.tok.weight.device).manual_seed(seed)
    by_len: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(spans):
        by_len.setdefault(b - a, []).append(i)
    for length, rows in sorted(by_len.items()):  # one generation call per hole size
        prompts = []
        for i in rows:
            words = tok.encode(captions[i])[1:-1]
            body = model.document(words, codes[i].tolist(), image_first=False)
            a, b = spans[i]
            masked = model.masked(body, [(len(words) + 1 + a, len(words) + 1 + b)])
            prompts.append(masked[:-(length + 1)])  # drop the span's tokens and <eos>: the prompt ends at <mask:0>
        new = model.complete(prompts, length, "image", temperature, top_k, generator)
        for i, fill in zip(rows, new):
            out[i, spans[i][0]:spans[i][1]] = torch.tensor(fill)
    return out


# --- scoring ------------------------------------------------------------------------------------------------------

def eval_data(vq: VQVAE, name: str, count: int) -> tuple[ShapesData, torch.Tensor]:
    data = eval_set(name, text_tokenizer()).subset(range(count))
    return data, tokenize(vq, data.images)


@torch.no_grad()
def evaluate_cm3(model: CM3, vq: VQVAE, judge, clip=None, n_caption: int = 300, n_infill: int = 200,
                 seed: int = 0, temperature: float = CM3Recipe.temperature, top_k=None,
                 infill_temperature: float = 0.0) -> dict[str, float]:
    """caption_em_1obj (masked-caption prompt), caption_em_1obj_l2r, caption_em_2obj; t2i_match_1obj (8 samples at
    `temperature`, `recipes.dalle`'s prompts and judge); infill_judge_acc (recolour one object by refilling its
    rows; greedy by default: an edit wants the most likely fill, not variety), infill_judge_acc_2obj (recolour the
    second of two objects; its rows may hold part of the first, which is then redrawn too) and infill_text_acc
    (fill in the masked colour word)."""
    model.eval()
    rng = random.Random(f"cm3-eval:{seed}")
    m = {}
    one, one_codes = eval_data(vq, "zeroshot", max(n_caption, n_infill))
    two, two_codes = eval_data(vq, "two", n_caption)
    m["caption_em_1obj"] = float(meaning_matches(caption_images(model, one_codes[:n_caption]),
                                                 one.scenes[:n_caption]).mean())
    m["caption_em_1obj_l2r"] = float(meaning_matches(caption_images(model, one_codes[:n_caption], masked=False),
                                                     one.scenes[:n_caption]).mean())
    m["caption_em_2obj"] = float(meaning_matches(caption_images(model, two_codes), two.scenes).mean())
    captions = prompt_captions("1obj")
    m.update(score_t2i(judge, clip, sample_pictures(model, vq, captions, 8, temperature, top_k, seed), captions,
                       "1obj"))
    m["infill_judge_acc"] = infill_accuracy(model, vq, judge, one.scenes[:n_infill], one_codes[:n_infill], rng,
                                            infill_temperature, top_k, seed)
    two_edit = min(n_infill, len(two))
    m["infill_judge_acc_2obj"] = infill_accuracy(model, vq, judge, two.scenes[:two_edit], two_codes[:two_edit], rng,
                                                 infill_temperature, top_k, seed)
    m["infill_text_acc"] = infill_colour_words(model, one_codes[:n_infill], one.scenes[:n_infill])
    return m


def infill_accuracy(model: CM3, vq: VQVAE, judge, scenes: list[Scene], codes: torch.Tensor, rng: random.Random,
                    temperature: float = 0.0, top_k=None, seed: int = 0) -> float:
    """Recolour the last object of each scene by refilling the grid rows it covers (`recolour`, `object_rows`) ->
    the fraction of pictures in which the judge reads the edited caption's colours and shapes."""
    edits = [recolour(s, rng) for s in scenes]
    grid = vq.cfg.grid
    spans = [tuple(r * grid for r in object_rows(s.objects[-1], grid)) for s in scenes]
    filled = infill_images(model, [e[0] for e in edits], codes, spans, temperature, top_k, seed)
    preds = judge.predict(vq.decode(filled))
    return float(np.mean([colours_and_shapes(p) == colours_and_shapes(caption_meaning(e[0]))
                          for p, e in zip(preds, edits)]))


def infill_colour_words(model: CM3, codes: torch.Tensor, scenes: list[Scene]) -> float:
    """Mask the colour word of each one-object caption (<bos> a large <mask:0> star <image> codes <mask:0>) and let
    the model write it: the fraction it gets right."""
    tok, cfg = text_tokenizer(), model.cfg
    prompts = []
    for row, scene in zip(codes.tolist(), scenes):
        words = tok.encode(scene.caption())[1:-1]  # a, size, colour, shape
        body = model.document(words, row, image_first=False)
        prompts.append(model.masked(body, [(2, 3)])[:-2])  # ends at the tail's <mask:0>
    said = model.complete(prompts, 2, "text")
    return float(np.mean([len(w) > 0 and tok.vocab[w[0]] == s.objects[0].colour for w, s in zip(said, scenes)]))
