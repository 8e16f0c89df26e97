"""Benchmark: which spans CM3 trains on, the recipe's five task-shaped kinds or the paper's random ones (issue 19, §3).

At notebook 08's budget (CM3 1,000 steps of 64, seed 0, the recipe's 50k documents, the notebook's judge, tokenizer
and the course's CLIP), trains two CM3s one after the other on the same documents and scores both with
`evaluate_cm3` (captioning EM, drawing judged, recolouring judged, the masked colour word):
  - "task_spans": the recipe's `span_mix` (none 15 %, caption 15 %, image 20 %, region 35 %, phrase 15 %);
  - "random_spans": the paper's (CM3 Sec. 2), `span_mix={"random": 1.0}`: n = clamp(Poisson(1), 1, 8) spans, their
    ends uniform over the document, none overlapping. The paper clamps n at 1, so every document has a span: no
    share of "none". The model is 11 positions longer (95: eight spans' sentinels), the rest the same.
Also counts, on 20,000 documents of each mix, how often a training document has the layout of each prompt.
The judge and tokenizer are trained first (notebook 08: 2,000 and 3,000 steps; default here half that, 1,000 and 1,500, to keep
the run under 12 minutes on 2 cores) and kept in runs/bench-cm3-spans/ (--reuse reads them back if their steps and
seed match). The CLIP is read from notebooks/runs/cache/, never trained. Prints the figures and writes
bench/results/cm3_spans_<device>.json. Run alone. About 12 minutes on 2 CPU cores.

    python bench/cm3_spans_bench.py [--judge-steps 1000] [--vq-steps 1500] [--cm3-steps 1000] [--seed 0] [--reuse]
"""
from __future__ import annotations

import argparse
import collections
import random
import time
from pathlib import Path

from clip_bench import machine, parse_bench_args, peak_rss_mb, write_result
from generative_bench import run_stats
from minivlm.data.datasets import make_shapes
from minivlm.recipes import cache
from minivlm.recipes.clip import CLIPRecipe
from minivlm.recipes.cm3 import CM3Recipe, choose_span, evaluate_cm3, train_cm3, words_of
from minivlm.recipes.dalle import text_tokenizer
from minivlm.recipes.vq import (JudgeRecipe, VQRecipe, eval_sets, evaluate_judge, evaluate_vq, load_judge, load_vq,
                                train_judge, train_vq)
from minivlm.train import TrainConfig, load_checkpoint, save_checkpoint

KEEP = Path("runs/bench-cm3-spans")
CLIP_CACHE = Path("notebooks/runs/cache")  # where notebook 03 keeps the course's CLIP
MIXES = {"task_spans": CM3Recipe().span_mix, "random_spans": {"random": 1.0}}
KEYS = ("caption_em_1obj", "caption_em_1obj_l2r", "caption_em_2obj", "t2i_match_1obj", "t2i_match_1obj_rerank8",
        "infill_judge_acc", "infill_judge_acc_2obj", "infill_text_acc")


def course_clip(device: str):
    """The course's CLIP (3,750 steps, seed 0) from notebook 03's cache; never trained here."""
    path = CLIP_CACHE / cache.key(CLIPRecipe(), 0, CLIPRecipe.steps)
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run notebook 03 (or notebook_clip()) first; this benchmark trains no CLIP")
    return CLIPRecipe().load(path, device)[0], str(path)


def kept(path: Path, steps: int, seed: int, reuse: bool) -> bool:
    if not (reuse and path.is_file()):
        return False
    cfg = load_checkpoint(path, ("judge", "vq"))["train_config"]
    return cfg["steps"] == steps and cfg["seed"] == seed


def judge_and_tokenizer(args, device: str, sets) -> tuple:
    """Notebook 08's judge (TrainConfig defaults, 50k scenes) and tokenizer (the recipe's batch 64, lr 6e-3)."""
    t = time.perf_counter()
    judge_path, vq_path = KEEP / "judge.pt", KEEP / "vq.pt"
    if kept(judge_path, args.judge_steps, args.seed, args.reuse):
        judge = load_judge(judge_path, device)[0]
    else:
        cfg = TrainConfig(steps=args.judge_steps, seed=args.seed, device=device)
        judge, hist = train_judge(cfg, JudgeRecipe(n=50_000))
        save_checkpoint(judge_path, judge, "judge", judge.cfg, cfg, extra=run_stats(hist))
    judge_minutes = (time.perf_counter() - t) / 60
    if kept(vq_path, args.vq_steps, args.seed, args.reuse):
        vq = load_vq(vq_path, device)[0]
    else:
        recipe = VQRecipe(n=50_000)
        cfg = TrainConfig(steps=args.vq_steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=args.seed,
                          device=device)
        vq, hist = train_vq(cfg, recipe)
        save_checkpoint(vq_path, vq, "vq", vq.cfg, cfg, extra=run_stats(hist))
    info = {"judge": {"steps": args.judge_steps, "checkpoint": str(judge_path), "minutes": round(judge_minutes, 2),
                      **evaluate_judge(judge, sets)},
            "tokenizer": {"steps": args.vq_steps, "checkpoint": str(vq_path),
                          "minutes": round((time.perf_counter() - t) / 60 - judge_minutes, 2),
                          **evaluate_vq(vq, judge, sets)}}
    return judge, vq, info


