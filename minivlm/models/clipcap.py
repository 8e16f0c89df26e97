"""ClipCap (Mokady et al. 2021, Sec. 3): a frozen CLIP image embedding, a mapping network F to k prefix embeddings,
and a causal LM that reads the prefix and learns to continue it with the caption (cross-entropy on the caption
tokens only). The paper's two settings: an MLP F with the LM fine-tuned, or a transformer F with the LM frozen.

Positions: our LM has one learned position table over prefix + text (`LMConfig.max_len`), so the caption sits at
positions k..k+T-1 after a k-embedding prefix. An LM pretrained on text alone at 0..T-1 would see untrained
positions there, which a frozen LM could never fix. The recipe therefore pretrains the LM with the context it will
have: `train_lm(prefix_len=k)` places each caption after a blank prefix of k zero embeddings (only the position
embeddings fill those slots), so every position is trained, and ClipCap later puts F's output in the same slots.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from minivlm.concepts.mapping import MLPMapper, TransformerMapper
from minivlm.models.clip import CLIP, CLIPConfig
from minivlm.concepts.validate import check_positive, check_tensor
from minivlm.models.lm import CausalLM, LMConfig

MAPPERS = ("mlp", "transformer")


@dataclass
class ClipCapConfig:
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    lm: LMConfig = field(default_factory=lambda: LMConfig(max_len=16 + 4))  # room for the prefix + 16 tokens
    mapper: str = "mlp"  # "mlp" (the paper's choice with a fine-tuned LM) or "transformer" (with a frozen LM)
    prefix_len: int = 4  # k
    freeze_lm: bool = False
    clip_len: int = 4  # transformer F: tokens the CLIP embedding is projected to
    mapper_layers: int = 2  # transformer F: blocks

    def __post_init__(self):
        if isinstance(self.clip, dict):  # as a checkpoint stores it (dataclasses.asdict)
            self.clip = CLIPConfig(**self.clip)
        if isinstance(self.lm, dict):
            self.lm = LMConfig(**self.lm)
        if self.mapper not in MAPPERS:
            raise ValueError(f"mapper: expected one of {MAPPERS}, got {self.mapper!r}")
        if not 0 < self.prefix_len < self.lm.max_len - 1:
            raise ValueError(f"prefix_len: expected 1 <= k < lm.max_len - 1 = {self.lm.max_len - 1} (room for "
                             f"<bos> and one word), got {self.prefix_len}")
        check_positive("clip_len", self.clip_len)
        check_positive("mapper_layers", self.mapper_layers)

    @property
    def text_len(self) -> int:
        """The longest caption, in tokens with <bos> and <eos>, that fits after the prefix."""
        return self.lm.max_len - self.prefix_len


class ClipCap(nn.Module):
    """Frozen CLIP -> F -> prefix (B, k, D) -> CausalLM. The CLIP (and, with `freeze_lm`, the LM) has
    requires_grad False and stays in eval mode; only what is trained reaches the optimiser."""

    def __init__(self, cfg: ClipCapConfig):
        super().__init__()
        self.cfg = cfg
        self.clip = CLIP(cfg.clip)
        E, D, k = cfg.clip.embed_dim, cfg.lm.dim, cfg.prefix_len
        self.mapper = (MLPMapper(E, D, k) if cfg.mapper == "mlp" else
                       TransformerMapper(E, D, k, cfg.clip_len, cfg.mapper_layers, cfg.lm.heads))
        self.lm = CausalLM(cfg.lm)
        for part in (self.clip, self.lm) if cfg.freeze_lm else (self.clip,):
            part.requires_grad_(False)

    def train(self, mode: bool = True) -> "ClipCap":
        super().train(mode)
        self.clip.eval()  # frozen parts always run as at inference
        if self.cfg.freeze_lm:
            self.lm.eval()
        return self

    def prefix(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, k, D) prefix embeddings p_1..p_k = F(CLIP(x)) (Sec. 3)."""
        with torch.no_grad():
            embeds = self.clip.encode_image(images)  # (B, E); checks the images
        return self.mapper(embeds)  # (B, k, D)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token loss of the caption tokens (B, T) after each image's prefix (Sec. 3): only caption tokens
        are targets; the prefix positions are context."""
        dims = check_tensor("images", images, "B C H W")
        check_tensor("tokens", tokens, "B T", dims=dims, hint="one caption per image")
        return self.lm.loss(tokens, self.prefix(images))

    @torch.no_grad()
    def caption(self, images: torch.Tensor, tokenizer, temperature: float = 0.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> list[str]:
        """Captions of (B, 3, S, S) preprocessed images: greedy at temperature 0 (Sec. 3, "Inference"), else
        sampled with `generator`; decoded with `tokenizer`."""
        prefix = self.prefix(images)  # (B, k, D)
        bos = torch.full((len(images), 1), self.cfg.lm.bos_id, device=prefix.device)  # (B, 1)
        ids = self.lm.generate(bos, self.cfg.text_len - 1, prefix, temperature, top_k, generator)  # (B, <= text_len)
        return [tokenizer.decode(row) for row in ids]
