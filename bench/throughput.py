"""Benchmark: every system's training speed as a share of this machine's matmul throughput (issue 19, section 5).

For each registered recipe, its own training loop (the last `fit` its `recipe.fit` calls: the main stage) is caught
after a few steps, and measured with the trainer's step (next batch, loss, backward, AdamW, `after_step`):
  - the FLOPs of one step, counted by torch.utils.flop_counter.FlopCounterMode, split into data / forward / backward,
    with a formula added for the CPU flash-attention kernel, which FlopCounterMode counts as zero;
  - the achieved FLOP/s over a timed run after warm-up, at torch.get_num_threads() threads, and where the time goes;
  - the share of the float32 matmul throughput measured in the same run (square matmuls, best of several, before
    and after the systems);
and variants of some systems: AdamW foreach and fused, bf16 autocast, torch.compile of the loss.
Prints a table and writes bench/results/throughput_<device>.json. Run it alone: a second job makes timings
meaningless.

    python bench/throughput.py [--seconds 3] [--only clip,llava] [--variants clip,cm3] [--no-compile]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

import minivlm.train as train_module
from minivlm.recipes.registry import recipes
from minivlm.train import batch_len, make_optimizer, pick_device

sys.path.insert(0, str(Path(__file__).parent))
from clip_bench import machine, write_result  # noqa: E402

aten = torch.ops.aten
# FlopCounterMode knows the CUDA attention kernels only; on CPU, F.scaled_dot_product_attention runs this one.
CPU_ATTENTION = {
    aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
    aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda grad, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(grad, q, k, v),
}
WARMUP_STEPS = 3


@dataclasses.dataclass
class Loop:
    """A system's training loop as `fit` receives it: the module trained, its batches and the trainer's settings."""
    desc: str
    model: torch.nn.Module
    next_batch: object
    cfg: train_module.TrainConfig


@contextlib.contextmanager
def caught_fits(loops: list):
    """Every `minivlm.train.fit` a recipe calls during the block runs as usual and is appended to `loops`."""
    real = train_module.fit

    def recording(model, next_batch, cfg, evaluate=None, desc="training"):
        loops.append(Loop(desc, model, next_batch, cfg))
        return real(model, next_batch, cfg, evaluate, desc)

    modules = [m for name, m in sys.modules.items() if name.startswith("minivlm.") and getattr(m, "fit", None) is real]
    for m in modules:
        m.fit = recording
    try:
        yield loops
    finally:
        for m in modules:
            m.fit = real


def training_loop(recipe, deps: dict, device: str = "cpu", steps: int = 4) -> Loop:
    """The main training loop of `recipe` (the last `fit` its `fit` calls, e.g. LLaVA's stage 2), on `deps`
    (role -> model), after `steps` steps of training: a steps budget renders only the scenes those steps see."""
    with caught_fits([]) as loops:
        recipe.fit(recipe.train_config(steps=steps, device=device), deps, curves=False)
    return loops[-1]


def quick_deps(recipe, device: str = "cpu", made: dict | None = None) -> dict:
    """role -> model for `recipe`'s prerequisites, each trained for 2 steps (recursively): speed does not depend on
    the weights. `made` shares models between recipes of the same settings."""
    made = {} if made is None else made
    deps = {}
    for role, (prereq, _) in recipe.prerequisites().items():
        key = json.dumps([prereq.name, prereq.settings()], sort_keys=True)
        if key not in made:
            made[key] = prereq.fit(prereq.train_config(steps=2, device=device), quick_deps(prereq, device, made),
                                   False)[0]
        deps[role] = made[key]
    return deps


def step_flops(loop: Loop) -> dict:
    """FLOPs of one training step by phase: making the batch, the loss (forward) and its backward."""
    loop.model.train()
    counts = {}
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        batch = loop.next_batch()
    counts["data"] = counter.get_total_flops()
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        loss = loop.model.loss(*batch)
    counts["forward"] = counter.get_total_flops()
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        loss.backward()
    counts["backward"] = counter.get_total_flops()
    loop.model.zero_grad(set_to_none=True)
    return {**counts, "total": sum(counts.values()), "samples": batch_len(batch)}


def optimizer(loop: Loop, kind: str = "default") -> torch.optim.Optimizer:
    """The trainer's AdamW (`make_optimizer`: on CPU torch's for-loop kernel), or the same groups with the
    'foreach' or 'fused' kernel."""
    opt = make_optimizer(loop.model, loop.cfg)
    if kind == "default":
        return opt
    groups = [{k: v for k, v in g.items() if k not in ("foreach", "fused")} for g in opt.param_groups]
    return torch.optim.AdamW(groups, lr=loop.cfg.lr, betas=loop.cfg.betas, **{kind: True})


def timed_run(loop: Loop, seconds: float, opt_kind: str = "default", autocast: bool = False,
              compiled: bool = False) -> dict:
    """Train `loop` as `fit` does (fixed lr) for WARMUP_STEPS, then for at least `seconds` and 10 steps, timing each
    phase: data, forward, backward, optimiser (zero_grad, step, after_step)."""
    model, device = loop.model, next(loop.model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    opt = optimizer(loop, opt_kind)
    loss_fn = torch.compile(model.loss) if compiled else model.loss
    cast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    model.train()
    phases, samples, steps, t_start = dict.fromkeys(("data", "forward", "backward", "optimiser"), 0.0), 0, 0, None
    warmup_s = time.perf_counter()
    while True:
        if steps == WARMUP_STEPS and t_start is None:
            warmup_s = time.perf_counter() - warmup_s
            phases, samples, steps, t_start = dict.fromkeys(phases, 0.0), 0, 0, time.perf_counter()
        t0 = time.perf_counter()
        batch = loop.next_batch()
        sync()
        t1 = time.perf_counter()
        with cast():
            loss = loss_fn(*batch)
        sync()
        t2 = time.perf_counter()
        loss.backward()
        sync()
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        opt.step()
        if hasattr(model, "after_step"):
            model.after_step()
        loss.item()
        t4 = time.perf_counter()
        for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name] += dt
        samples, steps = samples + batch_len(batch), steps + 1
        if t_start is not None and steps >= 10 and time.perf_counter() - t_start >= seconds:
            break
    wall = time.perf_counter() - t_start
    model.eval()
    return {"steps": steps, "seconds": wall, "samples_per_s": samples / wall, "steps_per_s": steps / wall,
            "warmup_s": warmup_s, "phase_share": {k: v / wall for k, v in phases.items()}}


def matmul_flops(sizes=(256, 512, 1024), repeats: int = 5, dtype=torch.float32, device="cpu") -> dict:
    """FLOP/s of square (n x n) @ (n x n) matmuls: for each n the best of `repeats` timed windows of >= 0.2 s."""
    out = {}
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        a @ b
        best = 0.0
        for _ in range(repeats):
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 0.2:
                a @ b
                calls += 1
            sync()
            best = max(best, 2 * n ** 3 * calls / (time.perf_counter() - t0))
        out[str(n)] = best
    return out


def model_shaped_matmuls(device="cpu") -> dict:
    """FLOP/s of the linear layers these models are made of: 2,048 rows (batch 128 x 16 tokens) times d x 4d."""
    out = {}
    for d in (64, 128):
        for name, (k, n) in {f"{d}x{d}": (d, d), f"{d}x{4 * d}": (d, 4 * d)}.items():
            x, w = torch.randn(2048, k, device=device), torch.randn(k, n, device=device)
            x @ w
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 0.3:
                x @ w
                calls += 1
            out[f"2048x{name}"] = 2 * 2048 * k * n * calls / (time.perf_counter() - t0)
    return out


def cpu_info() -> dict:
    """The CPU's model name and the flags that decide bf16 speed (avx512_bf16, amx_bf16), from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = lambda key: next((line.split(":", 1)[1].strip() for line in text.splitlines()  # noqa: E731
                              if line.startswith(key)), "")
    flags = field("flags").split()
    return {"model_name": field("model name"), "cores": os.cpu_count(),
            "bf16_flags": [f for f in flags if "bf16" in f or f.startswith("amx")]}


