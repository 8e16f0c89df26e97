"""Exercise 7, Flamingo's pieces (lessons/07_flamingo.md). Check with `python -m minivlm.check flamingo`.

Fill in the four functions in torch, without F.scaled_dot_product_attention or nn.MultiheadAttention (the grader
refuses a file that uses them or imports from minivlm), so that gradients flow. B batch, N visual features,
R latents, T text length, D width, H heads, M images.
"""
import torch


def resampler_attention(x_f: torch.Tensor, latents: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                        w_v: torch.Tensor, w_o: torch.Tensor, heads: int) -> torch.Tensor:
    """The update attention(q=x, kv=concat([x_f, x])) of one Perceiver Resampler layer (Fig. 5), no residual, no
    LayerNorm, no biases: features x_f (B, N, D), latents x (B, R, D), weights (D, D) used as `x @ w_q`; H heads of
    width D/H each, scores scaled by 1/sqrt(D/H), the heads concatenated, then `@ w_o` -> (B, R, D)."""
    raise NotImplementedError("resampler_attention: queries from the latents, keys and values from [x_f, latents]")


def gated_residual(y: torch.Tensor, update: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """y (B, T, D) plus the update (B, T, D) through the tanh gate of the scalar alpha (Fig. 4) -> (B, T, D)."""
    raise NotImplementedError("gated_residual: y plus the gated update")


def media_mask(tokens: torch.Tensor, image_id: int, n_latents: int, n_images: int) -> torch.Tensor:
    """tokens (B, T) with <image> placeholders (id image_id) -> (B, 1, T, n_images * n_latents) bool, True where
    token t may attend to visual token j. Image i's latents are j = i*R..(i+1)*R-1 (R = n_latents); token t sees
    the latents of the last <image> at or before t only; a token before any <image> sees none."""
    raise NotImplementedError("media_mask: which image is the last one at or before each token?")


def gated_cross_attention(y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """y + tanh(alpha) * XAttn(q=y, kv=x) (Fig. 4) with one head, no LayerNorm, no projections: text y (B, T, D)
    attends to the visual tokens x (B, M*R, D), scores scaled by 1/sqrt(D), masked by `mask` (B, 1, T, M*R) bool
    from media_mask -> (B, T, D). A token whose mask row is all False sees no image: it must get y back exactly
    (its update 0, not NaN, not an average of every visual token), and send no gradient to x."""
    raise NotImplementedError("gated_cross_attention: masked softmax attention, then a tanh-gated residual")
