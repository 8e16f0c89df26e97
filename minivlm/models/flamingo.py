"""Flamingo (Alayrac et al. 2022, Sec. 2, Fig. 3): a frozen vision encoder, a trainable Perceiver Resampler that turns
each image (or video clip) into R visual tokens (Sec. 2.1, Fig. 5), and a frozen causal LM with trainable GATED
XATTN-DENSE blocks inserted before its blocks (Sec. 2.2, Fig. 4). The text keeps its own positions: <image> is one
ordinary token, and each text token cross-attends only to the last image at or before it (Sec. 2.3, Fig. 7).

With the gates at 0 the model computes exactly the frozen LM's logits; training opens them as far as images help.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from minivlm.concepts.attention import causal_mask
from minivlm.concepts.gated_xattn import GatedCrossAttentionBlock, media_mask
from minivlm.concepts.next_token import next_token_loss
from minivlm.concepts.resampler import PerceiverResampler
from minivlm.concepts.validate import check_ids, check_positive, check_tensor
from minivlm.models.clip import VisionConfig, VisionTransformer
from minivlm.models.lm import CausalLM, LMConfig


@dataclass
class FlamingoConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)  # a CLIPConfig or a dict of its fields also do
    lm: LMConfig = field(default_factory=LMConfig)  # its max_len counts text tokens only: images add none
    latents: int = 8  # R visual tokens per image or clip
    resampler_depth: int = 2
    max_frames: int = 1  # T frames per clip: 1 for still images, more for video
    heads: int = 4  # of the resampler's attention and of the gated cross-attention
    init_gate: float = 0.0  # alpha at initialisation: 0 is the paper's, the model starts as the frozen LM
    xattn_every: int = 1  # a gated block before every k-th LM block (the paper's larger models use k = 4 or 7)
    feature_layer: int = -1  # which ViT layer's patch tokens the resampler reads (see VisionTransformer)
    patch_positions: bool = False  # add a learned embedding per patch position before the resampler (not the paper's)
    resampler_positions: float = 0.0  # > 0: a position-aware resampler (concepts/resampler.py; not the paper's)
    image_id: int = 4  # the <image> placeholder

    def __post_init__(self):
        self.vision = VisionConfig.of(self.vision)  # a CLIP's config, or a checkpoint's asdict(): its vision part
        if isinstance(self.lm, dict):
            self.lm = LMConfig(**self.lm)
        for name in ("latents", "resampler_depth", "max_frames", "heads", "xattn_every"):
            check_positive(name, getattr(self, name))
        n = self.vision.grid ** 2
        if self.resampler_positions and self.latents != n:
            raise ValueError(f"resampler_positions: a position-aware resampler needs one latent per patch, "
                             f"latents = {n}, got latents={self.latents}")


class Flamingo(nn.Module):
    """Vision tower -> Perceiver Resampler -> gated cross-attention into a frozen CausalLM (Fig. 3).
    `loss` trains the resampler and the gated blocks; `generate` continues interleaved text."""

    def __init__(self, cfg: FlamingoConfig):
        super().__init__()
        self.cfg = cfg
        d_v = cfg.vision.vision_dim
        self.vision = VisionTransformer(cfg.vision)
        # the resampler and the cross-attention's keys/values stay at vision width: no projection needed
        self.resampler = PerceiverResampler(d_v, cfg.resampler_depth, cfg.latents, cfg.heads, cfg.max_frames,
                                            positions=cfg.resampler_positions)
        # where each patch is, said again: the resampler's attention pools the patches by content, and the frozen
        # ViT's features keep little of their position by its last layers (bench/README.md, "Flamingo", measures it)
        n_patches = cfg.vision.grid ** 2
        self.patch_pos = nn.Parameter(0.02 * torch.randn(n_patches, d_v)) if cfg.patch_positions else None
        n_xattn = -(-cfg.lm.layers // cfg.xattn_every)  # blocks 0, k, 2k, ... get one
        self.xattn = nn.ModuleList(GatedCrossAttentionBlock(cfg.lm.dim, cfg.heads, d_v, init_gate=cfg.init_gate)
                                   for _ in range(n_xattn))
        self.lm = CausalLM(cfg.lm)
        self.freeze()

    def freeze(self) -> None:
        """Only the resampler and the gated blocks train; the vision encoder and the LM stay as pretrained (Sec. 2)."""
        self.vision.requires_grad_(False)
        self.lm.requires_grad_(False)
        self.resampler.requires_grad_(True)
        self.xattn.requires_grad_(True)
        if self.patch_pos is not None:
            self.patch_pos.requires_grad_(True)

    def train(self, mode: bool = True) -> "Flamingo":
        super().train(mode)
        self.vision.eval()  # frozen: always in inference mode
        self.lm.eval()
        return self

    def gates(self) -> list[dict[str, float]]:
        """tanh(alpha) of each gated block, in LM order: how much of each branch reaches the LM (Sec. 2.2)."""
        return [block.gates() for block in self.xattn]

    def visual_tokens(self, media: torch.Tensor) -> torch.Tensor:
        """media (B, M, T, 3, S, S), M images of T frames per sequence -> (B, M*R, D_v): each image or clip through
        the frozen ViT (its patch tokens) and the resampler on its own (Sec. 2.1), then laid out in order."""
        c, s = self.cfg.vision.channels, self.cfg.vision.image_size
        B, M, T = check_tensor("media", media, ("B", "M", "T", c, s, s), self.vision.pos.dtype, empty=("M",),
                               hint="M images of T frames per sequence, each through minivlm.data.preprocess").values()
        if T > self.cfg.max_frames:
            raise ValueError(f"media: expected T <= max_frames={self.cfg.max_frames} frames per image, got T={T}")
        if M == 0:  # text only: nothing to attend to
            return media.new_zeros(B, 0, self.cfg.vision.vision_dim)  # (B, 0, D_v)
        with torch.no_grad():  # frozen: no graph
            frames = media.reshape(B * M * T, c, s, s)  # (B*M*T, 3, S, S)
            x = self.vision(frames, tokens=True, layer=self.cfg.feature_layer)  # (B*M*T, N, D_v)
        if self.patch_pos is not None:
            x = x + self.patch_pos  # (B*M*T, N, D_v)
        x = self.resampler(x.reshape(B * M, T, x.shape[1], x.shape[2]))  # (B*M, R, D_v)
        return x.reshape(B, M * self.cfg.latents, x.shape[2])  # (B, M*R, D_v)

    def _check_tokens(self, tokens: torch.Tensor, batch: int, n_images: int) -> None:
        lm = self.cfg.lm
        L = check_ids("tokens", tokens, lm.vocab_size, "B L", torch.long, dims={"B": batch})["L"]
        if L > lm.max_len:
            raise ValueError(f"tokens: expected L <= max_len={lm.max_len} (the LM's context), got L={L}")
        counts = (tokens == self.cfg.image_id).sum(dim=1)  # (B,)
        for row, n in enumerate(counts.tolist()):
            if n != n_images:
                raise ValueError(f"tokens: row {row} has {n} <image> placeholders (id {self.cfg.image_id}), but media "
                                 f"gives M={n_images} images per row")

    def decode(self, tokens: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) reading visual tokens (B, M*R, D_v) -> logits (B, L, V): the LM's own forward pass with a
        gated block before every `xattn_every`-th block, each token seeing only its last image (Fig. 3, 7).
        Unchecked: `forward` and `generate` validate the inputs first."""
        lm, every, L, R = self.lm, self.cfg.xattn_every, tokens.shape[1], self.cfg.latents
        mask = media_mask(tokens, self.cfg.image_id, R, visual.shape[1] // R)  # (B, 1, L, M*R)
        causal = causal_mask(L, tokens.device)  # (L, L)
        y = lm.tok(tokens) + lm.pos[:, :L]  # (B, L, D)
        for i, block in enumerate(lm.blocks):
            if i % every == 0:
                y = self.xattn[i // every](y, visual, mask)  # (B, L, D): tanh-gated, the identity at alpha = 0
            y = block(y, causal)  # (B, L, D): frozen
        return lm.head(y)  # (B, L, V): the LM's tied head

    def forward(self, tokens: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) with M <image> placeholders per row, media (B, M, T, 3, S, S) -> logits (B, L, V)."""
        visual = self.visual_tokens(media)  # (B, M*R, D_v)
        self._check_tokens(tokens, media.shape[0], media.shape[1])
        return self.decode(tokens, visual)  # (B, L, V)

    def loss(self, tokens: torch.Tensor, media: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token loss on the text (Sec. 2, eq. 1: -log p(y_l | y_<l, x_<=l)), padding excluded and, with mask
        (B, L) bool, only on the targets where it is True."""
        return next_token_loss(self(tokens, media), tokens, self.cfg.lm.pad_id, mask)

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, media: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedily continue prompts tokens (B, L) about media (B, M, T, 3, S, S) -> (B, L + n) ids.

        A toy without a KV cache: each step re-runs the whole text through the LM (the visual tokens are computed
        once). <image> is never produced (no image would follow it). A row that produced <eos> is filled with <pad>;
        generation stops when every row has, after `max_new_tokens`, or when the text fills the LM's context.
        """
        check_positive("max_new_tokens", max_new_tokens)
        visual = self.visual_tokens(media)  # (B, M*R, D_v)
        self._check_tokens(tokens, media.shape[0], media.shape[1])
        cfg = self.cfg.lm
        done = torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)  # (B,)
        for _ in range(min(max_new_tokens, cfg.max_len - tokens.shape[1])):
            logits = self.decode(tokens, visual)[:, -1]  # (B, V)
            logits[:, self.cfg.image_id] = float("-inf")
            nxt = logits.argmax(dim=-1).masked_fill(done, cfg.pad_id)  # (B,)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)  # (B, L + 1)
            done |= nxt == cfg.eos_id
            if done.all():
                break
        return tokens