def measure_system(name: str, loop: Loop, seconds: float, peak: float, variants: list[str]) -> dict:
    """FLOPs per step and sample, the default run, then each of `variants` on the same loop."""
    flops = step_flops(loop)
    row = {"loop": loop.desc, "batch": flops["samples"], "flops_per_step": flops,
           "flops_per_sample": flops["total"] / flops["samples"],
           "params": sum(p.numel() for p in loop.model.parameters()),
           "trainable_params": sum(p.numel() for p in loop.model.parameters() if p.requires_grad),
           "runs": {}}
    settings = {"default": {}, "foreach": {"opt_kind": "foreach"}, "fused": {"opt_kind": "fused"},
                "bf16_autocast": {"autocast": True}, "compile": {"compiled": True}}
    for variant in ["default", *variants]:
        t0 = time.perf_counter()
        try:
            run = timed_run(loop, seconds, **settings[variant])
        except Exception as e:  # a variant that does not run is a finding, not a crash of the benchmark
            row["runs"][variant] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            print(f"  {name} {variant}: failed ({row['runs'][variant]['error']})")
            continue
        run["flops_per_s"] = run["steps_per_s"] * flops["total"]
        run["share_of_matmul"] = run["flops_per_s"] / peak
        run["wall_s"] = time.perf_counter() - t0
        row["runs"][variant] = run
        print(f"  {name:<9} {variant:<14} {run['samples_per_s']:>8,.0f} samples/s  "
              f"{run['flops_per_s'] / 1e9:6.1f} GFLOP/s  {run['share_of_matmul']:5.1%} of matmul  "
              f"(warm-up {run['warmup_s']:.1f} s)", flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per run, after warm-up")
    ap.add_argument("--only", default=None, help="comma-separated systems (default: every registered recipe)")
    ap.add_argument("--variants", default=None,
                    help="systems that get the variants (default: clip and the two of most FLOPs per sample)")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the variants")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = pick_device(args.device)
    out = Path(args.out or Path(__file__).parent / "results" / f"throughput_{device.type}.json")
    t_begin = time.perf_counter()
    names = args.only.split(",") if args.only else list(recipes())
    peak_before = matmul_flops(device=device)
    print(f"float32 square matmuls, GFLOP/s: {', '.join(f'n={n} {v / 1e9:.1f}' for n, v in peak_before.items())}")

    made, loops = {}, {}
    for name in names:
        recipe = recipes()[name]()
        loops[name] = training_loop(recipe, quick_deps(recipe, device.type, made), device.type)
    flops = {name: step_flops(loop) for name, loop in loops.items()}
    per_sample = {n: f["total"] / f["samples"] for n, f in flops.items()}
    chosen = (args.variants.split(",") if args.variants else
              sorted({"clip", *sorted(per_sample, key=per_sample.get)[-2:]} & set(names), key=names.index))
    variants = ["foreach", "fused", "bf16_autocast"] + ([] if args.no_compile else ["compile"])
    peak = max(peak_before.values())
    systems = {name: measure_system(name, loop, args.seconds, peak, variants if name in chosen else [])
               for name, loop in loops.items()}
    peak_after = matmul_flops(device=device)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": {**machine(device), **cpu_info()},
        "matmul_fp32_square_flops_before": peak_before, "matmul_fp32_square_flops_after": peak_after,
        "matmul_bf16_square_flops": matmul_flops(dtype=torch.bfloat16, device=device, repeats=3),
        "matmul_fp32_model_shaped_flops": model_shaped_matmuls(device),
        "reference_flops": peak,
        "reference": "best float32 square matmul (n = 256, 512, 1024; best of 5 windows of 0.2 s) before the systems",
        "seconds_per_run": args.seconds, "warmup_steps": WARMUP_STEPS, "systems": systems,
        "wall_s": time.perf_counter() - t_begin}
    write_result(out, result)

    print(f"\ntraining throughput on {result['machine']['model_name']}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; matmul reference {peak / 1e9:.1f} GFLOP/s (after: "
          f"{max(peak_after.values()) / 1e9:.1f})")
    print(f"{'system':<9} {'loop':<24} {'MFLOP/sample':>12} {'samples/s':>10} {'GFLOP/s':>8} {'share':>6}  "
          f"time in data/fwd/bwd/optimiser")
    for name, row in systems.items():
        run = row["runs"]["default"]
        split = "/".join(f"{v:.0%}" for v in run["phase_share"].values())
        print(f"{name:<9} {row['loop']:<24} {row['flops_per_sample'] / 1e6:>12.2f} {run['samples_per_s']:>10,.0f} "
              f"{run['flops_per_s'] / 1e9:>8.1f} {run['share_of_matmul']:>6.1%}  {split}")
    print(f"wrote {out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
