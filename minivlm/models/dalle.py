"""DALL-E's transformer (Ramesh et al. 2021, Sec. 2.2) at toy scale: one causal decoder reads a caption's tokens and
then writes the image's 8×8 VQ tokens, left to right, row by row. Because the caption comes first, the causal mask
already lets every image token attend to every text token (DALL-E's "text-to-image" attention); no cross-attention
is needed. Decoding the sampled tokens with the tokenizer's decoder gives the picture.

One joint vocabulary (`JointVocab`): the word tokenizer's ids first, then one id per codebook entry. A training
sequence has a fixed layout, as DALL-E's 256 text positions then 1024 image positions, so that an image token's
position always means the same grid cell:

    <bos> a large red star <eos> <pad> ... <pad>   <image>   c_0 c_1 ... c_63
    |------------- text_len tokens -------------|  marker    grid² image tokens

The loss is the plain next-token loss over text and image (padding is never a target). DALL-E weights the image
tokens 7/8 and the text 1/8; with 14 text and 64 image positions a plain mean is close to that already.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minivlm.concepts.validate import check_ids, check_positive, check_tensor
from minivlm.models.lm import CausalLM, LMConfig


@dataclass
class JointVocab:
    """Word ids [0, text_size) then image codes [text_size, text_size + codes): one id space for text and image."""
    text_size: int
    codes: int

    @property
    def size(self) -> int:
        return self.text_size + self.codes

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook indices -> joint ids; an index outside [0, codes) is a ValueError naming `codes`."""
        check_ids("codes", codes, self.codes, hint="codebook indices")
        return codes + self.text_size

    def to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Joint ids of image tokens -> codebook indices; a word id among them is a ValueError naming `ids`."""
        if ids.numel() and (ids.min() < self.text_size or ids.max() >= self.size):
            raise ValueError(f"ids: expected image-token ids in [{self.text_size}, {self.size}), got "
                             f"{int(ids.min())}..{int(ids.max())}")
        return ids - self.text_size

    def only(self, kind: str, device=None) -> torch.Tensor:
        """(size,) bool: True on the image codes (kind "image") or on the words (kind "text"), to restrict sampling."""
        mask = torch.zeros(self.size, dtype=torch.bool, device=device)  # (V,)
        if kind == "image":
            mask[self.text_size:] = True
        elif kind == "text":
            mask[:self.text_size] = True
        else:
            raise ValueError(f"kind: expected 'image' or 'text', got {kind!r}")
        return mask


@dataclass
class DalleConfig:
    text_vocab: int = 37  # len(Tokenizer())
    codes: int = 512  # the image tokenizer's codebook
    grid: int = 8  # image tokens per side
    text_len: int = 14  # <bos> + the longest caption (12 words) + <eos>
    image_id: int = 4  # the <image> marker, Tokenizer().image_id
    dim: int = 128
    layers: int = 4
    heads: int = 4

    def __post_init__(self):
        for name in ("text_vocab", "codes", "grid", "text_len", "dim", "layers", "heads"):
            check_positive(name, getattr(self, name))
        if not 0 <= self.image_id < self.text_vocab:
            raise ValueError(f"image_id: expected an id in [0, {self.text_vocab}), got {self.image_id}")


class Dalle(nn.Module):
    """text (B, text_len) padded caption ids + codes (B, grid²) -> next-token loss; `generate` draws codes from
    text."""

    def __init__(self, cfg: DalleConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab = JointVocab(cfg.text_vocab, cfg.codes)
        self.lm = CausalLM(LMConfig(vocab_size=self.vocab.size, max_len=cfg.text_len + 1 + cfg.grid ** 2,
                                    dim=cfg.dim, layers=cfg.layers, heads=cfg.heads))

    def prompt(self, text: torch.Tensor) -> torch.Tensor:
        """Captions (B, text_len) -> the prompt (B, text_len + 1): the caption, then the <image> marker."""
        check_ids("text", text, self.cfg.text_vocab, ("B", self.cfg.text_len), torch.long,
                  hint=f"padded word ids: Tokenizer(max_len={self.cfg.text_len}).encode_batch")
        marker = torch.full((len(text), 1), self.cfg.image_id, dtype=torch.long, device=text.device)  # (B, 1)
        return torch.cat([text, marker], dim=1)  # (B, text_len + 1)

    def sequence(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Captions (B, text_len) and codebook indices (B, grid²) -> joint-vocabulary sequences
        (B, text_len + 1 + grid²)."""
        prompt = self.prompt(text)  # (B, text_len + 1)
        check_tensor("codes", codes, (len(text), self.cfg.grid ** 2), torch.long,
                     hint="one row of image tokens per caption")
        return torch.cat([prompt, self.vocab.from_codes(codes)], dim=1)  # (B, text_len + 1 + grid²)

    def loss(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.lm.loss(self.sequence(text, codes))

    @torch.no_grad()
    def generate(self, text: torch.Tensor, n: int = 1, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Captions (B, text_len) -> n sampled images per caption as codebook indices (B, n, grid²): each caption's
        prompt is repeated n times and its image tokens are drawn among the codes only (KV-cached)."""
        check_positive("n", n)
        prompt = self.prompt(text).repeat_interleave(n, dim=0)  # (B n, text_len + 1)
        grid2 = self.cfg.grid ** 2
        allowed = self.vocab.only("image", prompt.device)  # (V,)
        out = self.lm.generate(prompt, grid2, temperature=temperature, top_k=top_k, generator=generator,
                               allowed=allowed)  # (B n, text_len + 1 + grid²)
        return self.vocab.to_codes(out[:, -grid2:]).reshape(len(text), n, grid2)  # (B, n, grid²)
