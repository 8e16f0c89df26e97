"""The one small trainer every model uses: AdamW, warm-up + cosine, seeding, device choice, tqdm, checkpoints.

A model only needs `model.loss(*batch) -> scalar`. Training stops after `steps` optimiser steps or `seconds` of
training wall time, whichever comes first; time spent in evaluation callbacks is not counted as training time.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

import minivlm

CHECKPOINT_FORMAT = "minivlm-checkpoint-1"


@dataclass
class TrainConfig:
    steps: int | None = None
    seconds: float | None = None
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05  # on matrices only, as in nanoGPT's configure_optimizers
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 50
    min_lr_frac: float = 0.05  # cosine decays to this fraction of lr
    eval_every_s: float = 10.0  # training seconds between evaluation callbacks
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.steps is None and self.seconds is None:
            raise ValueError("steps, seconds: give at least one budget")
        if (self.steps is not None and self.steps <= 0) or (self.seconds is not None and self.seconds <= 0):
            raise ValueError(f"steps, seconds: budgets must be positive, got steps={self.steps} "
                             f"seconds={self.seconds}")


@dataclass
class History:
    """What happened during training: one row per step, one per evaluation."""
    steps: list[dict] = field(default_factory=list)  # step, seconds, samples, loss, lr
    evals: list[dict] = field(default_factory=list)  # step, seconds, samples, **metrics


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for 'cuda' without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device(name)


def build(model_cls, cfg, seed: int) -> torch.nn.Module:
    """Construct a model with its initial weights drawn from `seed`, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(cfg)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices and embeddings, none on biases, norms and scalars.

    A model may return {parameter name: factor} from `lr_scales()`: those parameters get their own group, trained at
    factor x the scheduled lr (Flamingo's tanh gates, see bench/README.md, "Flamingo"); `fit` keeps the factor."""
    scales = model.lr_scales() if hasattr(model, "lr_scales") else {}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for scale in sorted({1.0, *scales.values()}):
        params = [p for n, p in named if scales.get(n, 1.0) == scale]
        groups += [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay, "lr_scale": scale},
                   {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr_scale": scale}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas)


def scenes_for(cfg: TrainConfig, n: int, batch_size: int | None = None) -> int:
    """How many training examples a recipe should render: n, or under a steps budget no more than the steps x batch
    (`batch_size`, else cfg's) that it will see, so a 2-step smoke test does not draw 50 000 scenes."""
    return min(n, cfg.steps * (batch_size or cfg.batch_size)) if cfg.steps else n


def batch_len(batch) -> int:
    """How many samples a batch holds: len of its first tensor, or the sum over sub-batches for a mixture that takes
    one batch from each source (a tuple of tuples)."""
    first = batch[0]
    return len(first) if isinstance(first, torch.Tensor) else sum(batch_len(b) for b in batch)


def lr_at(step: int, progress: float, cfg: TrainConfig, warm_end: float = 0.0) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from lr to min_lr_frac·lr while progress goes from
    `warm_end` (the progress when warm-up ended) to 1, so the rate is continuous at the end of warm-up."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (progress - warm_end) / (1 - warm_end) if warm_end < 1 else 1.0
    cosine = 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * cosine)


def fit(model: torch.nn.Module, next_batch, cfg: TrainConfig, evaluate=None, desc: str = "training") -> History:
    """Train `model` on batches from `next_batch()` (tuples already on the model's device).

    `evaluate(model) -> dict` runs every `eval_every_s` training seconds and once at the end, with the model in
    eval mode and the training clock stopped. Progress (0 -> 1) is the larger of steps/steps and
    seconds/seconds, so the cosine schedule ends on time under either budget.
    """
    opt = make_optimizer(model, cfg)
    hist, step, samples, train_s, last_eval, warm_end = History(), 0, 0, 0.0, 0.0, 0.0
    total = cfg.steps if cfg.steps is not None else cfg.seconds
    bar = tqdm(total=total, desc=desc, unit="step" if cfg.steps is not None else "s", mininterval=1.0,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]")

    def progress() -> float:
        return max(step / cfg.steps if cfg.steps else 0.0, train_s / cfg.seconds if cfg.seconds else 0.0)

    def run_eval():
        model.eval()
        with torch.no_grad():
            metrics = evaluate(model)
        model.train()
        hist.evals.append({"step": step, "seconds": train_s, "samples": samples, **metrics})

    model.train()
    while progress() < 1.0:
        t0 = time.perf_counter()
        if step == cfg.warmup_steps:
            warm_end = progress()
        lr = lr_at(step, progress(), cfg, warm_end)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        batch = next_batch()
        loss = model.loss(*batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr ({cfg.lr}) or check data")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if hasattr(model, "after_step"):  # e.g. CLIP clamps its temperature here, as open_clip does
            model.after_step()
        loss_value = loss.item()  # also waits for the GPU, so the step time below is real
        dt = time.perf_counter() - t0
        step, samples, train_s = step + 1, samples + batch_len(batch), train_s + dt
        hist.steps.append({"step": step, "seconds": train_s, "samples": samples, "loss": loss_value, "lr": lr})
        bar.update(1 if cfg.steps is not None else min(dt, total - bar.n))
        bar.set_postfix(loss=f"{loss_value:.3f}", samples_per_s=f"{samples / train_s:.0f}", refresh=False)
        if evaluate is not None and train_s - last_eval >= cfg.eval_every_s:
            run_eval()
            last_eval = train_s
    bar.close()
    if evaluate is not None and (not hist.evals or hist.evals[-1]["step"] != step):
        run_eval()
    model.eval()
    return hist


def save_checkpoint(path, model: torch.nn.Module, kind: str, model_config, train_config: TrainConfig,
                    extra: dict | None = None) -> None:
    """state_dict + the full configs + seed + package version: everything needed to say how it was made."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "kind": kind, "version": minivlm.__version__,
                "seed": train_config.seed, "model_config": asdict(model_config),
                "train_config": asdict(train_config), "extra": extra or {},
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)


def load_checkpoint(path, kind: str | tuple[str, ...]) -> dict:
    """Read a checkpoint with weights_only=True (no pickled code runs). A missing, truncated, foreign or
    wrong-kind file (not `kind`, or not one of the tuple `kind`) is a ValueError that says which."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: no file at {str(path)!r}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or non-torch files
        raise ValueError(f"checkpoint: {str(path)!r} is not a readable torch checkpoint "
                         f"(truncated or another format: {type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: {str(path)!r} is not a minivlm checkpoint (no '{CHECKPOINT_FORMAT}' tag)")
    missing = [k for k in ("kind", "model_config", "state_dict", "extra", "seed") if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint: {str(path)!r} lacks {', '.join(missing)} (not written by save_checkpoint?)")
    bad = [k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"checkpoint: {str(path)!r} has NaN or inf in its weights ({', '.join(bad[:3])})")
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if ckpt["kind"] not in kinds:
        expected = repr(kinds[0]) if len(kinds) == 1 else " or ".join(map(repr, kinds))
        raise ValueError(f"checkpoint: {str(path)!r} holds a {ckpt['kind']!r} model, expected {expected}")
    return ckpt
