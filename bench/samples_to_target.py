"""Benchmark summary: samples to each target, for every system with a stored training curve (issue 19, section 5).

Samples, unlike seconds, mean the same on every machine. This reads the curves the benchmarks already stored in
bench/results/*_<device>.json (no training), finds the first evaluation at which each target of the systems' issues
is reached, and sets it against the sample budget of the system's recipe (steps x batch size), so a budget that runs
far past its targets shows. Prints a table and writes bench/results/samples_to_target_<device>.json.

    python bench/samples_to_target.py [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minivlm.recipes.registry import recipes

sys.path.insert(0, str(Path(__file__).parent))
from clip_bench import write_result  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# (system, benchmark file, curve key in it, metric, target, where the target comes from)
TARGETS = [
    ("clip", "clip", "curve", "zero_shot_acc", 0.90, 'issue "Foundation" §5'),
    ("clip", "clip", "curve", "heldout_acc", 0.90, 'issue "Foundation" §5'),
    ("clip", "clip", "curve", "i2t_r1", 0.75, 'issue "Foundation" §5'),
    ("clipcap", "generative", "captioner layer -1", "caption_em", 0.5, 'issue "Generative path" §6'),
    ("clipcap", "generative", "captioner layer -1", "caption_em_1obj", 0.95, 'issue "Generative path" §6'),
    ("clipcap", "generative", "captioner layer -2", "caption_em", 0.7, 'issue "Generative path" §6'),
    ("llava", "llava", "llava", "vqa_acc", 0.9, "the 400-question curve (the issue's targets are per kind)"),
    ("flamingo", "flamingo", "curve", "caption_em_1obj", 0.95, 'issue "Flamingo" §6'),
    ("flamingo", "flamingo", "curve", "caption_em_2obj", 0.3, 'issue "Flamingo" §6'),
    ("vq", "vq", "curve", "recon_colour_shape_acc", 0.95, 'issue "Discrete image tokens" §6'),
    ("dalle", "t2i", "dalle", "t2i_match_1obj", 0.8, 'issue "Discrete image tokens" §6'),
    ("dalle", "t2i", "dalle", "t2i_match_1obj_rerank8", 0.95, 'issue "Discrete image tokens" §6'),
    ("cm3", "t2i", "cm3", "caption_em_1obj", 0.8, 'issue "Discrete image tokens" §6'),
    ("cm3", "t2i", "cm3", "infill_judge_acc", 0.7, 'issue "Discrete image tokens" §6'),
]


def curve_rows(result: dict, key: str) -> list[dict]:
    """A stored curve as a list of dicts: either a list of dicts already, or rows with `curve_columns` beside them."""
    holder = result if key == "curve" else result[key]
    rows = holder["curve"]
    if rows and isinstance(rows[0], dict):
        return rows
    return [dict(zip(holder["curve_columns"], row)) for row in rows]


def samples_to(rows: list[dict], metric: str, target: float) -> dict | None:
    """The first evaluation with metric >= target: its samples and seconds; None if the curve never gets there."""
    for row in rows:
        if row[metric] >= target:
            return {"samples": int(row["samples"]), "seconds": float(row["seconds"]), "value": float(row[metric])}
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="which stored results to read: bench/results/*_<device>.json")
    args = ap.parse_args(argv)
    known = recipes()
    out = []
    for system, bench, key, metric, target, source in TARGETS:
        path = RESULTS / f"{bench}_{args.device}.json"
        if not path.exists():
            raise SystemExit(f"--device: no stored benchmark {path}; run bench/{bench}_bench.py first")
        rows = curve_rows(json.loads(path.read_text()), key)
        recipe = known[system]()
        budget = recipe.steps * recipe.batch_size
        hit = samples_to(rows, metric, target)
        out.append({"system": system, "benchmark": f"{path.name} [{key}]", "metric": metric, "target": target,
                    "source": source, "reached": hit, "curve_end_samples": int(rows[-1]["samples"]),
                    "recipe_budget_samples": budget,
                    "budget_over_samples_to_target": round(budget / hit["samples"], 2) if hit else None})
    print(f"{'system':<9} {'metric >= target':<32} {'samples to it':>13} {'(seconds)':>9} {'recipe budget':>13} ratio")
    for r in out:
        hit = r["reached"]
        reached = f"{hit['samples']:>13,} {hit['seconds']:>9.1f}" if hit else f"{'not reached':>13} {'':>9}"
        ratio = f"{r['budget_over_samples_to_target']:.1f}x" if hit else "-"
        print(f"{r['system']:<9} {r['metric'] + ' >= ' + str(r['target']):<32} {reached} "
              f"{r['recipe_budget_samples']:>13,} {ratio}")
    write_result(RESULTS / f"samples_to_target_{args.device}.json", {"device": args.device, "targets": out})


if __name__ == "__main__":
    main()
