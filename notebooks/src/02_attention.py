# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Attention
#
# Attention lets every token gather information from other tokens, weighted by how well its query matches their
# keys: softmax(Q Kᵀ / √d) V (Vaswani et al. 2017, eq. 1). It is the one layer every model of this course is
# built from. In this notebook you will:
#
# - write scaled dot-product attention in NumPy from scratch and check it against the package's `attention_np`,
#   its torch twin `attention` and PyTorch's `F.scaled_dot_product_attention`;
# - build padding and causal masks, look at them, and see what they do to the attention weights;
# - see why a query that may attend to nothing gives NaN;
# - use `MultiHeadAttention` for self-attention over a caption and for cross-attention from caption tokens to
#   image patches, with its attention map over the 4 × 4 patch grid;
# - assemble a pre-LN `TransformerBlock`.
#
# **Needs:** [01_patch_embedding.ipynb](01_patch_embedding.ipynb) (image patches as tokens) and
# [00_world.ipynb](00_world.ipynb) (the tokenizer). **Runs in:** 0.1 minutes on a 2-core CPU (AMD EPYC, measured
# 2026-12-04), and the same on CUDA: nothing here trains or uses the GPU.

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from minivlm.data import COLOURS, SHAPES, Tokenizer, eval_set, preprocess


# %% [markdown]
# ## 1. Attention from scratch
#
# Four queries attend over six keys, each of width d = 8. Scores are dot products of queries with keys, divided by
# √d. A softmax over each row turns them into weights that sum to 1, and each output is the weighted average of the
# values.

# %%
def my_attention(q, k, v):
    scores = q @ k.T / math.sqrt(q.shape[-1])  # (Tq, Tk)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))  # subtracting the row max avoids overflow
    weights = weights / weights.sum(axis=-1, keepdims=True)  # (Tq, Tk), each row sums to 1
    return weights @ v, weights  # (Tq, dv), (Tq, Tk)


# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
q, k, v = rng.normal(size=(4, 8)), rng.normal(size=(6, 8)), rng.normal(size=(6, 8))  # (Tq, d), (Tk, d), (Tk, dv)
out, weights = my_attention(q, k, v)  # (4, 8), (4, 6)
print("out", out.shape, " weights", weights.shape)
print("row sums of the weights:", weights.sum(axis=1).round(6))
with np.printoptions(precision=3, suppress=True):
    print(weights)
assert np.allclose(weights.sum(axis=1), 1)

# %% [markdown]
# Each row of the weights is one query's distribution over the keys.

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
im = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
for i, j in np.ndindex(weights.shape):
    ax.text(j, i, f"{weights[i, j]:.2f}", ha="center", va="center", fontsize=8,
            color="black" if weights[i, j] > 0.5 else "white")
ax.set(title="attention weights (each row sums to 1)", xlabel="key position", ylabel="query position")
fig.colorbar(im, ax=ax, label="weight")
plt.show()

# %% [markdown]
# **Why divide by √d?** With random unit-variance entries, a dot product of two d-vectors has variance d. Without
# the scaling, the scores grow with the width, and the softmax saturates to nearly one-hot: the gradients through
# it vanish. Dividing by √d keeps the scores at unit scale for any width.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
for d in (8, 64, 512):
    qd, kd = rng.normal(size=(1000, d)), rng.normal(size=(16, d))
    raw = qd @ kd.T  # (1000, 16): unscaled scores
    w_scaled = my_attention(qd, kd, kd)[1]  # (1000, 16)
    w_unscaled = my_attention(qd * math.sqrt(d), kd, kd)[1]  # multiplying q by sqrt(d) undoes the scaling
    print(f"d={d:3}: score std {raw.std():5.2f} unscaled, {(raw / math.sqrt(d)).std():.2f} scaled;  largest weight "
          f"per row {w_unscaled.max(axis=1).mean():.2f} unscaled, {w_scaled.max(axis=1).mean():.2f} scaled")

