"""CM3 (Aghajanyan et al. 2022) at toy scale: one causal decoder over documents that hold a caption and an image's
tokens, in either order, trained with the causally masked transform of `concepts/causal_masking.py`. The document

    <bos> a large red star <image> c_0 ... c_63 <eos>     (or the image first: <bos> <image> c_0 ... c_63 words <eos>)

has one span (or none) moved to the end behind a sentinel, so one model learns three uses, chosen by the prompt
alone (Sec. 4 of the paper builds its captioning, generation and infilling prompts the same way):

    captioning   <bos> <mask:0> <image> c_0 ... c_63 <mask:0>               -> caption words, <eos>
    generation   <bos> a large red star <image>                             -> 64 image tokens (plain left to right)
    infilling    <bos> a large blue star <image> c_0 .. <mask:0> .. c_63 <mask:0> -> the masked image tokens

A plain left-to-right model can caption an image that comes first and draw an image that comes second, but it has
never seen what follows a hole, so it cannot fill one in: that is what the causal mask adds.

The loss is the next-token loss, except on the sentinel left in the document: it stands at a random place, so the
paper gives it weight 0 (`loss_mask`). The ids are `JointVocab`'s: words, then image codes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from minivlm.concepts.causal_masking import causal_mask_transform
from minivlm.concepts.next_token import next_token_loss
from minivlm.concepts.validate import check_positive
from minivlm.models.dalle import JointVocab
from minivlm.models.lm import CausalLM, LMConfig


@dataclass
class CM3Config:
    text_vocab: int = 37  # len(Tokenizer()); its ids 0..4 are <pad> <bos> <eos> <unk> <image>, 5..12 the sentinels
    codes: int = 512
    grid: int = 8
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3
    image_id: int = 4
    sentinel_ids: tuple[int, ...] = field(default_factory=lambda: tuple(range(5, 13)))  # <mask:0> .. <mask:7>
    max_len: int = 84  # <bos> + 12 words + <image> + 64 codes + <eos> + 2 sentinels per span (one span)
    dim: int = 128
    layers: int = 4
    heads: int = 4

    def __post_init__(self):
        for name in ("text_vocab", "codes", "grid", "max_len", "dim", "layers", "heads"):
            check_positive(name, getattr(self, name))
        special = (self.pad_id, self.bos_id, self.eos_id, self.unk_id, self.image_id, *self.sentinel_ids)
        if not all(0 <= i < self.text_vocab for i in special):
            raise ValueError(f"sentinel_ids, *_id: expected ids in [0, {self.text_vocab}), got {special}")


class CM3(nn.Module):
    """Documents of words and image tokens (B, T), causally masked or not -> next-token loss; prompts -> text or
    image tokens through `complete`."""

    def __init__(self, cfg: CM3Config):
        super().__init__()
        self.cfg = cfg
        self.vocab = JointVocab(cfg.text_vocab, cfg.codes)
        self.lm = CausalLM(LMConfig(vocab_size=self.vocab.size, max_len=cfg.max_len, dim=cfg.dim,
                                    layers=cfg.layers, heads=cfg.heads, pad_id=cfg.pad_id, bos_id=cfg.bos_id,
                                    eos_id=cfg.eos_id))

    def document(self, words: list[int], codes: list[int], image_first: bool) -> list[int]:
        """Caption word ids (no <bos>/<eos>) and codebook indices (grid²) -> the document body, image marker included,
        with the codes as joint ids."""
        n = self.cfg.grid ** 2
        if len(codes) != n:
            g = self.cfg.grid
            raise ValueError(f"codes: expected {n} image tokens (a {g}x{g} grid), got {len(codes)}")
        image = [self.cfg.image_id] + self.vocab.from_codes(torch.as_tensor(codes)).tolist()
        return image + list(words) if image_first else list(words) + image

    def masked(self, body: list[int], spans: list[tuple[int, int]]) -> list[int]:
        """A document body and its spans -> <bos> + the causally masked body + <eos>: one training sequence."""
        out = [self.cfg.bos_id] + causal_mask_transform(body, spans, list(self.cfg.sentinel_ids)) + [self.cfg.eos_id]
        if len(out) > self.cfg.max_len:
            raise ValueError(f"body: {len(out)} tokens once masked, more than max_len={self.cfg.max_len}")
        return out

    def loss_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> (B, T) bool, False on each sentinel's first occurrence (its place in the document)."""
        keep = torch.ones_like(tokens, dtype=torch.bool)  # (B, T)
        for s in self.cfg.sentinel_ids:
            hit = tokens == s  # (B, T)
            first = hit & (hit.cumsum(dim=1) == 1)  # (B, T): the first occurrence in each row
            keep &= ~first
        return keep

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token loss over padded sequences (B, T), the sentinels in place weighted 0."""
        return next_token_loss(self.lm(tokens), tokens, self.cfg.pad_id, self.loss_mask(tokens))

    @torch.no_grad()
    def complete(self, prompts: list[list[int]], n_new: int, kind: str, temperature: float = 0.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> list[list[int]]:
        """Continue each prompt by up to n_new tokens of `kind`: "image" draws exactly n_new codes (codebook
        indices back), "text" draws words until <eos> (word ids back, <eos> and after dropped). Prompts of equal
        length run as one batch."""
        if not prompts:
            raise ValueError("prompts: expected at least one prompt, got none")
        device = self.lm.tok.weight.device
        allowed = self.vocab.only(kind, device)  # (V,)
        if kind == "text":  # words and <eos>; no sentinel, marker, padding or <bos>
            cfg = self.cfg
            allowed[[cfg.pad_id, cfg.bos_id, cfg.unk_id, cfg.image_id, *cfg.sentinel_ids]] = False
        out: list[list[int] | None] = [None] * len(prompts)
        for length in sorted({len(p) for p in prompts}):
            rows = [i for i, p in enumerate(prompts) if len(p) == length]
            tokens = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)  # (b, length)
            new = self.lm.generate(tokens, n_new, temperature=temperature, top_k=top_k, generator=generator,
                                   allowed=allowed)[:, length:]  # (b, <= n_new)
            for i, row in zip(rows, new.tolist()):
                if kind == "image":
                    out[i] = self.vocab.to_codes(torch.tensor(row)).tolist()
                else:
                    out[i] = row[:row.index(self.cfg.eos_id)] if self.cfg.eos_id in row else row
        return out
