"""Generation: next-token choice (greedy, temperature, top-k), the KV cache giving the same tokens as re-running
the whole sequence, seeded determinism, stopping at <eos> or the context, and bad arguments."""
import dataclasses

import pytest
import torch

import minivlm.models.lm as lm_module
from minivlm.models.lm import CausalLM, sample_next
from minivlm.recipes.lm import lm_config
from minivlm.train import build

EOS, PAD, WORD = 2, 0, 13


@pytest.fixture(scope="module")
def model(tokenizer):
    return build(CausalLM, dataclasses.replace(lm_config(tokenizer), dim=32, layers=2, heads=2), seed=0).eval()


def _bos(n=8):
    return torch.ones(n, 1, dtype=torch.long)  # (B, 1) <bos>


def test_sample_next_greedy_top_k_and_temperature():
    logits = torch.tensor([[0.0, 2.0, 1.0, 1.5, -1.0]]).expand(4000, -1)  # (B, V), best ids: 1, 3, 2
    g = torch.Generator().manual_seed(0)
    assert (sample_next(logits) == 1).all()
    assert (sample_next(logits, temperature=5.0, top_k=1, generator=g) == 1).all()  # top-1 is greedy
    top3 = sample_next(logits, temperature=1.0, top_k=3, generator=g)
    assert set(top3.tolist()) == {1, 2, 3}
    expected = torch.tensor([2.0, 1.0, 1.5]).softmax(0)  # renormalised over the top 3
    freq = torch.stack([(top3 == i).float().mean() for i in (1, 2, 3)])
    assert torch.allclose(freq, expected, atol=0.03)
    full = sample_next(logits, temperature=1.0, generator=g)
    assert torch.allclose(torch.bincount(full, minlength=5) / 4000, logits[0].softmax(0), atol=0.03)
    cold = sample_next(logits, temperature=0.05, generator=g)
    assert (cold == 1).float().mean() > 0.99


@pytest.mark.parametrize("kwargs", [dict(), dict(temperature=1.0), dict(temperature=0.8, top_k=5)],
                         ids=["greedy", "sampled", "top-k"])
def test_cached_generation_equals_uncached_token_for_token(model, kwargs):
    prefix = torch.randn(8, 3, 32, generator=torch.Generator().manual_seed(0))
    for p in (None, prefix):
        cached = model.generate(_bos(), 20, p, generator=torch.Generator().manual_seed(1), **kwargs)
        uncached = model.generate(_bos(), 20, p, generator=torch.Generator().manual_seed(1), use_cache=False,
                                  **kwargs)
        assert torch.equal(cached, uncached)
        assert cached.shape[1] > 3  # an untrained model does not stop at once: there was something to compare


def test_with_the_cache_each_step_feeds_only_the_newest_token(model, monkeypatch):
    seen = []
    hook = model.tok.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    _scripted(monkeypatch, [[WORD] * 2] * 4)
    model.generate(_bos(2), 4)
    cached, seen[:] = list(seen), []
    _scripted(monkeypatch, [[WORD] * 2] * 4)
    model.generate(_bos(2), 4, use_cache=False)
    hook.remove()
    assert cached == [(2, 1)] * 4  # the prompt, then the 3 new tokens that still need a successor
    assert seen == [(2, 1), (2, 2), (2, 3), (2, 4)]  # the whole sequence again at every step


def test_sampling_is_deterministic_at_a_fixed_seed(model):
    runs = [model.generate(_bos(), 16, temperature=1.0, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert (runs[0][:, 0] == 1).all()  # the prompt is kept
    assert len(set(map(tuple, runs[0].tolist()))) > 1  # rows are sampled independently


def _scripted(monkeypatch, steps):
    """Make generation pick the ids of steps[i] (B,) at step i, whatever the model says."""
    it = iter(steps)
    monkeypatch.setattr(lm_module, "sample_next", lambda *args, **kwargs: torch.tensor(next(it)))


def test_rows_after_eos_are_padded_and_generation_stops_when_all_are_done(model, monkeypatch):
    _scripted(monkeypatch, [[WORD, EOS], [WORD, WORD], [EOS, WORD], [WORD, WORD]])
    out = model.generate(_bos(2), 10)
    assert out.tolist() == [[1, WORD, WORD, EOS], [1, EOS, PAD, PAD]]  # the 4th step never runs


def test_generation_stops_at_max_new_tokens_and_at_the_context(model, monkeypatch):
    _scripted(monkeypatch, [[WORD]] * 100)
    assert model.generate(_bos(1), 4).shape == (1, 5)
    assert model.generate(_bos(1), 100).shape == (1, 16)  # max_len 16: prompt + new tokens fill the context
    assert model.generate(_bos(1), 100, torch.zeros(1, 6, 32)).shape == (1, 10)  # 6 prefix + 10 tokens
    full = torch.full((1, 16), WORD)
    assert torch.equal(model.generate(full, 5), full)  # no room left: nothing added


@pytest.mark.parametrize("args, kwargs, message", [
    ((torch.ones(1, 17, dtype=torch.long), 5), {}, r"tokens: 0 cached \+ 0 prefix \+ 17 tokens exceed the context "
                                                   r"max_len=16"),
    ((torch.ones(1, 10, dtype=torch.long), 5, torch.zeros(1, 7, 32)), {}, r"7 prefix \+ 10 tokens exceed"),
    ((_bos(), 0), {}, "max_new_tokens: expected > 0, got 0"),
    ((_bos(), 5), dict(temperature=-1.0), r"temperature, top_k: expected temperature >= 0 and top_k >= 1 or None, "
                                          r"got -1.0 and None"),
    ((_bos(), 5), dict(temperature=1.0, top_k=0), "got 1.0 and 0"),
], ids=["prompt too long", "prompt + prefix too long", "no new tokens", "negative temperature", "top_k 0"])
def test_generate_refuses_bad_arguments(model, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate(*args, **kwargs)
