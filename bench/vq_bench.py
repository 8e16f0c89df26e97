"""Benchmark: the image tokenizer's targets (issue "Discrete image tokens", section 6, first line) and the judge.

Trains the judge (recipes/vq.py) for --judge-seconds and scores it on real renders (target: >= 98 % exact
meanings), then the VQ-VAE tokenizer for 180 s, its reconstructions judged every few training seconds on 500 images
of the mixed set (evaluation time is not training time). Reports when the judge first reads colour and shape right
on >= 95 % of reconstructions (target: within 3 minutes), and the final reconstruction error, codebook perplexity and
dead codes. Prints the figures and writes bench/results/vq_<device>.json, and saves judge and tokenizer in
runs/bench-vq/ for bench/t2i_bench.py. Run alone. About 6 minutes.

    python bench/vq_bench.py [--judge-seconds 90] [--seconds 180] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from clip_bench import first_reaching, machine, parse_bench_args, peak_rss_mb, write_result
from generative_bench import curve, run_stats
from minivlm.recipes.vq import (JudgeRecipe, VQRecipe, eval_sets, evaluate_judge, evaluate_vq, train_judge,
                                train_vq)
from minivlm.train import save_checkpoint

CURVE = ("recon_colour_shape_acc", "recon_judge_acc", "recon_mse", "codebook_perplexity", "dead_codes")
JUDGE_PATH = "runs/bench-vq/judge.pt"  # reusable by `train vq --judge`
VQ_PATH = "runs/bench-vq/vq.pt"  # with the judge beside it: what bench/t2i_bench.py and `train dalle --vq` read


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge-seconds", type=float, default=90.0)
    ap.add_argument("--seconds", type=float, default=180.0, help="tokenizer training seconds")
    ap.add_argument("--eval-every", type=float, default=10.0)
    args, device, out = parse_bench_args(ap, "vq")
    sets = eval_sets()
    curve_set = sets["mixed"].subset(np.arange(500))

    judge_recipe, vq_recipe = JudgeRecipe(), VQRecipe()
    judge_cfg = judge_recipe.train_config(seconds=args.judge_seconds, seed=args.seed, device=str(device))
    judge, judge_hist = train_judge(judge_cfg, judge_recipe)
    judge_metrics = evaluate_judge(judge, sets)
    save_checkpoint(JUDGE_PATH, judge, "judge", judge.cfg, judge_cfg, extra=run_stats(judge_hist))

    vq_cfg = dataclasses.replace(vq_recipe.train_config(seconds=args.seconds, seed=args.seed, device=str(device)),
                                 eval_every_s=args.eval_every)  # the recipe's batch and lr
    vq, hist = train_vq(vq_cfg, vq_recipe, judge=judge, curve_set=curve_set)
    final = evaluate_vq(vq, judge, sets)
    save_checkpoint(VQ_PATH, vq, "vq", vq.cfg, vq_cfg, extra=run_stats(hist))
    reached = first_reaching(hist.evals, "recon_colour_shape_acc", 0.95)
    result = {
        "judge": {**run_stats(judge_hist), **judge_metrics, "params": sum(p.numel() for p in judge.parameters()),
                  "checkpoint": JUDGE_PATH},
        "tokenizer": {**run_stats(hist), "params": sum(p.numel() for p in vq.parameters()), "grid": vq.cfg.grid,
                      "codes": vq.cfg.codes, "final": final, "reached_colour_shape_0.95": reached,
                      "checkpoint": VQ_PATH},
        "targets": {"judge_acc>=0.98": judge_metrics["judge_acc"] >= 0.98,
                    "recon colour+shape >=0.95 within 180 s": bool(reached and reached["seconds"] <= 180)},
        "curve_columns": ["seconds", "samples", *CURVE], "curve": curve(hist, CURVE),
        "machine": machine(device), "seed": args.seed, "peak_rss_mb": peak_rss_mb()}
    write_result(out, result)
    report(result, out)


def report(r: dict, out: Path) -> None:
    j, t = r["judge"], r["tokenizer"]
    print(f"\nimage tokenizer benchmark on {r['machine']}")
    print(f"  judge ({j['params']:,} params, {j['train_seconds']} s): exact {j['judge_acc']:.3f} (1 object "
          f"{j['judge_acc_1obj']:.3f}, 2 objects {j['judge_acc_2obj']:.3f}), colour+shape "
          f"{j['judge_colour_shape_acc']:.3f}, held-out pairs {j['judge_heldout_acc']:.3f}")
    f = t["final"]
    print(f"  tokenizer ({t['params']:,} params, {t['grid']}x{t['grid']} tokens over {t['codes']} codes, "
          f"{t['samples_seen']:,} samples in {t['train_seconds']} s): recon colour+shape "
          f"{f['recon_colour_shape_acc']:.3f}, exact {f['recon_judge_acc']:.3f}, mse {f['recon_mse']:.4f}, "
          f"perplexity {f['codebook_perplexity']:.1f}, dead codes {f['dead_codes']}, held-out pairs "
          f"{f['heldout_recon_colour_shape_acc']:.3f}")
    hit = t["reached_colour_shape_0.95"]
    print(f"  colour+shape >= 0.95 first at {hit['seconds']} s" if hit else "  colour+shape never reached 0.95")
    for target, ok in r["targets"].items():
        print(f"  [{'PASS' if ok else 'MISS'}] {target}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
