"""Toy CLIP (Radford et al. 2021): a ViT image encoder and a text transformer projected into one space,
trained with symmetric InfoNCE so that matching image/caption pairs have the highest cosine similarity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from minivlm.concepts.attention import TransformerBlock, padding_mask
from minivlm.concepts.info_nce import info_nce
from minivlm.concepts.patch_embed import PatchEmbed
from minivlm.concepts.validate import check_divides, check_ids, check_positive, check_tensor, describe


@dataclass
class VisionConfig:
    """What the vision tower reads: LLaVA and Flamingo keep only this part of their CLIP's config."""
    image_size: int = 32
    patch: int = 8
    channels: int = 3
    vision_dim: int = 64
    vision_layers: int = 2
    heads: int = 4

    def __post_init__(self):
        for name in ("image_size", "channels", "vision_dim", "vision_layers"):
            check_positive(name, getattr(self, name))
        check_divides("patch", self.patch, "image_size", self.image_size)
        check_divides("heads", self.heads, "vision_dim", self.vision_dim)

    @classmethod
    def of(cls, cfg) -> "VisionConfig":
        """A VisionConfig from itself, a CLIPConfig, or a dict of either's fields (as an old checkpoint stores a
        whole CLIPConfig): the vision fields are kept, the text ones dropped."""
        if isinstance(cfg, CLIPConfig):
            return cfg.vision
        if isinstance(cfg, dict):
            return cls(**{f.name: cfg[f.name] for f in fields(cls) if f.name in cfg})
        if not isinstance(cfg, cls):
            raise TypeError(f"vision: expected a VisionConfig, CLIPConfig or dict, got {type(cfg).__name__}")
        return cfg

    @property
    def grid(self) -> int:
        """Patches along each side of the image: the ViT gives grid * grid patch tokens, row-major."""
        return self.image_size // self.patch


@dataclass
class CLIPConfig:
    image_size: int = 32
    patch: int = 8
    channels: int = 3
    vision_dim: int = 64
    vision_layers: int = 2
    text_dim: int = 64
    text_layers: int = 2
    heads: int = 4
    embed_dim: int = 64
    vocab_size: int = 37
    max_len: int = 16
    pad_id: int = 0
    eos_id: int = 2
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0  # CLIP clips exp(t) at 100 to keep training stable

    def __post_init__(self):
        for name in ("text_dim", "text_layers", "embed_dim", "vocab_size", "max_len", "init_temperature"):
            check_positive(name, getattr(self, name))
        check_divides("heads", self.heads, "text_dim", self.text_dim)
        for name in ("pad_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name}: expected an id in [0, {self.vocab_size}), got {getattr(self, name)}")
        if self.max_logit_scale < 1:
            raise ValueError(f"max_logit_scale: expected >= 1 (log 1 = 0 is the lowest t), got {self.max_logit_scale}")
        self.vision  # checks the vision fields

    @property
    def vision(self) -> VisionConfig:
        """The vision tower's part of the config."""
        return VisionConfig(**{f.name: getattr(self, f.name) for f in fields(VisionConfig)})

    @property
    def grid(self) -> int:
        """Patches along each side of the image: the ViT gives grid * grid patch tokens, row-major."""
        return self.vision.grid


