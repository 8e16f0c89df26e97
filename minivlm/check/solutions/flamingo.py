"""Solution of lessons/exercises/flamingo.py, written out in torch."""
import math

import torch


def resampler_attention(x_f, latents, w_q, w_k, w_v, w_o, heads):
    kv = torch.cat([x_f, latents], dim=1)  # (B, N + R, D): the latents read the features and themselves
    B, R, D = latents.shape
    split = lambda x: x.reshape(B, x.shape[1], heads, D // heads).transpose(1, 2)  # (B, L, D) -> (B, H, L, D/H)
    q, k, v = split(latents @ w_q), split(kv @ w_k), split(kv @ w_v)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(D // heads)).softmax(dim=-1)  # (B, H, R, N + R)
    return (weights @ v).transpose(1, 2).reshape(B, R, D) @ w_o  # (B, R, D)


def gated_residual(y, update, alpha):
    return y + torch.tanh(alpha) * update  # (B, T, D); tanh(0) = 0 gives y bit for bit


def media_mask(tokens, image_id, n_latents, n_images):
    seen = (tokens == image_id).long().cumsum(dim=1)  # (B, T): images at or before each token
    image_of_key = torch.arange(n_images * n_latents) // n_latents  # (M*R,): which image each visual token is of
    return (seen[:, :, None] - 1 == image_of_key)[:, None]  # (B, 1, T, M*R); seen = 0 matches no image


def gated_cross_attention(y, x, mask, alpha):
    sees = mask[:, 0].any(dim=-1, keepdim=True)  # (B, T, 1): does the token see any visual token?
    scores = y @ x.transpose(1, 2) / math.sqrt(y.shape[-1])  # (B, T, M*R)
    # a row with no key has no softmax (0/0 = NaN, and NaN gradients); let it see every key, then zero its update
    scores = scores.masked_fill(~(mask[:, 0] | ~sees), float("-inf"))
    update = scores.softmax(dim=-1) @ x  # (B, T, D)
    return gated_residual(y, update.masked_fill(~sees, 0.0), alpha)  # (B, T, D)
