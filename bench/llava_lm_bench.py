"""Benchmark: LLaVA's stage 1 against an untrained LM (today's recipe) and against an LM pretrained text-only first
(`LLaVARecipe.lm_steps`, as LLaVA starts from a trained LM), issue 19 section 3.

Every run is notebook 06's: seed 0, lr 1e-3, on the course's CLIP (`notebook_clip`: 3,750 steps, read from
notebooks/runs/cache/, never trained here). Runs (--runs, comma-separated):
  today        1,400 LLaVA steps (stage 1 210, stage 2 1,190), the LM from scratch;
  pretrained   the same 1,400 steps after --lm-steps text-only LM steps (extra budget, reported apart);
  equal_total  --lm-steps text-only steps + 1,400 - --lm-steps LLaVA steps: the same number of optimiser steps in all;
  long_stage1  as pretrained, but stage 1 gets 90 % of the 1,400 steps (1,260): can the projector alone, given a
               longer stage 1, make the frozen pretrained LM describe the picture?
Measured for each: stage 1's answer loss at its start and end (mean of its first and last 20 steps), the
descriptions after stage 1 alone (the fixed sets' 200 seen-pair and 100 held-out-pair description questions), and
after stage 2 `evaluate_llava` by question kind on the 1,600 seen-pair and 800 held-out-pair questions. Prints the
figures, writes bench/results/llava_lm_<device>.json (a run not asked for keeps its earlier figures there). About
9 minutes on 2 CPU cores for the first three runs, 3 more for long_stage1; run it alone.

    python bench/llava_lm_bench.py [--runs today,pretrained,equal_total,long_stage1] [--lm-steps 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np

from clip_bench import machine, parse_bench_args, peak_rss_mb, write_result
from minivlm.data.images import preprocess
from minivlm.data.questions import VQAData, instruction_tokenizer
from minivlm.recipes.cache import path_of
from minivlm.recipes.clip import CLIPRecipe, notebook_clip, notebook_clip_steps
from minivlm.recipes.llava import LLaVARecipe, _stage_configs, eval_sets, evaluate_llava, prompts, train_llava

STEPS = 1400  # notebook 06's budget, both stages
CACHE = Path(__file__).resolve().parent.parent / "notebooks" / "runs" / "cache"  # the notebooks' checkpoint cache
RUNS = ("today", "pretrained", "equal_total", "long_stage1")
LONG_STAGE1 = 0.9  # stage1_frac of the long_stage1 run
WINDOW = 20  # steps averaged for a stage's loss at its start and end


def kind_subset(data: VQAData, kind: str) -> VQAData:
    """The questions of one kind of `data`."""
    idx = [i for i, qa in enumerate(data.qas) if qa.kind == kind]
    return VQAData(data.images[idx], [data.qas[i] for i in idx], data.tokens[idx], data.answer_mask[idx],
                   [data.scenes[i] for i in idx])


def run(name: str, clip, tok, sets: dict, describe: dict, lm_steps: int, seed: int, device) -> dict:
    recipe = LLaVARecipe(lm_steps=0 if name == "today" else lm_steps,
                         stage1_frac=LONG_STAGE1 if name == "long_stage1" else LLaVARecipe.stage1_frac)
    steps = STEPS - lm_steps if name == "equal_total" else STEPS
    cfg = dataclasses.replace(recipe.train_config(steps=steps, seed=seed, device=str(device)), eval_every_s=1e9)
    stage1 = {}

    def after_stage1(model) -> dict:
        """The descriptions of the model as stage 1 leaves it: accuracy, and the first six against the truth."""
        stage1.update(evaluate_llava(model, tok, describe))
        data = describe["describe"]
        said = model.answer(preprocess(data.images[:6]).to(device), prompts(data)[:6], tok)
        stage1["examples"] = [[s, qa.answer] for s, qa in zip(said, data.qas)]
        return {}

    t0 = time.perf_counter()
    model, hist, stats = train_llava(cfg, clip, tok, recipe, stage1_eval=after_stage1)
    wall = time.perf_counter() - t0
    n1 = _stage_configs(cfg, recipe.stage1_frac)[0].steps
    loss = np.array([r["loss"] for r in hist.steps])
    final = evaluate_llava(model, tok, sets)
    last = hist.steps[-1]
    return {"llava_steps": steps, "stage1_steps": n1, "stage1_frac": recipe.stage1_frac, "lm_pretrain_steps": stats.get("lm_pretrain_steps", 0),
            "lm_pretrain_seconds": round(stats.get("lm_pretrain_seconds", 0.0), 1),
            "lm_pretrain_last_loss": round(stats["lm_loss"], 3) if "lm_loss" in stats else None,
            "stage1_seconds": round(stats["stage1_seconds"], 1), "stage2_seconds": round(stats["stage2_seconds"], 1),
            "samples": last["samples"], "samples_per_s": round(last["samples"] / last["seconds"]),
            "wall_seconds": round(wall, 1),
            "stage1_loss_start": round(float(loss[:WINDOW].mean()), 3),
            "stage1_loss_end": round(float(loss[n1 - WINDOW:n1].mean()), 3),
            "stage2_loss_end": round(float(loss[-WINDOW:].mean()), 3),
            "stage1_loss_curve": [[i + 1, round(float(loss[i]), 3)] for i in range(0, n1, 10)],
            "stage1_describe_acc": round(stage1["describe_acc"], 3),
            "stage1_describe_heldout_acc": round(stage1["describe_heldout_acc"], 3),
            "stage1_describe_examples (said, true)": stage1["examples"],
            "vqa_acc": round(final["vqa_acc"], 3), "vqa_heldout_acc": round(final["vqa_heldout_acc"], 3),
            "vqa_acc_by_type": {k: round(v, 3) for k, v in final["vqa_acc_by_type"].items()},
            "vqa_heldout_acc_by_type": {k: round(v, 3) for k, v in final["vqa_heldout_acc_by_type"].items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--lm-steps", type=int, default=300)
    args, device, out = parse_bench_args(ap, "llava_lm")
    names = args.runs.split(",")
    if any(n not in RUNS for n in names):
        raise SystemExit(f"--runs: expected names among {RUNS}, got {args.runs!r}")
    os.environ["MINIVLM_CACHE"] = str(CACHE)
    clip_steps = notebook_clip_steps(fast=False)
    if not path_of(CLIPRecipe(), 0, clip_steps).is_file():
        raise SystemExit(f"no course CLIP at {path_of(CLIPRecipe(), 0, clip_steps)}: run notebook 03 first "
                         "(this benchmark never trains one)")
    clip = notebook_clip(fast=False).to(device)
    tok = instruction_tokenizer()
    sets = eval_sets(tok)
    describe = {"describe": kind_subset(sets["vqa"], "describe"),
                "describe-heldout": kind_subset(sets["vqa-heldout"], "describe")}
    t0 = time.perf_counter()
    results = json.loads(out.read_text())["runs"] if out.is_file() else {}
    for name in names:
        results[name] = r = run(name, clip, tok, sets, describe, args.lm_steps, args.seed, device)
        print(f"{name}: {r['lm_pretrain_steps']} LM steps ({r['lm_pretrain_seconds']} s) + {r['llava_steps']} LLaVA "
              f"steps ({r['stage1_seconds']} + {r['stage2_seconds']} s); stage 1 loss {r['stage1_loss_start']} -> "
              f"{r['stage1_loss_end']}, descriptions after stage 1 {r['stage1_describe_acc']} (held-out "
              f"{r['stage1_describe_heldout_acc']}); after stage 2 VQA {r['vqa_acc']} (held-out "
              f"{r['vqa_heldout_acc']})", flush=True)
    kinds = list(results[names[0]]["vqa_acc_by_type"])
    print(f"\n{'kind':<10}" + "".join(f"{n + ' seen':>18}{n + ' held-out':>22}" for n in names))
    for k in kinds:
        print(f"{k:<10}" + "".join(f"{results[n]['vqa_acc_by_type'][k]:>18.3f}"
                                   f"{results[n]['vqa_heldout_acc_by_type'][k]:>22.3f}" for n in names))
    write_result(out, {"benchmark": "llava_lm_bench", "date": datetime.date.today().isoformat(),
                       "machine": machine(device), "seed": args.seed, "llava_steps": STEPS,
                       "lm_steps": args.lm_steps, "clip": f"notebook_clip(): CLIPRecipe, {clip_steps} steps, seed 0",
                       "runs": results, "peak_rss_mb": peak_rss_mb()})
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
