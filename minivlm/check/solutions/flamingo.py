"""Solution of lessons/exercises/flamingo.py: the package's `gated_residual` and `media_mask`; `resampler_attention`
written out in torch (the package has it as the NumPy twin `resampler_attention_np` and inside the
PerceiverResampler's MultiHeadAttention)."""
import math

import torch

from minivlm.concepts.gated_xattn import gated_residual, media_mask  # noqa: F401


def resampler_attention(x_f, latents, w_q, w_k, w_v, w_o, heads):
    kv = torch.cat([x_f, latents], dim=1)  # (B, N + R, D): the latents read the features and themselves
    B, R, D = latents.shape
    split = lambda x: x.reshape(B, x.shape[1], heads, D // heads).transpose(1, 2)  # (B, L, D) -> (B, H, L, D/H)
    q, k, v = split(latents @ w_q), split(kv @ w_k), split(kv @ w_v)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(D // heads)).softmax(dim=-1)  # (B, H, R, N + R)
    return (weights @ v).transpose(1, 2).reshape(B, R, D) @ w_o  # (B, R, D)
