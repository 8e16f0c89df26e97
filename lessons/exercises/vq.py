"""Exercise 8a, vector quantisation (lessons/08_discrete_tokens.md). Check with `python -m minivlm.check vq`.

Fill in both functions in torch, so that the gradients go where eq. 3 of VQ-VAE sends them. B batch, N vectors
per image (a grid of h*w), D width, K codes.
"""
import torch


def quantize(z: torch.Tensor, codebook: torch.Tensor):
    """z (B, N, D), codebook (K, D) -> (z_q, ids, codebook_loss, commitment_loss):
    ids (B, N) int64, the nearest code of each vector by squared Euclidean distance; z_q (B, N, D) with the values
    of the codes and, straight-through, the gradient of z; codebook_loss the mean of (sg(z) - e)^2 over all entries,
    commitment_loss the mean of (z - sg(e))^2, sg = stop-gradient, e = the chosen codes (B, N, D)."""
    raise NotImplementedError("quantize: nearest code ids, then z_q, then the two losses")


def perplexity(ids: torch.Tensor, codes: int):
    """ids of any shape, in [0, codes) -> exp(entropy of the histogram of the ids over the `codes` codes), a scalar:
    `codes` when every code is used equally often, 1 when a single code is used. 0 log 0 counts as 0."""
    raise NotImplementedError("perplexity: count each code, turn the counts into probabilities, exp of the entropy")