# %% [markdown]
# The package's NumPy version must agree with ours, and its torch twin `attention` with both. PyTorch has the same
# computation as one fused kernel, `F.scaled_dot_product_attention` (SDPA), which `MultiHeadAttention` uses for
# speed. All four agree, here with batch and head axes in front: (B, H, T, d).

# %%
from minivlm.concepts.attention import attention, attention_np

np.testing.assert_allclose(attention_np(q, k, v), out, atol=1e-12)

torch.manual_seed(0)
qt, kt, vt = torch.randn(2, 4, 5, 16), torch.randn(2, 4, 7, 16), torch.randn(2, 4, 7, 16)  # (B, H, T, d), (B, H, S, d)
ours = attention(qt, kt, vt)  # (2, 4, 5, 16)
torch.testing.assert_close(ours, F.scaled_dot_product_attention(qt, kt, vt))
np.testing.assert_allclose(attention_np(qt.numpy(), kt.numpy(), vt.numpy()), ours.numpy(), atol=1e-5)
assert ours.shape == (2, 4, 5, 16)

# %% [markdown]
# ## 2. Masks: who may attend to whom
#
# A mask is a boolean (Tq, Tk) table, **True = may attend**. Where it is False the score becomes −∞ before the
# softmax, so the weight is exactly 0. Two masks matter in this course:
#
# - **padding mask**: captions are padded to 16 tokens, and no token should read the `<pad>` tokens.
#   `padding_mask(tokens, pad_id)` has shape (B, 1, 1, T), which broadcasts over heads and queries;
# - **causal mask**: a decoder predicting the next word may only read earlier tokens, so it gets a lower triangle,
#   `causal_mask(T)` of shape (T, T).

# %%
# NBVAL_CHECK_OUTPUT
from minivlm.concepts.attention import causal_mask, padding_mask

tok = Tokenizer()
captions = ["a large cyan star", "a small red circle to the left of a large blue square"]
tokens = tok.encode_batch(captions)  # (2, 16)
pad = padding_mask(tokens, tok.pad_id)  # (2, 1, 1, 16)
causal = causal_mask(16)  # (16, 16)
print("tokens", tuple(tokens.shape), " padding mask", tuple(pad.shape), " causal mask", tuple(causal.shape))
print("real tokens per caption:", pad.sum(dim=-1).flatten().tolist())
print(causal[:5, :5].int())

# %% [markdown]
# The masks as pictures, and what they do to the weights of random queries and keys for the first caption
# (`<bos> a large cyan star <eos>` plus 10 pads). Masked weights are exactly zero, and each row still sums to 1
# over what it may see.

# %%
torch.manual_seed(0)
T = 16
qm, km = torch.randn(T, 8), torch.randn(T, 8)  # (T, d)
pad_mask = pad[0, 0].expand(T, T)  # (T, T): the row of caption 0 for every query
_, w_pad = attention(qm, km, km, pad_mask, return_weights=True)  # (T, T)
_, w_causal = attention(qm, km, km, causal, return_weights=True)  # (T, T)
assert (w_pad[~pad_mask] == 0).all() and (w_causal[~causal] == 0).all()
torch.testing.assert_close(w_pad.sum(-1), torch.ones(T))

names = [tok.vocab[i] for i in tokens[0]]
fig, axes = plt.subplots(2, 2, figsize=(10, 9.5))
panels = [(pad_mask, "padding mask (True = may attend)", "Greys_r"),
          (causal, "causal mask (True = may attend)", "Greys_r"),
          (w_pad, "weights with the padding mask", "viridis"),
          (w_causal, "weights with the causal mask", "viridis")]