class VisionTransformer(nn.Module):
    """Patches + learned positions -> pre-LN blocks -> LayerNorm -> mean over patches. Returns (B, D) or,
    with `tokens=True`, every patch token (B, N, D) for models that read the whole grid (LLaVA, Flamingo).

    `layer` picks which patch tokens: -1 (default) the last block's, after the final LayerNorm; -2 the output of the
    block before it, as LLaVA reads CLIP ("the grid features before the last Transformer layer", Sec. 4.1/5.2)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.patch_embed = PatchEmbed(cfg.image_size, cfg.patch, cfg.channels, cfg.vision_dim)
        self.pos = nn.Parameter(torch.randn(1, self.patch_embed.num_patches, cfg.vision_dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.vision_dim, cfg.heads) for _ in range(cfg.vision_layers))
        self.ln = nn.LayerNorm(cfg.vision_dim)

    def forward(self, images: torch.Tensor, tokens: bool = False, layer: int = -1) -> torch.Tensor:
        depth = len(self.blocks)
        if not -depth - 1 <= layer <= -1 or (layer != -1 and not tokens):
            raise ValueError(f"layer: expected -1 (last) .. {-depth - 1} (the patch embeddings), with tokens=True "
                             f"for any but -1, got {layer} (tokens={tokens})")
        x = self.patch_embed(images) + self.pos  # (B, N, D)
        for block in self.blocks[:depth + 1 + layer]:
            x = block(x)  # (B, N, D)
        if layer != -1:
            return x  # (B, N, D): an inner layer's tokens, no final LayerNorm
        x = self.ln(x)  # (B, N, D)
        return x if tokens else x.mean(dim=1)  # (B, N, D) or (B, D)


class TextTransformer(nn.Module):
    """Token + position embeddings -> bidirectional pre-LN blocks with a padding mask -> LayerNorm, pooled at
    the <eos> token (which has seen the whole caption)."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.text_dim)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.text_dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.text_dim, cfg.heads) for _ in range(cfg.text_layers))
        self.ln = nn.LayerNorm(cfg.text_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, T = tokens.shape
        x = self.tok(tokens) + self.pos[:, :T]  # (B, T, D)
        mask = padding_mask(tokens, self.cfg.pad_id)  # (B, 1, 1, T)
        for block in self.blocks:
            x = block(x, mask)  # (B, T, D)
        x = self.ln(x)  # (B, T, D)
        eos = (tokens == self.cfg.eos_id).int().argmax(dim=1)  # (B,) first <eos>
        return x[torch.arange(B, device=x.device), eos]  # (B, D)


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer(cfg.vision)
        self.text = TextTransformer(cfg)
        self.image_proj = nn.Linear(cfg.vision_dim, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))  # t in exp(t)

    def logit_scale(self) -> torch.Tensor:
        """exp(t) = 1/temperature, unclamped so that its gradient is never cut: `after_step` keeps it in range."""
        return self.log_scale.exp()

    @torch.no_grad()
    def after_step(self) -> None:
        """After each optimiser step, clamp t to [0, log max_logit_scale], as open_clip does (CLIP's 100 cap)."""
        self.log_scale.clamp_(0, math.log(self.cfg.max_logit_scale))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, E) unit-norm embeddings."""
        s = self.cfg.image_size
        check_tensor("images", images, ("B", self.cfg.channels, s, s), self.image_proj.weight.dtype,
                     hint="use minivlm.data.preprocess on uint8 pictures")
        return nn.functional.normalize(self.image_proj(self.visual(images)), dim=-1)  # (B, E)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, E) unit-norm embeddings."""
        T = check_ids("tokens", tokens, self.cfg.vocab_size, "B T", torch.long)["T"]
        if T > self.cfg.max_len:
            raise ValueError(f"tokens: expected (B, T) with T <= max_len={self.cfg.max_len}, got {describe(tokens)}")
        if not (tokens == self.cfg.eos_id).any(dim=1).all():
            raise ValueError("tokens: every caption needs an <eos> token (use Tokenizer.encode_batch)")
        return nn.functional.normalize(self.text_proj(self.text(tokens)), dim=-1)  # (B, E)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Similarity logits (B_images, B_texts), scaled by 1/temperature."""
        return self.logit_scale() * self.encode_image(images) @ self.encode_text(tokens).T  # (B, B)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE over the batch. `groups` (B,): pairs with equal ids are all positives of each other
        (the recipe passes caption meanings, so "A left of B" and "B right of A" are not pushed apart)."""
        if len(images) != len(tokens):
            raise ValueError(f"images, tokens: batch sizes differ ({len(images)} vs {len(tokens)})")
        return info_nce(self.encode_image(images), self.encode_text(tokens), self.logit_scale(), groups)
