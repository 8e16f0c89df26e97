"""The toy language model on the world's captions alone: the recipe behind `train lm`, and the text-only
pretraining that the generative VLMs (ClipCap, Flamingo) start from.

d128 x 2 layers x 4 heads (the course's captioner decoder), batch 128, lr 3e-3, AdamW (beta2 0.98, wd 0.05), 50
warm-up steps then cosine to 5 %, captions of 50 % two-object scenes, 700 steps. Validation text: the captions of
the fixed "mixed" evaluation set. Figures: bench/README.md, "The generative path".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch

from minivlm.data.datasets import eval_set, make_captions, shuffled_batches
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import caption_meaning
from minivlm.evaluate import is_sentence, token_metrics
from minivlm.models.lm import CausalLM, LMConfig
from minivlm.recipes.recipe import Recipe
from minivlm.recipes.runs import load_run
from minivlm.train import History, TrainConfig, build, fit, pick_device


@dataclass(frozen=True)
class LMRecipe(Recipe):
    name: ClassVar[str] = "lm"
    title: ClassVar[str] = "toy LM"
    family: ClassVar[str] = "generative"
    summary: ClassVar[str] = "a small GPT on the captions alone: the text half of the generative systems"
    tasks: ClassVar[tuple[str, ...]] = ("caption_ce", "samples_per_s")
    model_cls: ClassVar[type] = CausalLM
    config_cls: ClassVar[type] = LMConfig
    headline: ClassVar[tuple[str, ...]] = ("val_ce", "val_token_acc", "sample_valid_frac", "sample_two_object_frac")
    curves: ClassVar[tuple[str, ...]] = ("val_token_acc", "sample_valid_frac")

    steps: int = 700  # 90k samples: the 30 s that `train lm` took before budgets were steps
    n_train: int = 50_000
    p_two: float = 0.5  # share of two-object captions, as in the captioner's training data

    def fit(self, cfg, deps, curves):
        tokenizer = Tokenizer()
        model, history = train_lm(cfg, self, tokenizer, curve_tokens=val_tokens(tokenizer) if curves else None)
        return model, history, {}

    def evaluate(self, model, deps):
        tokenizer = Tokenizer()
        return evaluate_lm(model, tokenizer, val_tokens(tokenizer))

    def report(self, model, metrics, out, history=None, deps=None):
        """metrics.json, the curves, and a results table with the generated captions on stdout."""
        super().report(model, metrics, out, history, deps)
        plt.close("all")
        print(f"  greedy from <bos>: {metrics['greedy_sample']!r}")
        for caption in metrics["samples"]:
            print(f"  sampled:           {caption!r}")

    def tokenizer_extra(self, model):
        return {"vocab": Tokenizer().vocab}


def lm_config(tokenizer: Tokenizer, prefix_len: int = 0) -> LMConfig:
    """The LM for `tokenizer`'s vocabulary, with room for `prefix_len` embeddings (an image) before the text."""
    return LMConfig(vocab_size=len(tokenizer), max_len=tokenizer.max_len + prefix_len, pad_id=tokenizer.pad_id,
                    bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)


def blank_prefix(model: CausalLM, tokenizer: Tokenizer, n: int) -> torch.Tensor | None:
    """(n, K, D) zeros for the K = max_len - tokenizer.max_len context slots that an LM built by
    `lm_config(tokenizer, prefix_len=K)` keeps before the text, or None when K = 0. Pretrained with this blank prefix,
    the LM learns the text at the positions K.. where ClipCap's image prefix will later put it."""
    k = model.cfg.max_len - tokenizer.max_len
    return torch.zeros(n, k, model.cfg.dim, device=model.tok.weight.device) if k else None  # (n, K, D)


def val_tokens(tokenizer: Tokenizer) -> torch.Tensor:
    """(1000, L) the captions of the "mixed" evaluation set (half of them two-object), never seen in training."""
    return eval_set("mixed", tokenizer).tokens


@torch.no_grad()
def evaluate_lm(model: CausalLM, tokenizer: Tokenizer, tokens: torch.Tensor, n_samples: int = 500,
                seed: int = 0, show: int = 8) -> dict:
    """Teacher-forced cross-entropy and token accuracy on `tokens` (B, L); then generation from <bos> alone:
    the greedy caption, and `n_samples` sampled at temperature 1 (seeded): how many are sentences of the world,
    how many of those are two-object ones, and the first `show` of them. An LM with a `blank_prefix` reads it first."""
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    blank = lambda n: blank_prefix(model, tokenizer, n)  # (n, K, D) or None: the context an LM was trained in
    metrics = {f"val_{k}": v for k, v in token_metrics(model(tokens, blank(len(tokens))), tokens,
                                                       model.cfg.pad_id).items()}
    bos = torch.full((n_samples, 1), model.cfg.bos_id, device=device)  # (S, 1)
    greedy = tokenizer.decode(model.generate(bos[:1], model.cfg.max_len, blank(1))[0])
    gen = torch.Generator(device).manual_seed(seed)
    samples = [tokenizer.decode(t) for t in model.generate(bos, model.cfg.max_len, blank(n_samples),
                                                           temperature=1.0, generator=gen)]
    valid = [c for c in samples if is_sentence(c)]
    return {**metrics, "greedy_sample": greedy, "greedy_valid": is_sentence(greedy),
            "sample_valid_frac": len(valid) / n_samples,
            "sample_two_object_frac": float(np.mean([len(caption_meaning(c)) == 3 for c in valid])) if valid else 0.0,
            "samples": samples[:show]}


def train_lm(train_cfg: TrainConfig, data_cfg: LMRecipe = LMRecipe(), tokenizer: Tokenizer | None = None,
             curve_tokens: torch.Tensor | None = None, prefix_len: int = 0) -> tuple[CausalLM, History]:
    """Sample the training captions from the seed, build the LM from the seed and train it on next tokens, each
    caption after a `blank_prefix` of `prefix_len` embeddings (for a model that will read a prefix there).

    With `curve_tokens`, `evaluate_lm` runs on them every `train_cfg.eval_every_s` seconds for the curves.
    """
    tokenizer = tokenizer or Tokenizer()
    device = pick_device(train_cfg.device)
    tokens = tokenizer.encode_batch(make_captions(data_cfg.n_train, train_cfg.seed, data_cfg.p_two)).to(device)
    model = build(CausalLM, lm_config(tokenizer, prefix_len), train_cfg.seed).to(device)
    batches = shuffled_batches(len(tokens), train_cfg.batch_size, torch.Generator().manual_seed(train_cfg.seed))
    blank = blank_prefix(model, tokenizer, train_cfg.batch_size)  # (B, K, D) or None
    evaluate = (lambda m: evaluate_lm(m, tokenizer, curve_tokens)) if curve_tokens is not None else None
    return model, fit(model, lambda: (tokens[next(batches).to(device)], blank), train_cfg, evaluate, desc="toy LM")


def pretrain_steps(train_cfg: TrainConfig, steps: int) -> int:
    """Steps of text-only pretraining for a LM that will then be frozen (ClipCap, Flamingo): `steps` whatever the
    machine's speed, since a frozen LM trained longer is harder to steer, but at most a tenth of a steps budget (so a
    2-step smoke test stays short)."""
    return min(steps, max(1, train_cfg.steps // 10)) if train_cfg.steps else steps


def load_lm(path, device: str = "cpu") -> tuple[CausalLM, Tokenizer, dict]:
    """Rebuild a trained LM and its tokenizer from a checkpoint written by the CLI or `save_checkpoint`."""
    return load_run(path, "lm", CausalLM, LMConfig, device)