for ax, (m, title, cmap) in zip(axes.flat, panels):
    im = ax.imshow(m.float(), cmap=cmap, vmin=0, vmax=1 if m.dtype == torch.bool else None)
    ax.set_xticks(range(T), names, rotation=90, fontsize=7)
    ax.set_yticks(range(T), names, fontsize=7)
    ax.set(title=title, xlabel="key (attended to)", ylabel="query (attending)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="allowed" if m.dtype == torch.bool else "weight")
fig.tight_layout()
plt.show()

# %% [markdown]
# With a mask, too, the package's `attention` agrees with PyTorch's SDPA, for a padding mask broadcast over heads
# and for a causal mask.

# %%
torch.manual_seed(0)
qb, kb, vb = torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8)  # (B, H, T, d)
for mask in (pad, causal, pad & causal):  # (2, 1, 1, 16), (16, 16), (2, 1, 16, 16)
    torch.testing.assert_close(attention(qb, kb, vb, mask), F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask))

# %% [markdown]
# ## 3. A query that may attend to nothing
#
# If a mask row is all False, every score of that row is −∞. The softmax is then exp(−∞) / Σ exp(−∞) = 0 / 0,
# which is NaN. This happens, for example, when a causal mask is combined with *left* padding: the pads at the
# front may only look at themselves and at earlier pads, and the padding mask hides all of those.
#
# The package's `attention` (and `attention_np`) return this NaN on purpose, so a mask that hides everything from a
# token gets noticed. Since torch 2.5, `F.scaled_dot_product_attention` returns a zero row there instead, so
# `MultiHeadAttention`, whose fast path is SDPA, gives zeros where `attention` gives NaN. A NaN does not stay in its
# row: in the next layer that token is a key and value of the others, and a zero weight times a NaN value is still
# NaN, so every row is lost. Pad on the right, or let pads see themselves.

# %%
# NBVAL_CHECK_OUTPUT
left_padded = torch.tensor([[tok.pad_id, tok.pad_id] + tok.encode("a small red circle")])  # (1, 8)
print([tok.vocab[i] for i in left_padded[0]])
mask = padding_mask(left_padded, tok.pad_id)[0, 0] & causal_mask(8)  # (8, 8)
print("query rows with nothing to attend to:", (~mask.any(dim=-1)).nonzero().flatten().tolist())
torch.manual_seed(0)
qn, kn, vn = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 4)  # (T, d)
ours = attention(qn, kn, vn, mask)  # (8, 4)
fused = F.scaled_dot_product_attention(qn, kn, vn, attn_mask=mask)  # (8, 4)
print("attention, row 0:", ours[0].tolist())
print("SDPA,      row 0:", fused[0].tolist())
print("rows 2-7 agree  :", torch.allclose(ours[2:], fused[2:], atol=1e-6))
second = attention(ours, ours, ours, mask)  # (8, 4): one more layer reads the NaN rows as keys and values
print("rows with NaN after one more layer:", torch.isnan(second).any(dim=-1).nonzero().flatten().tolist())

# %% [markdown]
# ## 4. Multi-head attention
#
# `MultiHeadAttention(dim, heads)` projects the input to queries, keys and values, splits the width D into H heads of
# D/H, runs attention in each head independently (each can look for something else), then concatenates the heads
# and projects back to D. First we redo its forward pass by hand with its own weights and the package's `attention`,
# and compare with the module (which runs SDPA).

# %%
# NBVAL_CHECK_OUTPUT
from minivlm.concepts.attention import MultiHeadAttention

