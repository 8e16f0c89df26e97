"""How the DALL-E-style model is trained and scored on the shapes world: the recipe behind `train dalle`, the `draw`
verb (for a dalle or a cm3 checkpoint), the notebook and the benchmark.

Data: 50k training-split scenes, half two-object, turned into 64 image tokens each by a trained tokenizer (once,
before training). Model: `Dalle`, 4 layers of width 128, batch 64, lr 2e-3, 2,000 steps. Scoring follows DALL-E's
own evaluation at toy scale: 8 samples per caption at temperature 0.7, decoded, and the judge says whether each shows
what the caption asks (colour and shape of every object; `t2i_exact_*` also sizes and relation); reranking keeps the
sample the toy CLIP scores highest (the paper reranks 512; we rerank 8). Measurements: bench/README.md, "Text to
image and CM3".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from minivlm.data.datasets import ShapesData, eval_set, make_shapes, shuffled_batches
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import caption_meaning
from minivlm.models.dalle import Dalle, DalleConfig
from minivlm.models.judge import colours_and_shapes
from minivlm.models.vqvae import VQVAE, pixels
from minivlm.recipes.clip import CLIPRecipe
from minivlm.recipes.recipe import Recipe, from_settings
from minivlm.recipes.runs import build_from
from minivlm.recipes.vq import JudgeRecipe, VQRecipe, eval_sets, evaluate_judge, load_vq, tokenize
from minivlm.train import History, TrainConfig, build, fit, load_checkpoint, pick_device, scenes_for

TEXT_LEN = 14  # <bos> + 12 words (the longest two-object caption) + <eos>
PROMPT_SETS = {"1obj": ("zeroshot", 64), "2obj": ("two", 64), "heldout": ("heldout", 32)}  # eval set, captions


@dataclass(frozen=True)
class ImageTokenRecipe(Recipe):
    """What DALL-E and CM3 share: training on the tokenizer's codes of rendered scenes, pictures scored by the
    judge and reranked by a toy CLIP. Not a system of its own (no name): each subclass says how it trains
    (`fit`), scores (`score`) and samples (`samples`)."""
    family: ClassVar[str] = "images as tokens"
    eval_roles: ClassVar[tuple[str, ...]] = ("vq", "judge")
    curves: ClassVar[tuple[str, ...]] = ()  # the loss only: drawing and judging pictures is the slow part

    batch_size: int = 64
    lr: float = 2e-3
    n: int = 50_000  # rendered training-split scenes
    p_two: float = 0.5
    temperature: float = 0.7  # sampling, in the evaluation and `draw`
    judge_steps: int = 3200  # the judge that scores the pictures (and the tokenizer's curves)
    vq_steps: int = 4450  # the image tokenizer
    clip_steps: int = 3750  # the CLIP that reranks the samples

    def prerequisites(self):
        """The judge, the tokenizer scored by that judge, and the reranking CLIP."""
        return {"judge": (JudgeRecipe(), self.judge_steps), "vq": (VQRecipe(judge_steps=self.judge_steps), self.vq_steps),
                "clip": (CLIPRecipe(), self.clip_steps)}

    def score(self, model, vq: VQVAE, judge, clip) -> dict:
        raise NotImplementedError

    def samples(self, model, vq: VQVAE, captions: list[str], n: int = 8, seed: int = 0) -> np.ndarray:
        """n pictures per caption at the recipe's temperature, uint8 (P, n, 32, 32, 3)."""
        raise NotImplementedError

    def evaluate(self, model, deps):
        return {**self.score(model, deps["vq"], deps["judge"], deps.get("clip")),
                **evaluate_judge(deps["judge"], eval_sets(("mixed",)))}

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the loss curve, samples.png and a results table on stdout."""
        super().report(model, metrics, out, history, deps)
        write_samples(self, model, deps["vq"], out)

    def tokenizer_extra(self, model):
        return {"vocab": text_tokenizer().vocab, "max_len": TEXT_LEN}


@dataclass(frozen=True)
class DalleRecipe(ImageTokenRecipe):
    name: ClassVar[str] = "dalle"
    title: ClassVar[str] = "DALL-E"
    summary: ClassVar[str] = "DALL-E: one causal transformer over caption tokens then the tokenizer's image codes"
    tasks: ClassVar[tuple[str, ...]] = ("t2i_match_1obj", "t2i_match_2obj", "t2i_match_1obj_rerank", "samples_per_s")
    model_cls: ClassVar[type] = Dalle
    config_cls: ClassVar[type] = DalleConfig
    verbs: ClassVar[tuple[str, ...]] = ("draw",)  # for a cm3 checkpoint too
    headline: ClassVar[tuple[str, ...]] = ("t2i_match_1obj", "t2i_match_1obj_rerank8", "t2i_match_2obj",
                                           "t2i_exact_2obj", "t2i_match_heldout", "judge_acc")

    steps: int = 2000  # 128k samples: the 360 s of the benchmark

    def fit(self, cfg, deps, curves):
        model, history = train_dalle(cfg, deps["vq"], self)
        return model, history, {}

    def score(self, model, vq, judge, clip):
        return evaluate_dalle(model, vq, judge, clip, temperature=self.temperature)

    def samples(self, model, vq, captions, n=8, seed=0):
        return sample_pictures(model, vq, captions, n, self.temperature, seed=seed)


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


def train_dalle(train_cfg: TrainConfig, vq: VQVAE, recipe: DalleRecipe = DalleRecipe(), evaluate=None,
                model_cfg: DalleConfig | None = None) -> tuple[Dalle, History]:
    """Tokenize recipe.n scenes with the (frozen) tokenizer and train a Dalle on [caption, image tokens], at the
    recipe's batch size and lr under `train_cfg`'s budget."""
    device = pick_device(train_cfg.device)
    data, codes = token_data(vq, scenes_for(train_cfg, recipe.n, recipe.batch_size), train_cfg.seed, recipe.p_two)
    text, codes = data.tokens.to(device), codes.to(device)  # (N, text_len), (N, grid²)
    model = build(Dalle, model_cfg or dalle_config(vq), train_cfg.seed).to(device)
    batches = shuffled_batches(len(data), recipe.batch_size, torch.Generator().manual_seed(train_cfg.seed))

    def next_batch():
        idx = next(batches).to(device)
        return text[idx], codes[idx]

    cfg = dataclasses.replace(train_cfg, batch_size=recipe.batch_size, lr=recipe.lr)
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
def sample_pictures(model: Dalle, vq: VQVAE, captions: list[str], n: int = 8,
                    temperature: float = DalleRecipe.temperature,
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
                   temperature: float = DalleRecipe.temperature, top_k: int | None = None,
                   seed: int = 0) -> dict[str, float]:
    """t2i_match_<kind> for every kind of prompt (and _rerank<n> with a CLIP): n samples per caption."""
    model.eval()
    m = {}
    for kind in kinds:
        captions = prompt_captions(kind)
        pictures = sample_pictures(model, vq, captions, n, temperature, top_k, seed)  # (P, n, 32, 32, 3)
        m.update(score_t2i(judge, clip, pictures, captions, kind))
    return m


# --- pictures on disk: the report's sample sheet and the `draw` verb ------------------------------------------------

def sample_sheet(pictures: np.ndarray, captions: list[str], title: str):
    """One row of samples per caption."""
    P, n = pictures.shape[:2]
    fig, axes = plt.subplots(P, n, figsize=(1.1 * n, 1.25 * P), squeeze=False)
    for i in range(P):
        for j in range(n):
            axes[i][j].imshow(pictures[i, j], interpolation="nearest")
            axes[i][j].axis("off")
        axes[i][0].set_title(captions[i], fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_samples(recipe, model, vq: VQVAE, out: Path) -> None:
    """samples.png: 8 samples (not reranked) for three one-object and three two-object evaluation captions."""
    captions = prompt_captions("1obj")[:3] + prompt_captions("2obj")[:3]
    sample_sheet(recipe.samples(model, vq, captions), captions, f"{recipe.name}: 8 samples per caption, not reranked"
                 ).savefig(out / "samples.png", dpi=110)
    plt.close("all")


def save_grid(pictures: np.ndarray, path, scale: int = 4, gap: int = 2) -> None:
    """uint8 pictures (n, S, S, 3) -> one PNG row, each picture enlarged `scale` times, grey gaps between."""
    n, s = len(pictures), pictures.shape[1] * scale
    sheet = np.full((s, n * s + (n - 1) * gap, 3), 96, dtype=np.uint8)  # (H, W, 3)
    for i, pic in enumerate(pictures):
        sheet[:, i * (s + gap):i * (s + gap) + s] = pic.repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(sheet).save(path)


def draw(checkpoint, caption: str, n: int = 8, out="grid.png", clip=None, seed: int = 0,
         device: str = "auto") -> None:
    """`draw CKPT "caption" --n 8 --out grid.png [--clip CLIP]`: n samples of a dalle or cm3 checkpoint (with the
    vq.pt beside it) in one PNG row, best first when a CLIP checkpoint is given."""
    from minivlm.recipes import registry  # the registry imports this module
    ckpt = load_checkpoint(checkpoint, ("dalle", "cm3"))
    cls = registry.get(ckpt["kind"])
    saved = ckpt["extra"].get("recipe")
    recipe = from_settings(cls, saved, checkpoint) if saved else cls()
    model = build_from(ckpt, checkpoint, cls.model_cls, cls.config_cls, device)
    vq_path = Path(checkpoint).parent / "vq.pt"
    if not vq_path.is_file():
        raise ValueError(f"checkpoint: no vq.pt beside {str(checkpoint)!r} (train dalle|cm3 writes one there)")
    vq, _ = load_vq(vq_path, device)
    text_tokenizer().encode_batch([caption])  # unknown words or a caption too long: a clear error here
    pictures = recipe.samples(model, vq, [caption], n, seed)[0]  # (n, 32, 32, 3)
    if clip:
        scores = clip_scores(CLIPRecipe().load(clip, device)[0], pictures[None], [caption])[0]  # (n,)
        order = scores.argsort(descending=True).numpy()
        pictures = pictures[order]
        print("CLIP scores, best first: " + " ".join(f"{s:.3f}" for s in scores[order].tolist()))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(pictures, out)
    print(f"wrote {out}: {n} samples of {caption!r}{', best first' if clip else ''}")
