"""Benchmark: toy CLIP's speed and accuracy targets (issue "Foundation", section 5).

Two trainings with the recipe of minivlm.recipes.clip, evaluated every few training seconds (evaluation time is
not training time): one whose whole budget (and cosine schedule) is --budget-samples (default 200k) samples, and
one of --seconds (default 150) training seconds. Then our model's training throughput against the same shape built
from torch.nn.TransformerEncoderLayer, in the same process. Prints the figures and writes
bench/results/clip_<device>.json. Run alone: two jobs side by side make every timing meaningless.

    python bench/clip_bench.py [--seconds 150] [--budget-samples 200000] [--seed 0] [--device auto]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch
from torch import nn

from minivlm.data.tokenizer import Tokenizer
from minivlm.models.clip import CLIP
from minivlm.data.datasets import make_shapes
from minivlm.data.images import preprocess
from minivlm.recipes.clip import CLIPRecipe, clip_config, eval_sets, evaluate_clip, train_clip
from minivlm.train import TrainConfig, build, make_optimizer, pick_device

THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99)


class TorchEncoderBlock(nn.Module):
    """torch.nn.TransformerEncoderLayer with our block's interface (pre-LN, GELU, 4x MLP, bool keep-mask)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                                batch_first=True, norm_first=True)

    def forward(self, x, mask=None):
        pad = None if mask is None else ~mask[:, 0, 0, :]  # (B, T): True where padding
        return self.layer(x, src_key_padding_mask=pad)


def torch_layers_clip(cfg, seed: int) -> CLIP:
    model = build(CLIP, cfg, seed)
    model.visual.blocks = nn.ModuleList(TorchEncoderBlock(cfg.vision_dim, cfg.heads) for _ in model.visual.blocks)
    model.text.blocks = nn.ModuleList(TorchEncoderBlock(cfg.text_dim, cfg.heads) for _ in model.text.blocks)
    return model


