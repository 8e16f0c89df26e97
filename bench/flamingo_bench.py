"""Benchmark: the toy Flamingo's targets (issue "Flamingo", section 6).

Trains the recipe of recipes/flamingo.py on a frozen toy CLIP (--clip, or the generative benchmark's
runs/bench-clip/clip.pt when it is there, else one trained here for 150 s): the LM's text-only pretraining (reported
separately), then the mixture for 120 s, the captions scored every few training seconds (evaluation time is not
training time). Reports when 1-object caption EM first reaches 0.95 (target <= 60 s), 2-object EM at 120 s
(target >= 0.3), and the few-shot curves at 0, 1, 2, 4 shots (target: 4 shots >= 0 shots + 20 points), with the
gates. Then the same recipe again with a budget of --short-seconds (59.5: its last step ends before 60 s), as
`train flamingo --seconds 60` would train it: its schedule decays within that budget, so its 1-object EM at the
end is the 60 s target's other reading (the 120 s run's curve at 60 s is mid-schedule). Prints the figures and
writes bench/results/flamingo_<device>.json. Run alone. About 8 minutes.

    python bench/flamingo_bench.py [--clip CKPT] [--seconds 120] [--short-seconds 59.5] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from clip_bench import first_reaching, machine, parse_bench_args, peak_rss_mb, write_result
from flamingo_probes import relation_probe
from generative_bench import CLIP_PATH, curve, run_stats
from minivlm.data.documents import flamingo_tokenizer
from minivlm.data.tokenizer import Tokenizer
from minivlm.recipes.clip import eval_sets, evaluate_clip, load_clip, train_clip
from minivlm.recipes.flamingo import (FlamingoRecipe, caption_sets, eval_media, evaluate_captions, evaluate_flamingo,
                                      train_flamingo)
from minivlm.train import TrainConfig, save_checkpoint

CURVE = ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=None, help=f"a toy CLIP checkpoint (default: {CLIP_PATH} if present)")
    ap.add_argument("--seconds", type=float, default=120.0, help="Flamingo training seconds (after the LM's)")
    ap.add_argument("--short-seconds", type=float, default=59.5,
                    help="budget of the second run, scored at its end for the 60 s target (0: no second run)")
    ap.add_argument("--eval-every", type=float, default=10.0)
    args, device, out = parse_bench_args(ap, "flamingo")

    clip_path = args.clip or (CLIP_PATH if Path(CLIP_PATH).is_file() else None)
    if clip_path:
        clip, clip_tok, ckpt = load_clip(clip_path, str(device))
        clip_info = {"checkpoint": clip_path, "train_seconds": ckpt["extra"].get("train_seconds")}
    else:
        clip_tok = Tokenizer()
        clip, hist = train_clip(TrainConfig(seconds=150.0, seed=args.seed, device=str(device)), tokenizer=clip_tok)
        save_checkpoint(CLIP_PATH, clip, "clip", clip.cfg, TrainConfig(seconds=150.0, seed=args.seed),
                        extra={"vocab": clip_tok.vocab, "train_seconds": hist.steps[-1]["seconds"]})
        clip_info = {"checkpoint": f"trained here, saved to {CLIP_PATH}", **run_stats(hist)}
    clip_metrics = evaluate_clip(clip, clip_tok, eval_sets(clip_tok, names=("zeroshot", "heldout")))

    tok, recipe = flamingo_tokenizer(), dataclasses.replace(FlamingoRecipe(), eval_every_s=args.eval_every)
    model, hist, lm = train_flamingo(recipe.train_config(seconds=args.seconds, seed=args.seed, device=str(device)),
                                     clip, tok, recipe, curve={"captions": caption_sets(tok, recipe.res, n=500)})
    captions = caption_sets(tok, recipe.res)
    final = {**evaluate_flamingo(model, tok, captions, eval_media(tok, recipe)),
             "relation_probe": relation_probe(model, tok, captions["mixed"].images, captions["mixed"].scenes)}
    shots = final["fewshot_acc"]
    one = first_reaching(hist.evals, "caption_em_1obj", 0.95)
    short = None
    if args.short_seconds > 0:
        short_model, short_hist, _ = train_flamingo(recipe.train_config(seconds=args.short_seconds, seed=args.seed,
                                                                        device=str(device)), clip, tok, recipe)
        short = {**run_stats(short_hist), **evaluate_captions(short_model, tok, captions)}
    result = {
        "clip": {**clip_info, **{k: clip_metrics[k] for k in ("zero_shot_acc", "heldout_acc")}},
        "lm_pretrain_steps": lm["lm_pretrain_steps"], "lm_pretrain_seconds": round(lm["lm_pretrain_seconds"], 1),
        "lm_loss": round(lm["lm_loss"], 3),
        **run_stats(hist), "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "final": final, "reached_em_1obj_0.95": one, "short_run": short,
        "targets": {"em_1obj>=0.95 within 60 s (the run's curve)": bool(one and one["seconds"] <= 60),
                    **({"em_1obj>=0.95 within 60 s (a run of that budget)":
                        short["train_seconds"] <= 60 and short["caption_em_1obj"] >= 0.95} if short else {}),
                    "em_2obj>=0.3 within 120 s": final["caption_em_2obj"] >= 0.3,
                    "4-shot >= 0-shot + 0.2": shots[4] >= shots[0] + 0.2},
        "curve_columns": ["seconds", "samples", *CURVE], "curve": curve(hist, CURVE),
        "gates_curve": [[round(e["seconds"], 1), e["gates"]] for e in hist.evals],
        "machine": machine(device), "seed": args.seed, "peak_rss_mb": peak_rss_mb()}
    write_result(out, result)
    report(result, out)


def report(r: dict, out: Path) -> None:
    f = r["final"]
    print(f"\nFlamingo benchmark on {r['machine']}")
    print(f"  frozen toy CLIP: zero-shot {r['clip']['zero_shot_acc']:.3f}; LM text-only pretraining "
          f"{r['lm_pretrain_steps']} steps, {r['lm_pretrain_seconds']} s (loss {r['lm_loss']})")
    print(f"  {r['samples_seen']:,} samples in {r['train_seconds']} s, {r['trainable_params']:,} of {r['params']:,} "
          "parameters trained")
    print("  " + ", ".join(f"{k} {f[k]:.3f}" for k in ("caption_em", "caption_em_1obj", "caption_em_2obj",
                                                          "heldout_em", "video_em", "pair_acc")))
    for how in ("", "_rices"):
        curve = ", ".join(f"{k}-shot {v:.3f}" for k, v in f[f"fewshot_acc{how}"].items())
        print(f"  few-shot, {'RICES' if how else 'random'} examples: {curve}")
    if r["short_run"]:
        s = r["short_run"]
        print(f"  a {s['train_seconds']} s run: 1-object EM {s['caption_em_1obj']:.3f}, 2-object "
              f"{s['caption_em_2obj']:.3f}, held-out pairs {s['heldout_em']:.3f} ({s['samples_seen']:,} samples)")
    print("  gates tanh(alpha): " + ", ".join(f"{g['xattn']:+.2f}/{g['dense']:+.2f}" for g in f["gates"]))
    for target, ok in r["targets"].items():
        print(f"  [{'PASS' if ok else 'MISS'}] {target}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
