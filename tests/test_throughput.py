"""bench/throughput.py: its FLOP count against hand counts, and its per-recipe loop on one small recipe."""
import sys
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import throughput  # noqa: E402

from minivlm.recipes.lm import LMRecipe  # noqa: E402
from minivlm.train import TrainConfig  # noqa: E402


class TwoLinear(nn.Module):
    """x (B, I) -> (B, H) -> (B, O), loss = mean square; the input needs no gradient."""

    def __init__(self, i=12, h=20, o=7):
        super().__init__()
        self.a, self.b = nn.Linear(i, h), nn.Linear(h, o)

    def loss(self, x):
        return self.b(torch.relu(self.a(x))).pow(2).mean()


class SelfAttention(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.w = nn.Parameter(torch.randn(d, d) / 4)

    def loss(self, x):  # x (B, H, T, D/H)
        q = x @ self.w[:x.shape[-1], :x.shape[-1]]  # (B, H, T, Dh)
        return F.scaled_dot_product_attention(q, q, q).sum()


def loop_of(model, batch):
    return throughput.Loop("test", model, lambda: batch, TrainConfig(steps=1))


def test_linear_flops_match_a_hand_count():
    b, i, h, o = 5, 12, 20, 7
    flops = throughput.step_flops(loop_of(TwoLinear(i, h, o), (torch.randn(b, i),)))
    # forward: 2·B·I·H + 2·B·H·O; backward: both weight gradients, and the input gradient of the second layer only
    assert flops["forward"] == 2 * b * i * h + 2 * b * h * o
    assert flops["backward"] == 2 * b * i * h + 2 * (2 * b * h * o)
    assert flops["data"] == 0 and flops["samples"] == b
    assert flops["total"] == flops["forward"] + flops["backward"]


def test_cpu_attention_is_counted():
    bsz, heads, t, dh = 3, 2, 10, 8
    x = torch.randn(bsz, heads, t, dh)
    flops = throughput.step_flops(loop_of(SelfAttention(), (x,)))
    proj = 2 * bsz * heads * t * dh * dh  # q = x @ w
    attention = 2 * (2 * bsz * heads * t * t * dh)  # Q K^T and A V
    assert flops["forward"] == proj + attention  # FlopCounterMode alone counts 0 for the CPU kernel
    # backward, as torch's sdpa_backward_flop_count counts it: Q K^T recomputed, then dV, dA, dQ, dK (five bmm of
    # one size, each half of `attention`), and the weight gradient of the projection
    assert flops["backward"] == 5 * attention // 2 + proj


def test_training_loop_of_a_recipe_runs():
    recipe = LMRecipe(n_train=512)
    loop = throughput.training_loop(recipe, throughput.quick_deps(recipe), steps=2)
    assert loop.desc == "toy LM" and loop.cfg.batch_size == recipe.batch_size
    flops = throughput.step_flops(loop)
    n = sum(p.numel() for p in loop.model.parameters() if p.ndim == 2 and p.shape[0] != loop.model.cfg.max_len)
    # a transformer LM's step costs about 6 FLOPs per weight and token (Kaplan et al. 2020), plus attention
    per_token = flops["total"] / (flops["samples"] * loop.model.cfg.max_len)
    assert 4 * n < per_token < 8 * n
    run = throughput.timed_run(loop, seconds=0.05)
    assert run["steps"] >= 10 and run["samples_per_s"] > 0
    assert abs(sum(run["phase_share"].values()) - 1) < 0.1