torch.manual_seed(0)
B, T, D, H = 2, 16, 64, 4
mha = MultiHeadAttention(dim=D, heads=H)
x = torch.randn(B, T, D)  # (B, T, D)
with torch.no_grad():
    q = mha.q(x).reshape(B, T, H, D // H).transpose(1, 2)  # (B, H, T, D/H)
    k, v = mha.kv(x).chunk(2, dim=-1)  # 2 x (B, T, D): first half keys, second half values
    k = k.reshape(B, T, H, D // H).transpose(1, 2)  # (B, H, T, D/H)
    v = v.reshape(B, T, H, D // H).transpose(1, 2)  # (B, H, T, D/H)
    heads = attention(q, k, v)  # (B, H, T, D/H)
    by_hand = mha.out(heads.transpose(1, 2).reshape(B, T, D))  # (B, T, D): heads side by side, then project
    y = mha(x)  # (B, T, D)
print("x", tuple(x.shape), "-> q", tuple(q.shape), "-> heads", tuple(heads.shape), "-> y", tuple(y.shape))
torch.testing.assert_close(y, by_hand)
print("parameters:", sum(p.numel() for p in mha.parameters()), "= 4 x (64 x 64 + 64)")

# %% [markdown]
# **Self-attention over a caption.** Tokens of the two captions above (through an untrained embedding) attend to
# each other, with the padding mask so that no token reads a pad. Shapes stay (B, T, D).

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
word_embedding = torch.nn.Embedding(len(tok), D)
text = word_embedding(tokens)  # (2, 16, 64)
with torch.no_grad():
    text_out = mha(text, mask=pad)  # (2, 16, 64)
print("self-attention:", tuple(text.shape), "->", tuple(text_out.shape), "= (B, T, D)")

# %% [markdown]
# **Cross-attention from text to image.** Queries come from the caption tokens, keys and values from the 16 image
# patches of notebook 01: each word gathers what it needs from the picture. This is how Flamingo-style models
# read an image. `context_dim` lets the image width differ from the text width: here image patches have width 48.
# Shapes: (B, T, D) × (B, N, D_img) → (B, T, D).

# %%
# NBVAL_CHECK_OUTPUT
from minivlm.concepts.patch_embed import PatchEmbed

two = eval_set("two", tok)
k_img = next(i for i, s in enumerate(two.scenes) if s.relation in ("to the left of", "to the right of"))
image, caption = two.images[k_img], two.captions[k_img]
torch.manual_seed(0)
patch_embed = PatchEmbed(image_size=32, patch=8, channels=3, dim=48)
xattn = MultiHeadAttention(dim=D, heads=H, context_dim=48)
xattn.keep_weights = True  # keep the attention map for plotting (computed with `attention`, not SDPA)
caption_tokens = tok.encode_batch([caption])  # (1, 16)
with torch.no_grad():
    patches = patch_embed(preprocess(image))  # (1, 16, 48) = (B, N, D_img)
    words = word_embedding(caption_tokens)  # (1, 16, 64) = (B, T, D)
    read = xattn(words, context=patches)  # (1, 16, 64) = (B, T, D)
    xattn.keep_weights = False
    read_fast = xattn(words, context=patches)  # the SDPA path
cross = xattn.last_weights  # (1, 4, 16, 16) = (B, H, T, N)
print(caption)
print("queries", tuple(words.shape), "x keys/values", tuple(patches.shape), "->", tuple(read.shape))
print("weights", tuple(cross.shape), "= (B, H, T, N)")
torch.testing.assert_close(read, read_fast)
torch.testing.assert_close(cross.sum(-1), torch.ones(1, H, 16))

# %% [markdown]
# Each query word's weights over the 16 patches, averaged over the heads and laid back on the 4 × 4 grid over the
# image. **This layer is untrained**, so the maps are arbitrary, close to uniform (1/16 ≈ 0.06 per patch).
# Trained maps come later: notebook 06 (section 8) shows where LLaVA's answer looks among the 16 visual tokens, and
# notebook 07 (section 10) shows Flamingo's trained cross-attention from words to the resampler's latents, and what
# each latent reads from the patches.

# %%
content = set(COLOURS) | set(SHAPES) | {"left", "right", "above", "below"}
words_shown = [(t, tok.vocab[i]) for t, i in enumerate(caption_tokens[0].tolist()) if tok.vocab[i] in content]
maps = cross[0].mean(0)  # (T, N): averaged over heads
objects = (image.max(axis=-1) > 60).astype(float)  # (32, 32): where a shape is, drawn as outlines over the maps
centres = np.arange(32) + 0.5  # pixel centres, in the coordinates of imshow's extent
fig, axes = plt.subplots(1, len(words_shown) + 1, figsize=(2.3 * (len(words_shown) + 1), 3), layout="constrained")
axes[0].imshow(image, extent=(0, 32, 32, 0), interpolation="nearest")
axes[0].set(title="image", xlabel="x (px)", ylabel="y (px)")
for ax, (t, word) in zip(axes[1:], words_shown):
    im = ax.imshow(maps[t].reshape(4, 4), extent=(0, 32, 32, 0), cmap="viridis", vmin=0, vmax=2 / 16)
    ax.contour(centres, centres, objects, levels=[0.5], colors="white", linewidths=1)  # y grows downwards here too
    ax.set(title=f"query {word!r}", xlabel="x (px)", yticks=[])
fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight (uniform = 1/16)")
fig.suptitle(f"UNTRAINED cross-attention, caption tokens -> 4 x 4 patches: {caption!r}", fontsize=9)
plt.show()

# %% [markdown]
# ## 5. The pre-LN transformer block
#
# A transformer block is attention followed by a small MLP, each wrapped in a residual connection. In the pre-LN form
# (Xiong et al. 2020), which every model here uses, the LayerNorm sits *inside* the residual branch:
# `x + Attn(LN(x))`, then `x + MLP(LN(x))`. The residual path is then a plain sum from input to output, which
# trains stably without careful warm-up. By hand with the block's own layers, against the module:

# %%
# NBVAL_CHECK_OUTPUT
from minivlm.concepts.attention import TransformerBlock

torch.manual_seed(0)
block = TransformerBlock(dim=D, heads=H)
with torch.no_grad():
    h = text + block.attn(block.ln1(text), mask=pad)  # (2, 16, 64)
    by_hand = h + block.mlp(block.ln2(h))  # (2, 16, 64)
    y = block(text, mask=pad)  # (2, 16, 64)
torch.testing.assert_close(y, by_hand)
print("block:", tuple(text.shape), "->", tuple(y.shape), "= (B, T, D);",
      sum(p.numel() for p in block.parameters()), "parameters")

# %% [markdown]
# Without a mask, a block treats its tokens as a set: shuffling the input tokens shuffles the output the same way
# (permutation equivariance). That is why notebook 01 adds position embeddings to the patch tokens before the
# blocks.

# %%
torch.manual_seed(0)
perm = torch.randperm(16)
with torch.no_grad():
    torch.testing.assert_close(block(text)[:, perm], block(text[:, perm]))  # (2, 16, 64) both

# %% [markdown]
# ## What you learned
#
# - Attention is softmax(Q Kᵀ / √d) V: scores (Tq, Tk), rows normalised to weights, outputs as weighted averages
#   of values. The √d keeps scores at unit scale for any width.
# - Masks are booleans, True = may attend. A padding mask (B, 1, 1, T) hides pads; a causal mask (T, T) hides the
#   future. A row with nothing to attend to is 0/0: NaN in `attention`, zeros in PyTorch's SDPA.
# - `attention_np`, `attention` and `F.scaled_dot_product_attention` compute the same numbers.
# - Multi-head attention splits D into H heads; for self-attention queries, keys and values all come from one
#   sequence, for cross-attention the keys and values come from another (image patches): (B, T, D) × (B, N, D) →
#   (B, T, D).
# - A pre-LN block is `x + Attn(LN(x))`, `x + MLP(LN(x))`, and without positions it cannot tell token order.
#
# **Next:** notebook 03 puts patch embedding and attention together into a toy CLIP and trains it with InfoNCE.
#
#
# **Exercises.** Each lesson page ends with an exercise in `lessons/exercises/NAME.py`. From the repository root,
# `python -m minivlm.check NAME` grades it against the package (`python -m minivlm.check --list` lists them):
# `patch_embed` (lesson 01), `attention` (lesson 02), `info_nce` (lesson 03) and `retrieval`, zero-shot
# classification and recall@K (lesson 04).
#
# **Lessons:** [01 patch embedding](../lessons/01_patch_embedding.md) ·
# [02 attention](../lessons/02_attention.md) · [03 InfoNCE](../lessons/03_info_nce.md) ·
# [04 toy CLIP](../lessons/04_toy_clip.md).
