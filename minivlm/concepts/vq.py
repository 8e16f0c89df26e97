"""Vector quantisation with a straight-through gradient and a commitment loss (VQ-VAE, van den Oord et al. 2017,
Sec. 3.1-3.2, eq. 3): each encoder vector z becomes its nearest codebook vector e, and an image becomes a grid of
code ids.

    ids = argmin_k ||z - e_k||^2      z_q = z + sg(e - z)      loss = ||sg(z) - e||^2 + beta * ||z - sg(e)||^2

sg is stop-gradient (`.detach()`): z_q has e's values and z's gradient, the codebook term moves the codes towards
the encoder's outputs, and the commitment term keeps the encoder close to its codes.
DALL-E's dVAE (Ramesh et al. 2021, Sec. 2.1) avoids the argmin: the encoder gives logits over the K codes, and a
Gumbel-softmax sample at a temperature annealed towards 0 mixes the code vectors, so gradients flow without a
straight-through trick or a commitment loss; a KL term to the uniform prior replaces them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minivlm.concepts.validate import check_ids, check_positive, check_tensor


def quantize_np(z: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference: z (B, N, D), codebook (K, D) -> z_q (B, N, D) the nearest codes, ids (B, N) int64."""
    dist = ((z[:, :, None, :] - codebook[None, None]) ** 2).sum(axis=-1)  # (B, N, K)
    ids = dist.argmin(axis=-1).astype(np.int64)  # (B, N)
    return codebook[ids], ids  # (B, N, D), (B, N)


def quantize(z: torch.Tensor, codebook: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """z (B, N, D), codebook (K, D) -> z_q (B, N, D) straight-through, ids (B, N) int64, codebook_loss,
    commitment_loss (the two terms of eq. 3, without beta). Nearest code by squared Euclidean distance."""
    dims = check_tensor("z", z, "B N D", "float")
    check_tensor("codebook", codebook, "K D", z.dtype, dims=dims)
    with torch.no_grad():  # choosing a code has no gradient
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without building the (B, N, K, D) differences
        dist = z.pow(2).sum(-1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(-1)  # (B, N, K)
        ids = dist.argmin(dim=-1)  # (B, N)
    e = codebook[ids]  # (B, N, D)
    codebook_loss = F.mse_loss(e, z.detach())  # moves the codes only
    commitment_loss = F.mse_loss(z, e.detach())  # moves the encoder only
    z_q = z + (e - z).detach()  # (B, N, D): e's values, the identity's gradient (Sec. 3.1)
    return z_q, ids, codebook_loss, commitment_loss


def codebook_usage(ids: torch.Tensor, codes: int) -> dict[str, float | int]:
    """ids of any shape, in [0, codes) -> {"perplexity": exp(entropy of the code histogram), "dead_codes": number of
    codes never used}. Perplexity is `codes` when every code is used equally often and 1 when one code does it all."""
    check_ids("ids", ids, codes, hint="the codebook's range")
    if ids.numel() == 0:
        raise ValueError(f"ids: expected at least one id, got an empty tensor of shape {tuple(ids.shape)}")
    counts = torch.bincount(ids.flatten().long(), minlength=codes)  # (K,)
    p = counts[counts > 0].double() / ids.numel()  # (used codes,): 0 log 0 counts as 0
    entropy = -(p * p.log()).sum().item()
    return {"perplexity": math.exp(entropy), "dead_codes": int((counts == 0).sum())}


class VectorQuantizer(nn.Module):
    """A codebook of `codes` vectors of width `dim`, initialised uniform(-1/K, 1/K): z (B, N, dim) -> (z_q (B, N, dim),
    ids (B, N), loss = codebook_loss + beta * commitment_loss), eq. 3; beta = 0.25 as in Sec. 3.2."""

    def __init__(self, codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        check_positive("codes", codes)
        check_positive("dim", dim)
        check_positive("beta", beta, zero=True)
        self.codes, self.dim, self.beta = codes, dim, beta
        self.codebook = nn.Embedding(codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / codes, 1.0 / codes)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, N, dim) float -> z_q (B, N, dim), ids (B, N) int64, loss (scalar)."""
        check_tensor("z", z, ("B", "N", self.dim), "float")
        z_q, ids, codebook_loss, commitment_loss = quantize(z, self.codebook.weight)
        return z_q, ids, codebook_loss + self.beta * commitment_loss

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, N) int in [0, codes) -> their code vectors (B, N, dim): from tokens back to the decoder's input."""
        check_ids("ids", ids, self.codes, hint="the codebook's range")
        return self.codebook(ids.long())  # (B, N, dim)
