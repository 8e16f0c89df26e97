"""A small causal decoder language model (GPT, Radford et al. 2018, section 3.1), the language side of the
generative VLMs: ClipCap feeds it image embeddings as a `prefix` before the text tokens; LLaVA splices them into
the embedded text and calls `decode`.

Token + learned position embeddings -> pre-LN blocks with a causal mask -> LayerNorm -> logits through the token
embedding matrix (weight tying, Press & Wolf 2017). `generate` decodes greedily or by (top-k) sampling, with a
KV cache so that each new token costs one query instead of re-running the whole sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minivlm.concepts.attention import KVCache, TransformerBlock, causal_mask
from minivlm.concepts.next_token import next_token_loss
from minivlm.concepts.validate import check_divides, check_ids, check_positive, check_tensor


@dataclass
class LMConfig:
    vocab_size: int = 37
    max_len: int = 16  # context: prefix embeddings + tokens
    dim: int = 128
    layers: int = 2
    heads: int = 4
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "dim", "layers"):
            check_positive(name, getattr(self, name))
        check_divides("heads", self.heads, "dim", self.dim)
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name}: expected an id in [0, {self.vocab_size}), got {getattr(self, name)}")


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
                generator: torch.Generator | None = None, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) next ids: the argmax when temperature is 0, else a draw from
    softmax(logits / temperature) over the top_k most likely ids (top-k sampling, Fan et al. 2018).
    `allowed` (V,) bool keeps the choice among some ids (image codes only, say); the others get probability 0."""
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))  # (B, V)
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]  # (B,)


class CausalLM(nn.Module):
    """GPT-style decoder: `forward` gives next-token logits, `loss` the next-token loss, `generate` new text."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim)
        nn.init.normal_(self.tok.weight, std=0.02)  # small, as GPT-2: it is also the output head
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None,
                cache: list[KVCache] | None = None) -> torch.Tensor:
        """tokens (B, T), prefix (B, K, D) embeddings placed before them, or None -> logits (B, T, V) at the token
        positions. With `cache` (one KVCache per block) the tokens continue the cached sequence."""
        past = len(cache[0]) if cache else 0
        dims = check_ids("tokens", tokens, self.cfg.vocab_size, "B T", torch.long)
        if prefix is not None:
            check_tensor("prefix", prefix, ("B", "K", self.cfg.dim), self.tok.weight.dtype, dims=dims)
        k = 0 if prefix is None else dims["K"]
        if past + k + dims["T"] > self.cfg.max_len:
            raise ValueError(f"tokens: {past} cached + {k} prefix + {dims['T']} tokens exceed the context "
                             f"max_len={self.cfg.max_len}")
        return self._logits(tokens, prefix, cache)  # (B, T, V)

    def _logits(self, tokens: torch.Tensor, prefix: torch.Tensor | None, cache: list[KVCache] | None) -> torch.Tensor:
        """`forward` without its checks, for the generation loop."""
        x = self.tok(tokens)  # (B, T, D)
        if prefix is not None:
            x = torch.cat([prefix, x], dim=1)  # (B, K + T, D)
        return self._decode(x, cache)[:, -tokens.shape[1]:]  # (B, T, V): the token positions

    def decode(self, embeds: torch.Tensor, cache: list[KVCache] | None = None) -> torch.Tensor:
        """An already embedded sequence (B, S, D) -> logits (B, S, V) at every position: the entry for inputs that
        are not a prefix, such as LLaVA's visual tokens spliced in at the <image> placeholder."""
        past = len(cache[0]) if cache else 0
        S = check_tensor("embeds", embeds, ("B", "S", self.cfg.dim), self.tok.weight.dtype)["S"]
        if past + S > self.cfg.max_len:
            raise ValueError(f"embeds: expected {past} cached + S <= max_len={self.cfg.max_len}, got S={S}")
        return self._decode(embeds, cache)  # (B, S, V)

    def _decode(self, embeds: torch.Tensor, cache: list[KVCache] | None) -> torch.Tensor:
        past = len(cache[0]) if cache else 0
        n = embeds.shape[1]
        x = embeds + self.pos[:, past:past + n]  # (B, S, D)
        mask = causal_mask(n, x.device, past)  # (S, past + S)
        for block, layer_cache in zip(self.blocks, cache or [None] * len(self.blocks)):
            x = block(x, mask, layer_cache)  # (B, S, D)
        return self.head(x)  # (B, S, V)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, S, D) -> logits (B, S, V): final LayerNorm, then the token embedding, transposed (the
        tied output head). Models that run the blocks themselves (Flamingo) end with it too."""
        return F.linear(self.ln(x), self.tok.weight)  # (B, S, V)

    def loss(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token cross-entropy over the non-padding targets of (B, T) padded captions, read after `prefix`
        (B, K, D) if given; the prefix positions are context, never targets."""
        return next_token_loss(self(tokens, prefix), tokens, self.cfg.pad_id)

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, max_new_tokens: int, prefix: torch.Tensor | None = None,
                 temperature: float = 0.0, top_k: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """Continue the prompts tokens (B, T) (after `prefix` (B, K, D), if given) -> (B, T + n) ids.

        Greedy at temperature 0, else sampled (see `sample_next`) with `generator` (on the model's device), among
        the `allowed` (V,) ids only when given (without <eos> among them, every row runs to the end).
        A row that has produced <eos> is filled with <pad> after it; generation stops when every row has, after
        `max_new_tokens`, or when prefix + tokens fill the context. `use_cache=False` re-runs the whole sequence
        at every step: the same result, more slowly.
        """
        check_positive("max_new_tokens", max_new_tokens)
        if temperature < 0 or (top_k is not None and top_k < 1):
            raise ValueError(f"temperature, top_k: expected temperature >= 0 and top_k >= 1 or None, got "
                             f"{temperature} and {top_k}")
        cfg = self.cfg
        if allowed is not None:
            check_tensor("allowed", allowed, (cfg.vocab_size,), torch.bool)
            if not allowed.any():
                raise ValueError(f"allowed: expected a bool ({cfg.vocab_size},) mask with at least one True")
        cache = [KVCache() for _ in self.blocks] if use_cache else None
        logits = self(tokens, prefix, cache)[:, -1]  # (B, V); checks that prefix + prompt fit the context
        room = cfg.max_len - tokens.shape[1] - (0 if prefix is None else prefix.shape[1])
        done = torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)  # (B,)
        for step in range(min(max_new_tokens, room)):
            if step > 0:
                # with the cache only the newest token goes in, else the whole sequence again
                step_in = (tokens[:, -1:], None, cache) if use_cache else (tokens, prefix, None)
                logits = self._logits(*step_in)[:, -1]  # (B, V)
            nxt = sample_next(logits, temperature, top_k, generator, allowed).masked_fill(done, cfg.pad_id)  # (B,)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)  # (B, T + step + 1)
            done |= nxt == cfg.eos_id
            if done.all():
                break
        return tokens
