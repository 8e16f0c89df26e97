"""The causal LM: shapes, causality, the prefix, the KV cache, weight tying, a loss that falls on a tiny batch,
determinism at a fixed seed, checkpoint round trip and bad inputs."""
import dataclasses
import math

import pytest
import torch

from minivlm.concepts.attention import KVCache
from minivlm.concepts.next_token import next_token_loss
from minivlm.models.lm import CausalLM, LMConfig
from minivlm.recipes.clip import load_clip
from minivlm.recipes.lm import evaluate_lm, lm_config, load_lm
from minivlm.train import TrainConfig, build, save_checkpoint


@pytest.fixture(scope="module")
def cfg(tokenizer) -> LMConfig:
    """Half the recipe's width and one block: enough for wiring and learning, and fast."""
    return dataclasses.replace(lm_config(tokenizer), dim=32, layers=1, heads=2)


@pytest.fixture(scope="module")
def model(cfg):
    return build(CausalLM, cfg, seed=0).eval()


@pytest.fixture(scope="module")
def captions(tokenizer, small_data):
    return small_data.tokens[:6]  # (6, 16): 1- and 2-object captions, padded


def test_default_config_and_size(tokenizer):
    cfg = lm_config(tokenizer)
    assert cfg == LMConfig()  # the dataclass defaults are the recipe's model
    assert lm_config(tokenizer, prefix_len=16).max_len == 32
    model = CausalLM(cfg)
    n = sum(p.numel() for p in model.parameters())
    # 2 blocks of 4·128² + 2·(4·128·128) weights and their biases and norms, embeddings, final norm; no head matrix
    assert n == 2 * (12 * 128 * 128 + 13 * 128) + 37 * 128 + 16 * 128 + 2 * 128 == 403_584
    assert [name for name, p in model.named_parameters() if p.shape == (37, 128)] == ["tok.weight"]  # tied


def test_logits_shape_and_the_head_is_the_token_embedding(model, cfg, captions):
    with torch.no_grad():
        logits = model(captions)
        x = model.tok(captions) + model.pos
        for block in model.blocks:
            x = block(x, torch.ones(16, 16, dtype=torch.bool).tril())
        by_hand = model.ln(x) @ model.tok.weight.T
    assert logits.shape == (6, 16, cfg.vocab_size)
    assert torch.allclose(logits, by_hand, atol=1e-5)


def test_causal_logits_at_t_ignore_later_tokens(model, captions):
    t = 5
    changed = captions.clone()
    changed[:, t + 1:] = torch.randint(3, 37, changed[:, t + 1:].shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(captions), model(changed)
    assert torch.allclose(a[:, :t + 1], b[:, :t + 1], atol=1e-6)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:], atol=1e-3)


def test_prefix_comes_first_and_is_seen_by_every_token(model, cfg, captions):
    prefix = torch.randn(6, 3, cfg.dim, generator=torch.Generator().manual_seed(0))
    tokens = captions[:, :10]
    with torch.no_grad():
        logits = model(tokens, prefix)
        # the same as embedding the prefix by hand in place of 3 token embeddings
        x = torch.cat([prefix, model.tok(tokens)], dim=1) + model.pos[:, :13]
        for block in model.blocks:
            x = block(x, torch.ones(13, 13, dtype=torch.bool).tril())
        by_hand = model.ln(x[:, 3:]) @ model.tok.weight.T
        other = model(tokens, prefix.flip(1))  # (prefix + c would vanish in LayerNorm)
    assert logits.shape == (6, 10, cfg.vocab_size)
    assert torch.allclose(logits, by_hand, atol=1e-5)
    assert not torch.allclose(logits[:, 0], other[:, 0], atol=1e-3)  # even the first token sees the prefix


