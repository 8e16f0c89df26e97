"""What every recipe does around a trained model: the run's statistics, its metrics and curves on disk, and
the model and tokenizer rebuilt from a checkpoint."""
from __future__ import annotations

import dataclasses
import json
import resource
import sys
from pathlib import Path

import torch

from minivlm.data.tokenizer import Tokenizer
from minivlm.plots import training_curves
from minivlm.train import History, load_checkpoint, pick_device

RUN_STATS = ("samples_seen", "train_seconds", "samples_per_s")  # kept in the checkpoint, reported again by eval


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_stats(model: torch.nn.Module, history: History, seed: int) -> dict:
    """How much training the model had and how fast, on what, from which seed."""
    last = history.steps[-1]
    return {"samples_seen": last["samples"], "train_seconds": last["seconds"],
            "samples_per_s": last["samples"] / last["seconds"], "steps": last["step"],
            "params": sum(p.numel() for p in model.parameters()),
            "device": str(next(model.parameters()).device), "seed": seed,
            "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def checkpoint_stats(model: torch.nn.Module, ckpt: dict) -> dict:
    """The `run_stats` of a loaded model that `eval` reports: its size, seed and the training figures saved."""
    return {"params": sum(p.numel() for p in model.parameters()), "seed": ckpt["seed"],
            **{k: ckpt["extra"].get(k) for k in RUN_STATS}, "device": str(next(model.parameters()).device)}


def write_metrics(out: Path, metrics: dict, history: History | None = None, curves=(), title: str = "") -> None:
    """metrics.json, and with a history also history.json and curves.png (loss, and the `curves` metrics)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if history is not None:
        (out / "history.json").write_text(json.dumps({"steps": history.steps, "evals": history.evals}) + "\n")
        training_curves(history, curves, title).savefig(out / "curves.png", dpi=110)


def show_eval(metrics: dict, out, write_report) -> None:
    """What `eval MODEL CKPT` does with its metrics: `write_report(metrics, out)` into the folder `out` when one
    was given, else the metrics as JSON on stdout."""
    if out:
        write_report(metrics, Path(out))
    else:
        json.dump(metrics, sys.stdout, indent=2)
        print()


def print_results(metrics: dict, headline) -> None:
    """A short table on stdout: the `headline` metrics, then how much training it took."""
    print(f"\nresults ({metrics['device']}, seed {metrics['seed']}, {metrics['params']:,} params)")
    width = max(len(k) for k in (*headline, "samples_seen"))
    for key in headline:
        print(f"  {key:<{width}} {metrics[key]:.3f}")
    print(f"  {'samples_seen':<{width}} {metrics['samples_seen']:,}  in {metrics['train_seconds']:.1f} s "
          f"({metrics['samples_per_s']:.0f} samples/s)")


def build_from(ckpt: dict, path, model_cls, config_cls, device: str = "cpu") -> torch.nn.Module:
    """The model a checkpoint read by `load_checkpoint` describes, its weights loaded, on `device`, in eval mode;
    weights that do not fit the checkpoint's own config are a ValueError naming `path`."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(ckpt["model_config"]) - fields)
    if unknown:
        raise ValueError(f"checkpoint: {str(path)!r} has config fields {config_cls.__name__} does not know: {unknown}")
    model = model_cls(config_cls(**ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint: {str(path)!r} weights do not fit its own config ({str(e)[:200]})") from None
    return model.to(pick_device(device)).eval()


def load_run(path, kind: str, model_cls, config_cls, device: str = "cpu") -> tuple[torch.nn.Module, Tokenizer, dict]:
    """Rebuild a trained model of `kind` and its tokenizer from a checkpoint written by `save_checkpoint` with
    extra={'vocab': tokenizer.vocab} (and 'max_len': tokenizer.max_len where the text is shorter than the model
    config's max_len, as after a prefix); a checkpoint without a vocab, or whose weights do not fit, is a ValueError."""
    ckpt = load_checkpoint(path, kind)
    if "vocab" not in ckpt["extra"]:
        raise ValueError(f"checkpoint: {str(path)!r} has no tokenizer vocabulary (save it with "
                         "extra={'vocab': tokenizer.vocab})")
    tokenizer = Tokenizer(ckpt["extra"]["vocab"], ckpt["extra"].get("max_len", ckpt["model_config"].get("max_len")))
    return build_from(ckpt, path, model_cls, config_cls, device), tokenizer, ckpt