def prompt_layouts(span_mix: dict, count: int = 20_000, seed: int = 0) -> dict:
    """The share of training documents (drawn as `train_cm3` draws them) laid out like each evaluation prompt, all
    with the caption first: the captioning prompt (one span, exactly the caption), drawing (no span: caption,
    <image> and every code in place), recolouring (one span, inside the image tokens) and the colour word (one span
    of one or two caption words); and the mean number of spans."""
    recipe, tok, rng = CM3Recipe(span_mix=span_mix), text_tokenizer(), random.Random(f"layouts:{seed}")
    data = make_shapes(2000, seed, tok, p_two=recipe.p_two)
    words = [words_of(t, tok) for t in data.tokens]
    kinds, weights = list(span_mix), list(span_mix.values())
    seen, spans_total = collections.Counter(), 0
    for _ in range(count):
        i = rng.randrange(len(words))
        first = rng.random() < recipe.p_image_first
        spans = choose_span(rng.choices(kinds, weights)[0], len(words[i]), first, data.scenes[i], 8, rng)
        spans_total += len(spans)
        if first:
            continue
        n_words = len(words[i])
        (a, b), = spans if len(spans) == 1 else [(-1, -1)]
        seen["caption_prompt"] += (a, b) == (0, n_words)
        seen["draw_prompt"] += not spans
        seen["recolour_prompt"] += a >= n_words + 1
        seen["word_prompt"] += 0 <= a and b <= n_words and b - a <= 2
    return {**{k: round(seen[k] / count, 4) for k in ("caption_prompt", "draw_prompt", "recolour_prompt",
                                                       "word_prompt")}, "mean_spans": round(spans_total / count, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge-steps", type=int, default=1000)
    ap.add_argument("--vq-steps", type=int, default=1500)
    ap.add_argument("--cm3-steps", type=int, default=1000)
    ap.add_argument("--reuse", action="store_true", help="read the judge and tokenizer of runs/bench-cm3-spans/")
    args, device, out = parse_bench_args(ap, "cm3_spans")
    start = time.perf_counter()
    sets = eval_sets()
    clip, clip_path = course_clip(str(device))
    judge, vq, result = judge_and_tokenizer(args, str(device), sets)
    for name, mix in MIXES.items():
        t = time.perf_counter()
        recipe = CM3Recipe(span_mix=mix)
        model, hist = train_cm3(TrainConfig(steps=args.cm3_steps, seed=args.seed, device=str(device)), vq, recipe)
        train_minutes = (time.perf_counter() - t) / 60
        final = evaluate_cm3(model, vq, judge, clip)
        result[name] = {"span_mix": mix, **run_stats(hist), "steps": hist.steps[-1]["step"],
                        "params": sum(p.numel() for p in model.parameters()), "max_len": model.cfg.max_len,
                        "train_minutes": round(train_minutes, 2),
                        "eval_minutes": round((time.perf_counter() - t) / 60 - train_minutes, 2),
                        "final": {k: round(v, 4) for k, v in final.items()}, "layouts": prompt_layouts(mix)}
    result.update(clip=clip_path, budget={"cm3_steps": args.cm3_steps, "batch_size": CM3Recipe.batch_size,
                                          "judge_steps": args.judge_steps, "vq_steps": args.vq_steps},
                  machine=machine(device), seed=args.seed, peak_rss_mb=peak_rss_mb(),
                  minutes=round((time.perf_counter() - start) / 60, 2))
    write_result(out, result)
    report(result, out)


def report(r: dict, out: Path) -> None:
    print(f"\nCM3 spans benchmark on {r['machine']}, seed {r['seed']}, {r['minutes']} minutes")
    print(f"  judge {r['judge']['steps']} steps: judge_acc {r['judge']['judge_acc']:.3f}; tokenizer "
          f"{r['tokenizer']['steps']} steps: recon_judge_acc {r['tokenizer']['recon_judge_acc']:.3f}")
    print(f"  {'metric':>24} " + " ".join(f"{name:>13}" for name in MIXES))
    for key in KEYS:
        print(f"  {key:>24} " + " ".join(f"{r[name]['final'][key]:>13.3f}" for name in MIXES))
    for key in r["task_spans"]["layouts"]:
        print(f"  {'docs: ' + key:>24} " + " ".join(f"{r[name]['layouts'][key]:>13.3f}" for name in MIXES))
    for name in MIXES:
        run = r[name]
        print(f"  {name}: {run['steps']} steps, {run['samples_seen']:,} documents, {run['samples_per_s']} /s, "
              f"train {run['train_minutes']} min, eval {run['eval_minutes']} min, {run['params']:,} params, "
              f"max_len {run['max_len']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
