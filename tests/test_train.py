"""The trainer: schedule, device, optimiser groups, budgets, callbacks; reproducibility and checkpoints."""
import dataclasses
import math
import time

import pytest
import torch
from torch import nn

from minivlm.data import make_shapes
from minivlm.evaluate import embed_images, embed_texts
from minivlm.models.clip import CLIP
from minivlm.recipes.clip import evaluate_clip, load_clip, train_clip
from minivlm.train import CHECKPOINT_FORMAT, TrainConfig, build, fit, load_checkpoint, lr_at, make_optimizer, \
    pick_device, save_checkpoint, scenes_for


class Line(nn.Module):
    """The smallest model `fit` accepts: a linear regression with a `loss` method."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def loss(self, x, y):
        return ((self.lin(x) - y) ** 2).mean()


def _line_batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[1.0], [-2.0], [0.5]])

    def next_batch():
        x = torch.randn(4, 3, generator=g)
        return x, x @ w
    return next_batch


# schedule, device, optimiser

def test_train_config_needs_a_positive_budget():
    with pytest.raises(ValueError, match="steps, seconds: give at least one budget"):
        TrainConfig()
    with pytest.raises(ValueError, match="steps, seconds: budgets must be positive, got steps=0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="seconds=-1"):
        TrainConfig(seconds=-1)


def test_lr_warms_up_then_follows_a_cosine_to_its_floor():
    cfg = TrainConfig(steps=1000, lr=1e-3, warmup_steps=10, min_lr_frac=0.05)
    assert lr_at(0, 0.0, cfg) == pytest.approx(1e-4)
    assert lr_at(4, 0.005, cfg) == pytest.approx(5e-4)
    assert lr_at(9, 0.01, cfg) == pytest.approx(1e-3)  # warm-up ends at the peak
    warm = [lr_at(s, s / 1000, cfg) for s in range(10)]
    assert warm == sorted(warm)
    assert lr_at(10, 0.0, cfg) == pytest.approx(1e-3)
    assert lr_at(500, 0.5, cfg) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert lr_at(999, 1.0, cfg) == pytest.approx(5e-5)  # the floor, 5 % of lr
    assert lr_at(2000, 1.7, cfg) == pytest.approx(5e-5)  # and never below it
    after = [lr_at(s, s / 1000, cfg) for s in range(10, 1001, 10)]
    assert after == sorted(after, reverse=True)


def test_cosine_starts_where_warm_up_ends_so_short_runs_have_no_jump():
    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=50, min_lr_frac=0.05)
    assert lr_at(49, 0.49, cfg, warm_end=0.5) == pytest.approx(1e-3)
    assert lr_at(50, 0.5, cfg, warm_end=0.5) == pytest.approx(1e-3)  # without warm_end: 52.5 % of lr
    assert lr_at(75, 0.75, cfg, warm_end=0.5) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert lr_at(99, 1.0, cfg, warm_end=0.5) == pytest.approx(5e-5)


def test_scenes_for_renders_no_more_than_a_steps_budget_sees():
    assert scenes_for(TrainConfig(steps=2, batch_size=64), 50_000) == 128
    assert scenes_for(TrainConfig(steps=2, batch_size=64), 50_000, batch_size=16) == 32  # a source's own batch
    assert scenes_for(TrainConfig(steps=10_000, batch_size=64), 50_000) == 50_000  # never more than asked
    assert scenes_for(TrainConfig(seconds=1.0), 50_000) == 50_000  # a time budget: unknown, so all of them


def test_pick_device_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same check on a machine with a GPU
    assert pick_device("auto") == torch.device("cpu") == pick_device("cpu")
    with pytest.raises(ValueError, match="device: 'cuda' was asked for, but torch sees no CUDA device"):
        pick_device("cuda")


def test_pick_device_prefers_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda") == pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_pick_device_refuses_unknown_names():
    with pytest.raises(ValueError, match="device: expected 'auto', 'cpu' or 'cuda', got 'gpu'"):
        pick_device("gpu")


def test_optimizer_decays_matrices_but_not_biases_norms_or_scalars(tiny_cfg):
    model = CLIP(tiny_cfg)
    opt = make_optimizer(model, TrainConfig(steps=1, weight_decay=0.05))
    decay, no_decay = opt.param_groups
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decayed | kept == set(names.values()) and not decayed & kept
    for n in ("visual.patch_embed.proj.weight", "text.tok.weight", "image_proj.weight",
              "visual.blocks.0.attn.q.weight", "visual.blocks.0.mlp.0.weight"):
        assert n in decayed, n
    for n in ("visual.patch_embed.proj.bias", "visual.blocks.0.attn.q.bias", "visual.blocks.0.ln1.weight",
              "visual.blocks.0.ln1.bias", "visual.ln.weight", "text.ln.bias", "log_scale"):
        assert n in kept, n
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])


# fit

def test_fit_stops_after_steps_and_records_each_one():
    torch.manual_seed(0)
    model = Line()
    before = model.lin.weight.detach().clone()
    cfg = TrainConfig(steps=7, batch_size=4, lr=0.05, warmup_steps=2)
    hist = fit(model, _line_batches(), cfg)
    assert [r["step"] for r in hist.steps] == list(range(1, 8))
    assert [r["samples"] for r in hist.steps] == [4 * i for i in range(1, 8)]
    assert [r["lr"] for r in hist.steps] == [lr_at(i, i / 7, cfg, warm_end=2 / 7) for i in range(7)]
    assert not torch.equal(model.lin.weight, before)
    assert hist.evals == [] and not model.training


def test_fit_stops_after_seconds():
    def slow_batches(inner=_line_batches()):
        time.sleep(0.01)
        return inner()
    hist = fit(Line(), slow_batches, TrainConfig(seconds=0.2, lr=0.01))
    seconds = [r["seconds"] for r in hist.steps]
    assert seconds[-1] >= 0.2 > seconds[-2]
    assert 3 <= len(seconds) <= 21


def test_fit_calls_evaluate_in_eval_mode_off_the_clock():
    calls = []

    def evaluate(model):
        calls.append((model.training, torch.is_grad_enabled()))
        time.sleep(0.05)  # evaluation time must not count as training time
        return {"score": len(calls)}

    model = Line()
    hist = fit(model, _line_batches(), TrainConfig(steps=3, eval_every_s=0.0), evaluate)
    assert calls == [(False, False)] * 3
    assert [e["step"] for e in hist.evals] == [1, 2, 3] and [e["score"] for e in hist.evals] == [1, 2, 3]
    assert [e["samples"] for e in hist.evals] == [4, 8, 12]
    assert hist.steps[-1]["seconds"] < 0.1

    hist = fit(Line(), _line_batches(), TrainConfig(steps=3, eval_every_s=60.0), lambda m: {"score": 1.0})
    assert [e["step"] for e in hist.evals] == [3]  # once at the end


def test_fit_stops_on_a_non_finite_loss():
    model = Line()
    nan_batch = lambda: (torch.full((4, 3), float("nan")), torch.zeros(4, 1))
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 0; lower lr \(0.003\) or check data"):
        fit(model, nan_batch, TrainConfig(steps=3))


# reproducibility and checkpoints (the real recipe, on 200 scenes)

def _train(data, seed=0):
    return train_clip(TrainConfig(steps=5, batch_size=16, seed=seed, device="cpu"), train_data=data)


@pytest.fixture(scope="module")
def trained(small_data):
    return _train(small_data)


def test_same_seed_gives_identical_losses(trained, small_data):
    _, hist = trained
    _, again = _train(small_data)
    _, other = _train(small_data, seed=1)
    losses = [r["loss"] for r in hist.steps]
    assert len(losses) == 5 and all(math.isfinite(x) for x in losses)
    assert [r["loss"] for r in again.steps] == losses  # exactly, not approximately
    assert [r["loss"] for r in other.steps] != losses


@pytest.fixture(scope="module")
def checkpoint(trained, tokenizer, tmp_path_factory):
    model, _ = trained
    path = tmp_path_factory.mktemp("ckpt") / "clip.pt"
    save_checkpoint(path, model, "clip", model.cfg, TrainConfig(steps=5, batch_size=16),
                    extra={"vocab": tokenizer.vocab})
    return path


def test_checkpoint_round_trip_gives_identical_evaluation(trained, checkpoint, tokenizer, small_data):
    model, _ = trained
    loaded, tok, ckpt = load_clip(checkpoint)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["seed"] == 0 and ckpt["train_config"]["steps"] == 5
    assert tok.vocab == tokenizer.vocab and loaded.cfg == model.cfg and not loaded.training
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    assert torch.equal(embed_images(loaded, small_data.images), embed_images(model, small_data.images))
    assert torch.equal(embed_texts(loaded, small_data.tokens), embed_texts(model, small_data.tokens))
    sets = {"zeroshot": make_shapes(n=60, seed=9, tokenizer=tokenizer, p_two=0.0), "mixed": small_data}
    assert evaluate_clip(loaded, tok, sets) == evaluate_clip(model, tokenizer, sets)


class _NotAllowed:
    """A pickled object of an arbitrary class: weights_only loading must refuse it rather than run code."""


@pytest.mark.parametrize("kind", ["truncated", "text", "foreign dict", "pickled object", "missing"])
def test_unreadable_checkpoints_are_refused(checkpoint, tmp_path, kind):
    path = tmp_path / "bad.pt"
    if kind == "truncated":
        blob = checkpoint.read_bytes()
        path.write_bytes(blob[:len(blob) // 2])
        message = r"checkpoint: .*bad.pt' is not a readable torch checkpoint \(truncated or another format"
    elif kind == "text":
        path.write_text("this is not a checkpoint\n")
        message = "is not a readable torch checkpoint"
    elif kind == "foreign dict":
        torch.save({"weights": torch.zeros(3)}, path)
        message = r"checkpoint: .*bad.pt' is not a minivlm checkpoint \(no 'minivlm-checkpoint-1' tag\)"
    elif kind == "pickled object":
        torch.save(_NotAllowed(), path)
        message = "is not a readable torch checkpoint"
    else:
        message = r"checkpoint: no file at .*bad.pt'"
    with pytest.raises(ValueError, match=message):
        load_clip(path)


def test_wrong_kind_and_inconsistent_checkpoints_are_refused(trained, tokenizer, tmp_path):
    model, _ = trained
    cfg = TrainConfig(steps=1)
    save_checkpoint(tmp_path / "cap.pt", model, "captioner", model.cfg, cfg, extra={"vocab": tokenizer.vocab})
    with pytest.raises(ValueError, match=r"cap.pt' holds a 'captioner' model, expected 'clip'"):
        load_clip(tmp_path / "cap.pt")
    assert load_checkpoint(tmp_path / "cap.pt", "captioner")["kind"] == "captioner"

    save_checkpoint(tmp_path / "novocab.pt", model, "clip", model.cfg, cfg)
    with pytest.raises(ValueError, match=r"novocab.pt' has no tokenizer vocabulary"):
        load_clip(tmp_path / "novocab.pt")

    small = build(CLIP, dataclasses.replace(model.cfg, embed_dim=16), seed=0)
    save_checkpoint(tmp_path / "mixed.pt", small, "clip", model.cfg, cfg, extra={"vocab": tokenizer.vocab})
    with pytest.raises(ValueError, match=r"mixed.pt' weights do not fit its own config"):
        load_clip(tmp_path / "mixed.pt")



@pytest.mark.parametrize("damage, message", [
    (lambda c: c.pop("state_dict"), r"bad.pt' lacks state_dict \(not written by save_checkpoint\?\)"),
    (lambda c: c.pop("kind"), r"bad.pt' lacks kind"),
    (lambda c: c.pop("model_config"), r"bad.pt' lacks model_config"),
    (lambda c: c["state_dict"].update({k: torch.full_like(v, float("nan"))
                                       for k, v in list(c["state_dict"].items())[:1]}),
     r"bad.pt' has NaN or inf in its weights"),
    (lambda c: c["model_config"].update(warp_factor=9), r"bad.pt' has config fields CLIPConfig does not know: "
                                                         r"\['warp_factor'\]"),
])
def test_damaged_checkpoints_are_refused_naming_the_file(checkpoint, tmp_path, damage, message):
    ckpt = torch.load(checkpoint, weights_only=True)
    damage(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=message):
        load_clip(tmp_path / "bad.pt")