def throughput(model, images, tokens, batch: int, seconds: float) -> float:
    """Training samples/s (forward + backward + AdamW step) on random batches, after a short warm-up."""
    model.train()
    opt = make_optimizer(model, TrainConfig(steps=1))
    gen = torch.Generator().manual_seed(0)
    done, t0 = 0, None
    for step in range(10**9):
        if step == 5:
            t0, done = time.perf_counter(), 0
        idx = torch.randint(len(images), (batch,), generator=gen).to(images.device)
        loss = model.loss(images[idx], tokens[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        done += batch
        if t0 is not None and time.perf_counter() - t0 >= seconds:
            return done / (time.perf_counter() - t0)


def machine(device: torch.device) -> dict:
    """What a benchmark ran on, saved with its figures."""
    return {"device": str(device), "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "torch": str(torch.__version__),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None}


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux reports KiB


def parse_bench_args(ap: argparse.ArgumentParser, name: str) -> tuple[argparse.Namespace, torch.device, Path]:
    """Add the options every benchmark has (--seed, --device, --out) to `ap`, parse the command line, and return the
    arguments, the device and the JSON path: --out, else bench/results/<name>_<device>.json."""
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help=f"JSON path (default bench/results/{name}_<device>.json)")
    args = ap.parse_args()
    device = pick_device(args.device)
    return args, device, Path(args.out or Path(__file__).parent / "results" / f"{name}_{device.type}.json")


def write_result(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def first_reaching(evals, key, target):
    for e in evals:
        if e[key] >= target:
            return {"seconds": round(e["seconds"], 1), "samples": e["samples"]}
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--budget-samples", type=int, default=200_000)
    ap.add_argument("--eval-every", type=float, default=3.0)
    args, device, out = parse_bench_args(ap, "clip")
    tok = Tokenizer()
    sets = eval_sets(tok)
    curve = {k: sets[k] for k in ("zeroshot", "heldout", "mixed")}
    recipe = CLIPRecipe()
    data = make_shapes(recipe.n_train, args.seed, tok, recipe.res, recipe.p_two)

    short_cfg = TrainConfig(steps=args.budget_samples // 128, batch_size=128, seed=args.seed, device=str(device),
                            eval_every_s=args.eval_every)
    short_model, short_hist = train_clip(short_cfg, tokenizer=tok, train_data=data, curve_sets=curve)
    short_last = short_hist.steps[-1]
    short = {"train_seconds": short_last["seconds"], "samples_seen": short_last["samples"],
             "final": evaluate_clip(short_model, tok, sets)}

    cfg = TrainConfig(seconds=args.seconds, seed=args.seed, device=str(device), eval_every_s=args.eval_every)
    model, hist = train_clip(cfg, tokenizer=tok, train_data=data, curve_sets=curve)
    final = evaluate_clip(model, tok, sets)
    last = hist.steps[-1]

    # Throughput, ours vs torch.nn.TransformerEncoderLayer, interleaved to share any drift in machine speed.
    images, tokens = preprocess(data.images[:4096]).to(device), data.tokens[:4096].to(device)
    ours_m, ref_m = build(CLIP, clip_config(tok), 0).to(device), torch_layers_clip(clip_config(tok), 0).to(device)
    ours, ref = [], []
    for _ in range(2):
        ours.append(throughput(ours_m, images, tokens, cfg.batch_size, 8.0))
        ref.append(throughput(ref_m, images, tokens, cfg.batch_size, 8.0))
    ours_sps, ref_sps = max(ours), max(ref)

    thresholds = {f"zs>={t}": first_reaching(hist.evals, "zero_shot_acc", t) for t in THRESHOLDS}
    result = {
        "machine": machine(device),
        "seed": args.seed, "params": sum(p.numel() for p in model.parameters()),
        "budget_run": short,
        "train_seconds": last["seconds"], "samples_seen": last["samples"],
        "samples_per_s": last["samples"] / last["seconds"],
        "thresholds": thresholds,
        "heldout>=0.9": first_reaching(hist.evals, "heldout_acc", 0.9),
        "i2t_r1>=0.75": first_reaching(hist.evals, "i2t_r1", 0.75),
        "final": final,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "throughput": {"ours_samples_per_s": ours_sps, "torch_encoder_layer_samples_per_s": ref_sps,
                       "ratio": ours_sps / ref_sps, "all_ours": ours, "all_torch": ref},
        "curve": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()} for e in hist.evals],
    }
    t90, t95 = thresholds["zs>=0.9"], thresholds["zs>=0.95"]
    checks = {
        "zs>=0.90 within 75 s and 200k samples (either run)":
            bool(t90 and t90["seconds"] <= 75 and t90["samples"] <= 200_000)
            or (short["final"]["zero_shot_acc"] >= 0.9 and short["train_seconds"] <= 75
                and short["samples_seen"] <= 200_000),
        "zs>=0.95 within 100 s": bool(t95 and t95["seconds"] <= 100),
        "heldout>=0.90 by 150 s": bool(result["heldout>=0.9"] and result["heldout>=0.9"]["seconds"] <= 150),
        "mixed i2t R@1>=0.75 by 150 s": bool(result["i2t_r1>=0.75"] and result["i2t_r1>=0.75"]["seconds"] <= 150),
        "throughput >= 0.9x nn.TransformerEncoderLayer": result["throughput"]["ratio"] >= 0.9,
    }
    result["targets"] = checks
    write_result(out, result)

    print(f"\ntoy CLIP benchmark on {result['machine']}")
    print(f"  budget run: {short['samples_seen']:,} samples in {short['train_seconds']:.1f} s -> zero-shot "
          f"{short['final']['zero_shot_acc']:.3f}, held-out {short['final']['heldout_acc']:.3f}, "
          f"i2t R@1 {short['final']['i2t_r1']:.3f}")
    print(f"  time run: params {result['params']:,}; trained {last['seconds']:.1f} s, {last['samples']:,} samples, "
          f"{result['samples_per_s']:.0f} samples/s; peak RSS {result['peak_rss_mb']:.0f} MB")
    for name, hit in thresholds.items():
        reached = f"at {hit['seconds']:>6.1f} s, {hit['samples']:>7,} samples" if hit else "not reached"
        print(f"  {name:<10} {reached}")
    for key in ("zero_shot_acc", "heldout_acc", "i2t_r1", "t2i_r1", "i2t_r5", "i2t_r10", "two_obj_i2t_r1"):
        print(f"  final {key:<16} {final[key]:.3f}")
    print(f"  throughput: ours {ours_sps:.0f} samples/s, nn.TransformerEncoderLayer {ref_sps:.0f} samples/s "
          f"(ratio {ours_sps / ref_sps:.2f})")
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'MISS'}] {name}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