def test_cached_forward_in_pieces_equals_one_pass(model, cfg, captions):
    prefix = torch.randn(6, 2, cfg.dim, generator=torch.Generator().manual_seed(1))
    tokens = captions[:, :12]
    cache = [KVCache() for _ in model.blocks]
    with torch.no_grad():
        full = model(tokens, prefix)
        pieces = [model(tokens[:, :5], prefix, cache), model(tokens[:, 5:8], cache=cache)]  # prompt, then 3 at once
        pieces += [model(tokens[:, i:i + 1], cache=cache) for i in range(8, 12)]  # then one at a time
    assert len(cache[0]) == 2 + 12
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_loss_is_the_next_token_loss_and_starts_near_log_v(model, cfg, captions):
    with torch.no_grad():
        loss = model.loss(captions)
    assert torch.equal(loss, next_token_loss(model(captions), captions, cfg.pad_id))
    assert loss.item() == pytest.approx(math.log(cfg.vocab_size), abs=0.3)  # small tied embeddings: near uniform


def test_loss_falls_on_a_tiny_overfit_batch(cfg, captions):
    model = build(CausalLM, cfg, seed=0).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = model.loss(captions)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::8]


def test_build_is_deterministic(cfg, captions):
    a, b, c = (build(CausalLM, cfg, seed) for seed in (0, 0, 1))
    with torch.no_grad():
        assert torch.equal(a(captions), b(captions)) and not torch.equal(a(captions), c(captions))


def test_checkpoint_round_trip(model, cfg, tokenizer, small_data, tmp_path):
    save_checkpoint(tmp_path / "lm.pt", model, "lm", cfg, TrainConfig(steps=1), extra={"vocab": tokenizer.vocab})
    loaded, tok, ckpt = load_lm(tmp_path / "lm.pt")
    assert loaded.cfg == cfg and tok.vocab == tokenizer.vocab and ckpt["kind"] == "lm"
    tokens = small_data.tokens[:50]
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))
        assert evaluate_lm(loaded, tok, tokens, n_samples=20) == evaluate_lm(model, tokenizer, tokens, n_samples=20)
    with pytest.raises(ValueError, match=r"lm.pt' holds a 'lm' model, expected 'clip'"):
        load_clip(tmp_path / "lm.pt")


def test_evaluate_lm_reports_text_metrics(model, tokenizer, small_data):
    with torch.no_grad():
        m = evaluate_lm(model, tokenizer, small_data.tokens[:50], n_samples=10, show=3)
    assert m["val_ce"] == pytest.approx(math.log(37), abs=0.3) and 0 <= m["val_token_acc"] <= 1
    assert len(m["samples"]) == 3 and isinstance(m["greedy_sample"], str)
    assert 0 <= m["sample_valid_frac"] <= 1 and isinstance(m["greedy_valid"], bool)


@pytest.mark.parametrize("tokens, prefix, message", [
    (torch.ones(2, 4), None, r"tokens: expected \(B, T\) torch.int64, got \(2, 4\) torch.float32"),
    (torch.ones(2, dtype=torch.long), None, r"tokens: expected \(B, T\) torch.int64, got \(2,\) torch.int64"),
    (torch.ones(2, 0, dtype=torch.long), None, r"got \(2, 0\) torch.int64"),
    (torch.tensor([[1, 37]]), None, r"tokens: expected values in \[0, 37\), got 1..37"),
    (torch.ones(2, 17, dtype=torch.long), None, r"tokens: 0 cached \+ 0 prefix \+ 17 tokens exceed the context "
                                                 r"max_len=16"),
    (torch.ones(2, 10, dtype=torch.long), torch.zeros(2, 7, 32), r"0 cached \+ 7 prefix \+ 10 tokens exceed"),
    (torch.ones(2, 4, dtype=torch.long), torch.zeros(3, 2, 32), r"prefix: expected \(B, K, 32\) torch.float32 "
                                                                r"with B = 2, got \(3, 2, 32\)"),
    (torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 2, 16), r"got \(2, 2, 16\) torch.float32"),
    (torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 32), r"got \(2, 32\) torch.float32"),
], ids=["float", "1-d", "empty", "id too large", "too long", "prefix too long", "prefix batch", "prefix width",
        "prefix 2-d"])
def test_forward_refuses_bad_inputs(model, tokens, prefix, message):
    with pytest.raises(ValueError, match=message):
        model(tokens, prefix)
