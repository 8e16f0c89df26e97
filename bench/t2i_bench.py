"""Benchmark: text-to-image and the causally masked model (issue "Discrete image tokens", section 6, lines 2-3).

Reads the judge and tokenizer that bench/vq_bench.py saved in runs/bench-vq/ (or --vq, a tokenizer with judge.pt
beside it, as `train vq` writes) and the CLIP of bench/clip_bench.py (runs/bench-clip/clip.pt), then trains, one
after the other:
  - DALL-E (recipes/dalle.py) for 360 s; every 60 s, 8 samples for each of 64 one-object captions are judged.
    Targets: >= 80 % of one-object samples match colour and shape without reranking, >= 95 % with CLIP's top-1 of 8.
    Also reported: two-object prompts and held-out colour x shape pairs, at temperature 0.7 and 1.0.
  - CM3 (recipes/cm3.py) for 300 s. Targets: one-object captioning EM >= 0.8, infilling the judge reads as the
    requested recolouring in >= 70 % of cases, in <= 5 minutes of training.
  - The same documents with no masking (plain left to right), 300 s: what only the causal mask makes possible.
Evaluation time is not training time. Prints the figures and writes bench/results/t2i_<device>.json. Run alone.
About 19 minutes.

    python bench/t2i_bench.py [--dalle-seconds 360] [--cm3-seconds 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from clip_bench import machine, parse_bench_args, peak_rss_mb, write_result
from generative_bench import curve, run_stats
from vq_bench import VQ_PATH
from minivlm.recipes.clip import load_clip
from minivlm.recipes.cm3 import CM3Recipe, evaluate_cm3, train_cm3
from minivlm.recipes.dalle import DalleRecipe, evaluate_dalle, train_dalle
from minivlm.recipes.vq import load_judge, load_vq
from minivlm.train import TrainConfig

CLIP_PATH = "runs/bench-clip/clip.pt"
CM3_CURVE = ("caption_em_1obj", "t2i_match_1obj", "infill_judge_acc")


def _load(vq_path: str, device):
    judge_path = str(Path(vq_path).parent / "judge.pt")
    for path, made_by in ((vq_path, "vq_bench.py"), (judge_path, "vq_bench.py"), (CLIP_PATH, "clip_bench.py")):
        if not Path(path).is_file():
            raise SystemExit(f"{path} is missing: run bench/{made_by} first")
    return (load_vq(vq_path, str(device))[0], load_judge(judge_path, str(device))[0],
            load_clip(CLIP_PATH, str(device))[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dalle-seconds", type=float, default=360.0)
    ap.add_argument("--cm3-seconds", type=float, default=300.0)
    ap.add_argument("--eval-every", type=float, default=60.0)
    ap.add_argument("--vq", default=VQ_PATH, help="the tokenizer, with judge.pt beside it (default: vq_bench's)")
    ap.add_argument("--skip-baseline", action="store_true", help="no left-to-right comparison run")
    args, device, out = parse_bench_args(ap, "t2i")
    vq, judge, clip = _load(args.vq, device)

    def cfg(seconds):
        return TrainConfig(seconds=seconds, seed=args.seed, device=str(device), eval_every_s=args.eval_every)

    def dalle_curve(model):
        m = evaluate_dalle(model, vq, judge, clip, kinds=("1obj",))
        model.train()
        return m

    dalle, hist = train_dalle(cfg(args.dalle_seconds), vq, DalleRecipe(), evaluate=dalle_curve)
    result = {"dalle": {**run_stats(hist), "params": sum(p.numel() for p in dalle.parameters()),
                        "final": evaluate_dalle(dalle, vq, judge, clip),
                        "final_temperature_1": evaluate_dalle(dalle, vq, judge, clip, temperature=1.0),
                        "curve_columns": ["seconds", "samples", "t2i_match_1obj", "t2i_match_1obj_rerank8"],
                        "curve": curve(hist, ("t2i_match_1obj", "t2i_match_1obj_rerank8"))}}
    runs = {"cm3": CM3Recipe()}
    if not args.skip_baseline:
        runs["left_to_right"] = CM3Recipe(span_mix={"none": 1.0})
    for name, recipe in runs.items():
        def cm3_curve(model):
            m = evaluate_cm3(model, vq, judge, clip, n_caption=100, n_infill=100)
            model.train()
            return m
        model, hist = train_cm3(cfg(args.cm3_seconds), vq, recipe, evaluate=cm3_curve)
        result[name] = {**run_stats(hist), "params": sum(p.numel() for p in model.parameters()),
                        "span_mix": recipe.span_mix, "final": evaluate_cm3(model, vq, judge, clip),
                        "curve_columns": ["seconds", "samples", *CM3_CURVE], "curve": curve(hist, CM3_CURVE)}
    d, c = result["dalle"]["final"], result["cm3"]["final"]
    result["targets"] = {
        "dalle 1obj match >=0.80 (no rerank)": d["t2i_match_1obj"] >= 0.8,
        "dalle 1obj match >=0.95 (CLIP top-1 of 8)": d["t2i_match_1obj_rerank8"] >= 0.95,
        "cm3 1obj caption EM >=0.8 within 300 s": c["caption_em_1obj"] >= 0.8 and args.cm3_seconds <= 300,
        "cm3 infilling judged right >=0.70 within 300 s": c["infill_judge_acc"] >= 0.7 and args.cm3_seconds <= 300}
    result.update(tokenizer=args.vq, clip=CLIP_PATH, machine=machine(device), seed=args.seed,
                  peak_rss_mb=peak_rss_mb())
    write_result(out, result)
    report(result, out)


def report(r: dict, out: Path) -> None:
    print(f"\ntext-to-image benchmark on {r['machine']}")
    for name in ("dalle", "cm3", "left_to_right"):
        if name not in r:
            continue
        run = r[name]
        print(f"  {name} ({run['params']:,} params, {run['samples_seen']:,} samples in {run['train_seconds']} s):")
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in run["final"].items()))
        if name == "dalle":
            print("    temperature 1.0: " + ", ".join(f"{k} {v:.3f}" for k, v in run["final_temperature_1"].items()))
    for target, ok in r["targets"].items():
        print(f"  [{'PASS' if ok else 'MISS'}] {target}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
