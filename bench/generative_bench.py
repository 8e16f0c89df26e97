"""Benchmark: the generative path's targets (issue "Generative path", section 6).

Parts (all by default, or a comma-separated --only), each trained with its recipe and evaluated every few training
seconds (evaluation time is not training time):
  captioner  patch-token captioner (recipes/captioner.py) on the frozen toy CLIP, 100 s, reading the ViT's last
             layer and (another run) the one before: when semantic EM first reaches 0.5 (target <= 20 s),
             1-object EM 0.95 (<= 30 s) and EM 0.7 (<= 100 s);
  scratch    the same captioner with its vision tower trained from scratch, 150 s: EM 0.5 (target <= 150 s);
  clipcap    ClipCap, MLP mapper + fine-tuned LM and transformer mapper + frozen LM (200 steps of text
             pretraining), for k = 1, 4, 10 prefix embeddings, 40 s each: EM of every setting;
  llava      LLaVA, both stages in 180 s: VQA accuracy by question kind (targets: >= 0.9 colour/shape/size, >= 0.75
             position/relation);
and the held-out compositions (unseen colour×shape pairs) of every model next to CLIP's zero-shot accuracy on them.
The frozen CLIP is --clip, or trained first for 150 s (seed --seed), the toy CLIP benchmark's budget, and saved for
a later --clip. Prints the figures and updates bench/results/generative_<device>.json (a part not run keeps its
earlier figures; --only llava alone writes bench/results/llava_<device>.json). Run alone: two jobs side by side
make every timing meaningless. About 20 minutes.

    python bench/generative_bench.py [--clip CKPT] [--only captioner,scratch,clipcap,llava] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from clip_bench import first_reaching, machine, parse_bench_args, peak_rss_mb, write_result
from minivlm.data.questions import instruction_tokenizer
from minivlm.data.tokenizer import Tokenizer
from minivlm.recipes.captioner import CaptionerRecipe, evaluate_captioner, train_captioner
from minivlm.recipes.clip import eval_sets, evaluate_clip, load_clip, train_clip
from minivlm.recipes.clipcap import ClipCapRecipe, evaluate_clipcap, train_clipcap
from minivlm.recipes.llava import LLaVARecipe, eval_sets as vqa_sets, evaluate_llava, head, train_llava
from minivlm.train import TrainConfig, save_checkpoint

CLIP_PATH = "runs/bench-clip/clip.pt"  # the CLIP a run trains, for --clip in a later run of some parts
PARTS = ("captioner", "scratch", "clipcap", "llava")
CAPTIONERS = ("captioner layer -1", "captioner layer -2", "scratch")
CAPTION_KEYS = ("caption_em", "caption_em_1obj", "caption_em_2obj", "bleu4", "heldout_em")


def run_stats(history) -> dict:
    last = history.steps[-1]
    return {"train_seconds": round(last["seconds"], 1), "samples_seen": last["samples"],
            "samples_per_s": round(last["samples"] / last["seconds"])}


def curve(history, keys) -> list:
    return [[round(e["seconds"], 1), e["samples"], *(round(e[k], 3) for k in keys)] for e in history.evals]


def captioner(clip, args, device, seconds: float, targets: dict, feature_layer: int | None = None) -> dict:
    """Train a captioner for `seconds` (on `clip`, or from scratch when None) and find when each target is met."""
    tok = instruction_tokenizer()
    sets = eval_sets(tok, names=("mixed", "heldout"))
    model, hist = train_captioner(TrainConfig(seconds=seconds, seed=args.seed, device=str(device),
                                              eval_every_s=args.eval_every), tok, clip,
                                  CaptionerRecipe(feature_layer=feature_layer), curve_sets={"mixed": sets["mixed"]})
    reached = {name: first_reaching(hist.evals, key, level) for name, (key, level, _) in targets.items()}
    return {"feature_layer": model.cfg.feature_layer, **run_stats(hist), "final": evaluate_captioner(model, tok, sets),
            "reached": reached,
            "targets": {name: bool(reached[name] and reached[name]["seconds"] <= limit)
                        for name, (_, _, limit) in targets.items()},
            "curve_columns": ["seconds", "samples", "caption_em", "caption_em_1obj", "caption_em_2obj"],
            "curve": curve(hist, ("caption_em", "caption_em_1obj", "caption_em_2obj"))}


def clipcap(clip, tok, args, device) -> dict:
    sets = eval_sets(tok, names=("mixed", "heldout"))
    runs = {}
    for mapper, frozen in (("mlp", False), ("transformer", True)):
        for k in (1, 4, 10):
            recipe = ClipCapRecipe(mapper=mapper, prefix_len=k, freeze_lm=frozen,
                                   lm_steps=max(1, round(ClipCapRecipe.lm_steps * args.scale)))
            cfg = recipe.train_config(seconds=args.clipcap_seconds * args.scale, seed=args.seed, device=str(device))
            model, hist, lm_hist = train_clipcap(cfg, clip, tok, recipe)
            m = evaluate_clipcap(model, tok, sets)
            runs[f"{mapper}{'-frozen-lm' if frozen else '-finetuned-lm'}-k{k}"] = {
                "mapper": mapper, "freeze_lm": frozen, "prefix_len": k, **run_stats(hist),
                "lm_pretrain_steps": lm_hist.steps[-1]["step"] if lm_hist else 0,
                "lm_pretrain_seconds": round(lm_hist.steps[-1]["seconds"], 1) if lm_hist else 0.0,
                **{key: m[key] for key in CAPTION_KEYS}}
    return runs


def llava(clip, args, device) -> dict:
    tok = instruction_tokenizer()
    sets = vqa_sets(tok)
    recipe = LLaVARecipe()
    cfg = dataclasses.replace(recipe.train_config(seconds=180.0 * args.scale, seed=args.seed, device=str(device)),
                              eval_every_s=args.eval_every * 3)
    model, hist, stages = train_llava(cfg, clip, tok, recipe, curve_sets={"vqa": head(sets["vqa"], 400)})
    m = evaluate_llava(model, tok, sets)
    by = m["vqa_acc_by_type"]
    return {**run_stats(hist), **{k: round(v, 1) for k, v in stages.items()}, **m,
            "targets": {f"{kind}>=0.9": by[kind] >= 0.9 for kind in ("colour", "shape", "size")}
            | {f"{kind}>=0.75": by[kind] >= 0.75 for kind in ("position", "relation")},
            "curve_columns": ["seconds", "samples", "vqa_acc"], "curve": curve(hist, ("vqa_acc",))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=None, help="a toy CLIP checkpoint (default: train one for 150 s)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    ap.add_argument("--eval-every", type=float, default=3.0)
    ap.add_argument("--clipcap-seconds", type=float, default=40.0)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every budget (a quick check: 0.05)")
    args, device, out = parse_bench_args(ap, "generative")
    parts = args.only.split(",")
    if unknown := set(parts) - set(PARTS):
        ap.error(f"--only: unknown parts {sorted(unknown)}; expected some of {PARTS}")
    if parts == ["llava"] and args.out is None:  # LLaVA alone (on a longer-trained CLIP) has a file of its own
        out = out.with_name(f"llava_{device.type}.json")
    result = json.loads(out.read_text()) if out.exists() else {}

    if args.clip:
        clip, tok, ckpt = load_clip(args.clip, str(device))
        clip_info = {"checkpoint": args.clip, "train_seconds": ckpt["extra"].get("train_seconds")}
    else:
        tok = Tokenizer()
        clip, hist = train_clip(TrainConfig(seconds=150.0 * args.scale, seed=args.seed, device=str(device)),
                                tokenizer=tok)
        save_checkpoint(CLIP_PATH, clip, "clip", clip.cfg, TrainConfig(seconds=150.0 * args.scale, seed=args.seed),
                        extra={"vocab": tok.vocab, "train_seconds": hist.steps[-1]["seconds"]})
        clip_info = {"checkpoint": f"trained here, saved to {CLIP_PATH}", **run_stats(hist)}
    clip_metrics = evaluate_clip(clip, tok, eval_sets(tok, names=("zeroshot", "heldout")))
    result["clip"] = {**clip_info, **{k: clip_metrics[k] for k in ("zero_shot_acc", "heldout_acc")}}

    if "captioner" in parts:  # the ViT's last layer and the one before (LLaVA's choice), side by side
        for layer in (-1, -2):
            result[f"captioner layer {layer}"] = captioner(clip, args, device, 100.0 * args.scale, {
                "em>=0.5 within 20 s": ("caption_em", 0.5, 20),
                "em_1obj>=0.95 within 30 s": ("caption_em_1obj", 0.95, 30),
                "em>=0.7 within 100 s": ("caption_em", 0.7, 100)}, layer)
    if "scratch" in parts:
        result["scratch"] = captioner(None, args, device, 150.0 * args.scale,
                                      {"em>=0.5 within 150 s": ("caption_em", 0.5, 150)})
    if "clipcap" in parts:
        result["clipcap"] = clipcap(clip, tok, args, device)
    if "llava" in parts:
        result["llava"] = llava(clip, args, device)

    result["heldout_compositions"] = {
        "clip_zero_shot": result["clip"]["heldout_acc"],
        **{name: result[name]["final"]["heldout_em"] for name in CAPTIONERS if name in result},
        **{f"clipcap {name}": run["heldout_em"] for name, run in result.get("clipcap", {}).items()},
        **({"llava_vqa_heldout": result["llava"]["vqa_heldout_acc"]} if "llava" in result else {})}
    result["machine"] = machine(device)
    result["seed"] = args.seed
    result["peak_rss_mb"] = peak_rss_mb()
    write_result(out, result)
    report(result, out)


def report(result: dict, out: Path) -> None:
    print(f"\ngenerative path benchmark on {result['machine']}")
    c = result["clip"]
    print(f"  frozen toy CLIP: zero-shot {c['zero_shot_acc']:.3f}, held-out pairs {c['heldout_acc']:.3f}")
    for name in CAPTIONERS:
        if name in result:
            r = result[name]
            print(f"  {name}: {r['samples_seen']:,} samples in {r['train_seconds']} s; final "
                  + ", ".join(f"{k} {r['final'][k]:.3f}" for k in CAPTION_KEYS))
            for target, hit in r["reached"].items():
                where = f"at {hit['seconds']} s, {hit['samples']:,} samples" if hit else "not reached"
                print(f"    [{'PASS' if r['targets'][target] else 'MISS'}] {target}: {where}")
    for name, r in result.get("clipcap", {}).items():
        print(f"  clipcap {name:<26} " + ", ".join(f"{k} {r[k]:.3f}" for k in CAPTION_KEYS)
              + f"  ({r['samples_seen']:,} samples in {r['train_seconds']} s)")
    if "llava" in result:
        r = result["llava"]
        print(f"  llava: {r['samples_seen']:,} samples (stage 1 {r['stage1_seconds']} s, stage 2 {r['stage2_seconds']}"
              f" s); vqa {r['vqa_acc']:.3f}, held-out pairs {r['vqa_heldout_acc']:.3f}")
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in r["vqa_acc_by_type"].items()))
        for target, ok in r["targets"].items():
            print(f"    [{'PASS' if ok else 'MISS'}] {target}")
    print("  held-out colour×shape pairs: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                      result["heldout_compositions"].items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
