"""LLaVA (Liu et al. 2023, Sec. 4): a frozen CLIP vision encoder's patch tokens, a trainable projector into the word
embedding space, and those visual tokens spliced into a causal LM's input where the prompt says <image>.

Training has two stages (Sec. 4.2): 1, feature alignment, trains only the projector on image-caption pairs; 2,
end to end, trains the projector and the LM on instruction data. The vision encoder stays frozen throughout.
The loss is the next-token loss on the answer tokens only (Sec. 4.2, eq. 3).

Not LLaVA's: `visual_positions` > 0 adds a fixed 2-D sin-cos code (concepts/positions.py) to each visual token, so
that the LM is told where on the image grid each token came from instead of having to learn it (see
recipes/llava.py for what it changes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from minivlm.concepts.next_token import next_token_loss
from minivlm.concepts.positions import sincos_2d
from minivlm.concepts.projector import Projector, expand, image_positions, splice
from minivlm.concepts.validate import check_ids, check_tensor
from minivlm.models.clip import VisionConfig, VisionTransformer
from minivlm.models.lm import CausalLM, LMConfig


@dataclass
class LLaVAConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)  # a CLIPConfig or a dict of its fields also do
    lm: LMConfig = field(default_factory=lambda: LMConfig(max_len=39))  # 24 text tokens - <image> + 16 visual
    projector: str = "mlp"  # "linear" (LLaVA) or "mlp" (LLaVA-1.5)
    feature_layer: int = -2  # which ViT layer's patch tokens: -2 the one before the last (LLaVA's choice), -1 the last
    freeze_vision: bool = True  # False only for the from-scratch baseline, whose vision tower trains too
    visual_positions: float = 0.0  # scale of a fixed 2-D sin-cos code added to each visual token; 0: none (LLaVA's)
    max_len: int = 24  # text tokens of one exchange, <bos> ... <eos>, the <image> placeholder counted once
    image_id: int = 4

    def __post_init__(self):
        self.vision = VisionConfig.of(self.vision)  # a CLIP's config, or a checkpoint's asdict(): its vision part
        if isinstance(self.lm, dict):
            self.lm = LMConfig(**self.lm)
        n = self.vision.grid ** 2
        if self.lm.max_len < self.max_len - 1 + n:
            raise ValueError(f"lm: max_len={self.lm.max_len} cannot hold {self.max_len} text tokens with the "
                             f"<image> placeholder replaced by {n} visual tokens")
        if self.visual_positions and self.lm.dim % 4:
            raise ValueError(f"visual_positions: a 2-D sin-cos code needs lm.dim a multiple of 4, got {self.lm.dim}")


class LLaVA(nn.Module):
    """Vision tower -> projector -> splice at <image> -> CausalLM. `loss` trains, `answer` answers questions."""

    def __init__(self, cfg: LLaVAConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionTransformer(cfg.vision)
        self.projector = Projector(cfg.vision.vision_dim, cfg.lm.dim, cfg.projector)
        self.lm = CausalLM(cfg.lm)
        grid = cfg.vision.grid
        pos = (sincos_2d(grid, cfg.lm.dim) * cfg.visual_positions if cfg.visual_positions
               else torch.zeros(grid * grid, cfg.lm.dim))  # (N, D)
        self.register_buffer("visual_pos", pos, persistent=False)  # a function of the config: not saved
        self.set_stage(2)

    def set_stage(self, stage: int) -> None:
        """Which parameters train (Sec. 4.2): stage 1 the projector alone, stage 2 the projector and the LM.
        The vision encoder never trains, unless `freeze_vision` is off (not LLaVA: a baseline without CLIP)."""
        if stage not in (1, 2):
            raise ValueError(f"stage: expected 1 (alignment) or 2 (end to end), got {stage!r}")
        self.vision.requires_grad_(not self.cfg.freeze_vision)
        self.projector.requires_grad_(True)
        self.lm.requires_grad_(stage == 2)

    def train(self, mode: bool = True) -> "LLaVA":
        super().train(mode)
        if self.cfg.freeze_vision:
            self.vision.eval()  # frozen: always in inference mode
        return self

    def _check_images(self, images: torch.Tensor) -> dict[str, int]:
        s, c = self.cfg.vision.image_size, self.cfg.vision.channels
        return check_tensor("images", images, ("B", c, s, s), self.vision.pos.dtype, hint="minivlm.data.preprocess")

    def _check(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        dims = check_ids("tokens", tokens, self.cfg.lm.vocab_size, "B T", torch.long, dims=self._check_images(images))
        if dims["T"] > self.cfg.max_len:
            raise ValueError(f"tokens: expected T <= max_len={self.cfg.max_len}, got T={dims['T']}")
        image_positions(tokens, self.cfg.image_id)  # exactly one <image> per row

    def embed(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), tokens (B, T) with one <image> each -> the LM's input (B, T-1+N, D)."""
        self._check(images, tokens)
        return self._embed(images, tokens)  # (B, T-1+N, D)

    def _embed(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.freeze_vision):  # frozen: no graph
            z = self.vision(images, tokens=True, layer=self.cfg.feature_layer)  # (B, N, D_vision)
        visual = self.projector(z) + self.visual_pos  # (B, N, D): where each patch is, in a code no training sets
        return splice(self.lm.tok(tokens), visual, tokens, self.cfg.image_id)  # (B, T-1+N, D)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
        """Next-token loss on the answer tokens (answer_mask (B, T) True) only; the visual positions and the
        question are context, never targets (eq. 3)."""
        check_tensor("answer_mask", answer_mask, tuple(tokens.shape), torch.bool, hint="like tokens")
        t = int((tokens != self.cfg.lm.pad_id).sum(dim=1).max())  # trailing padding changes nothing: drop it
        tokens, answer_mask = tokens[:, :t], answer_mask[:, :t]  # (B, T)
        logits = self.lm.decode(self.embed(images, tokens))  # (B, T-1+N, V)
        n, pad = logits.shape[1] - t + 1, self.cfg.lm.pad_id
        targets = expand(tokens, tokens, self.cfg.image_id, n, pad)  # (B, T-1+N): <pad> at visual positions
        mask = expand(answer_mask, tokens, self.cfg.image_id, n, False)  # (B, T-1+N)
        return next_token_loss(logits, targets, pad, mask)

    @torch.no_grad()
    def answer(self, images: torch.Tensor, prompts: list[str], tokenizer, unk: bool = False) -> list[str]:
        """Greedy answers to prompts such as "<image> what colour is the circle?" about images (B, 3, S, S).

        A prompt needs exactly one <image>, before the question; an unknown word is an error unless unk=True maps
        it to <unk>. `tokenizer` encodes and decodes (data.Tokenizer). Prompts of one length are decoded together
        with the KV cache (`CausalLM.generate`) until <eos>.
        """
        self._check_images(images)
        if not isinstance(prompts, (list, tuple)) or len(prompts) != len(images):
            raise ValueError(f"prompts: expected a list of {len(images)} strings, one per image, got "
                             f"{len(prompts) if isinstance(prompts, (list, tuple)) else type(prompts).__name__}")
        ids = [tokenizer.encode(p, unk=unk)[:-1] for p in prompts]  # <bos> ... question, without <eos>
        for i, (p, row) in enumerate(zip(prompts, ids)):
            if row.count(self.cfg.image_id) != 1 or row[-1] == self.cfg.image_id:
                raise ValueError(f"prompts[{i}]: expected exactly one <image> placeholder followed by a question, "
                                 f"got {p!r}")
        device = next(self.parameters()).device
        answers = [""] * len(prompts)
        for length in sorted({len(x) for x in ids}):
            rows = [i for i, x in enumerate(ids) if len(x) == length]
            tokens = torch.tensor([ids[i] for i in rows], device=device)  # (b, P)
            x = self._embed(images[rows].to(device), tokens)  # (b, P-1+N, D): checked above
            # everything before the prompt's last token goes in as embeddings, the rest as generated ids
            out = self.lm.generate(tokens[:, -1:], self.cfg.lm.max_len, prefix=x[:, :-1])  # (b, 1 + n)
            for i, row in zip(rows, out):
                answers[i] = tokenizer.decode(row[1:])
        return answers
