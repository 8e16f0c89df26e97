# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Patch embedding
#
# A vision transformer does not read pixels one by one. It cuts the image into P × P patches, flattens each patch
# into a vector and maps it linearly to width D. The image becomes a sequence of N tokens, shape (B, N, D), which
# attention (notebook 02) can read like words. This is equation 1 of the ViT paper (Dosovitskiy et al. 2021).
#
# In this notebook you will:
#
# - write `patchify` in NumPy from scratch, one reshape and one transpose, and see each intermediate shape;
# - look at the 16 patches of a 32 × 32 image with P = 8;
# - check your version against the package's `patchify_np`, `patchify` and `PatchEmbed`, whose `Conv2d` form and
#   explicit `forward_unfold` form agree;
# - see why the tokens need a learned position embedding.
#
# **Needs:** [00_world.ipynb](00_world.ipynb) (the shapes world and `preprocess`). **Runs in:** 0.1
# minutes on a 2-core CPU (AMD EPYC, measured 2026-12-04), and the same on CUDA: nothing here trains or uses the GPU.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

from minivlm.data import Tokenizer, eval_set, preprocess

# %% [markdown]
# Our example is the first image of the fixed `two` evaluation set: two objects, 32 × 32 pixels. `preprocess` gives
# the float (B, C, H, W) layout every model takes.

# %%
# NBVAL_CHECK_OUTPUT
two = eval_set("two", Tokenizer())
image, caption = two.images[0], two.captions[0]  # (32, 32, 3) uint8
x = preprocess(image).numpy()  # (1, 3, 32, 32) float32 in [-1, 1]
B, C, H, W = x.shape
P = 8
print(caption)
print("x:", x.shape, x.dtype, f"patch P={P}, grid {H // P} x {W // P} = {(H // P) * (W // P)} patches")

# %% [markdown]
# ## 1. Patchify from scratch, step by step
#
# **Step 1: reshape.** Split each spatial axis into (which patch, where inside the patch): row `h` becomes
# `(h // P, h % P)`. The numbers in memory do not move; only the way we index them changes.

# %%
# NBVAL_CHECK_OUTPUT
step1 = x.reshape(B, C, H // P, P, W // P, P)  # (B, C, H/P, P, W/P, P)
print("step1", step1.shape, "= (B, C, patch row, row in patch, patch col, col in patch)")
assert step1[0, 0, 1, 2, 3, 4] == x[0, 0, 1 * P + 2, 3 * P + 4]

# %% [markdown]
# **Step 2: transpose.** Move the two patch-grid axes in front, so that everything belonging to one patch (its
# channels and its P × P pixels) comes after them. Without this step, a reshape would mix pixels of neighbouring
# patches.

# %%
# NBVAL_CHECK_OUTPUT
step2 = step1.transpose(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
print("step2", step2.shape, "= (B, patch row, patch col, C, P, P)")
assert np.array_equal(step2[0, 1, 3], x[0, :, 8:16, 24:32])  # patch (row 1, col 3) is a P x P crop

# %% [markdown]
# **Step 3: flatten.** Number the patches row by row (N = 16) and flatten each patch channel-first into
# C · P · P = 192 numbers, the same order in which a `Conv2d` flattens its filters.

# %%
# NBVAL_CHECK_OUTPUT
patches = step2.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C*P*P)
print("patches", patches.shape, "= (B, N, C*P*P)")
assert np.array_equal(patches[0, 1 * 4 + 3], x[0, :, 8:16, 24:32].reshape(-1))  # patch n = row * 4 + col
wrong = x.reshape(B, 16, 192)  # skipping the transpose: each "patch" is 6 scrambled pixel rows
print("reshape without transpose gives the right patches:", np.array_equal(wrong, patches))


# %% [markdown]
# The three steps as one function, a teaching copy of the package's `patchify_np`.

# %%
def my_patchify(images, patch):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)  # (B, C, H/P, P, W/P, P)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(B, (H // patch) * (W // patch), C * patch * patch)  # (B, N, C*P*P)

assert np.array_equal(my_patchify(x, P), patches)


# %% [markdown]
# ## 2. The patch grid
#
# On the left, the image with its 4 × 4 grid and the patch numbers n. In the middle, the 16 patches laid out apart,
# each rebuilt from its row of `patches` (so this also checks the flattening). On the right, the same patches as the
# sequence the transformer reads, n = 0 … 15. An object that straddles a patch border is split across tokens.

# %%
def to_pixels(p):
    return ((p.reshape(C, P, P).transpose(1, 2, 0) + 1) / 2).clip(0, 1)  # (P, P, 3) in [0, 1] for imshow

gap, g = 2, H // P
mosaic = np.ones((g * (P + gap) - gap, g * (P + gap) - gap, 3))
strip = np.ones((P, 16 * (P + gap) - gap, 3))
for n in range(16):
    r, c = divmod(n, g)
    mosaic[r * (P + gap):r * (P + gap) + P, c * (P + gap):c * (P + gap) + P] = to_pixels(patches[0, n])
    strip[:, n * (P + gap):n * (P + gap) + P] = to_pixels(patches[0, n])

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.9), gridspec_kw={"width_ratios": [1, 1, 2.6]},
                                   layout="constrained")
ax1.imshow(image, extent=(0, W, H, 0), interpolation="nearest")
for k in range(1, g):
    ax1.axhline(k * P, color="white", lw=0.8)
    ax1.axvline(k * P, color="white", lw=0.8)
for n in range(16):
    r, c = divmod(n, g)
    ax1.text(c * P + 1, r * P + 1, str(n), color="yellow", fontsize=7, va="top")
ax1.set(title=f"image, P = {P}", xlabel="x (px)", ylabel="y (px)", xticks=range(0, 33, 8), yticks=range(0, 33, 8))
ax2.imshow(mosaic, interpolation="nearest")
ax2.set(title="the 16 patches, apart", xlabel="patch column", ylabel="patch row",
        xticks=[c * (P + gap) + P / 2 - 0.5 for c in range(g)], xticklabels=range(g),
        yticks=[r * (P + gap) + P / 2 - 0.5 for r in range(g)], yticklabels=range(g))
ax3.imshow(strip, interpolation="nearest")
ax3.set(title="the sequence of N = 16 tokens", xlabel="token n", yticks=[],
        xticks=[n * (P + gap) + P / 2 - 0.5 for n in range(16)], xticklabels=range(16))
fig.suptitle(f"patches of {caption!r}", fontsize=10)
plt.show()

# %% [markdown]
# ## 3. The package's versions
#
# `minivlm.concepts.patch_embed` has the same function in NumPy (`patchify_np`) and in torch (`patchify`). Both
# must agree exactly with ours.

# %%
from minivlm.concepts.patch_embed import PatchEmbed, patchify, patchify_np

np.testing.assert_array_equal(patchify_np(x, P), patches)
np.testing.assert_array_equal(patchify(torch.from_numpy(x), P).numpy(), patches)

# %% [markdown]
# **Projection.** Each 192-number patch is mapped to D numbers by one shared linear map, `patch @ W + b`. The same
# weights see every patch, just as a convolution applies the same filter everywhere. `PatchEmbed` computes this
# as a `Conv2d` with kernel = stride = P: its windows do not overlap, so each output position sees exactly one
# patch. Its D filters, each (C, P, P), flattened are the rows of W.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
embed = PatchEmbed(image_size=32, patch=P, channels=3, dim=64)
print(embed)
print("conv weight", tuple(embed.proj.weight.shape), "= (D, C, P, P);",
      sum(p.numel() for p in embed.parameters()), "parameters = 192 x 64 + 64")

# %% [markdown]
# The three forms side by side on a batch of 8 images: our NumPy patches times the conv's weights as a matrix, the
# `Conv2d` form (`forward`) and the explicit form (`forward_unfold`).

# %%
# NBVAL_CHECK_OUTPUT
images = preprocess(two.images[:8])  # (8, 3, 32, 32)
w = embed.proj.weight.detach().numpy().reshape(64, -1)  # (D, C*P*P)
b = embed.proj.bias.detach().numpy()  # (D,)
ours = my_patchify(images.numpy(), P) @ w.T + b  # (8, 16, 64)
with torch.no_grad():
    conv = embed(images)  # (8, 16, 64): Conv2d, then flatten the 4 x 4 grid
    unfold = embed.forward_unfold(images)  # (8, 16, 64): patchify, then matrix product
print("ours", ours.shape, " conv", tuple(conv.shape), " unfold", tuple(unfold.shape), " = (B, N, D)")
np.testing.assert_allclose(conv.numpy(), ours, atol=1e-5)
np.testing.assert_allclose(unfold.numpy(), ours, atol=1e-5)
torch.testing.assert_close(conv, unfold)
print("all three agree")

# %% [markdown]
# The patch size must divide the image; `PatchEmbed` says so when it does not.

# %%
# NBVAL_CHECK_OUTPUT
try:
    PatchEmbed(image_size=32, patch=6, channels=3, dim=64)
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## 4. Where is each patch? The position embedding
#
# A patch token carries only what the patch looks like, not where it was. Attention treats its tokens as a set: it
# gives each token the same output wherever it sits in the sequence (notebook 02 checks this). So the same patches in
# another order are the same input.
#
# A test: shift the image by half its width (16 px, two patch columns, wrapping around). In a left/right scene this
# exchanges the two objects, so "A to the left of B" becomes "B to the left of A". The patches are the same, only in
# another order. The average of the tokens, which is how the toy CLIP's ViT pools them, cannot tell the two
# images apart.

# %%
k = next(i for i, s in enumerate(two.scenes) if s.relation in ("to the left of", "to the right of"))
left_right = two.images[k]  # (32, 32, 3)
shifted = np.roll(left_right, 16, axis=1)  # the two halves exchanged
pair = preprocess(np.stack([left_right, shifted]))  # (2, 3, 32, 32)
with torch.no_grad():
    tokens = embed(pair)  # (2, 16, 64)
perm = [(n // 4) * 4 + (n % 4 + 2) % 4 for n in range(16)]  # token n of the shifted image is token perm[n] of the other
torch.testing.assert_close(tokens[1], tokens[0, perm])
torch.testing.assert_close(tokens[0].mean(0), tokens[1].mean(0))  # mean-pooled: identical

fig, axes = plt.subplots(1, 2, figsize=(7.5, 4), layout="constrained")
for ax, img, title in zip(axes, (left_right, shifted), (two.captions[k], "the halves exchanged (np.roll by 16 px)")):
    ax.imshow(img, extent=(0, 32, 32, 0), interpolation="nearest")
    ax.set(xlabel="x (px)", ylabel="y (px)", xticks=range(0, 33, 8), yticks=range(0, 33, 8))
    ax.set_title(title.replace(" to the", "\nto the"), fontsize=9)
    ax.grid(color="white", lw=0.5, alpha=0.5)
fig.suptitle("the same 16 patches in another order: without positions, the same bag of tokens", fontsize=10)
plt.show()

# %% [markdown]
# The fix is a learned position embedding: one more parameter `pos` of shape (1, N, D), with row n added to token
# n whatever the image. It starts as small random numbers and training learns what each patch position should
# contribute. The toy CLIP's `VisionTransformer` does exactly this: `x = patch_embed(images) + pos`. With it, the two
# images no longer give the same tokens in another order. Their mean is still equal, though: both get the same
# sum of `pos`.

# %%
# NBVAL_CHECK_OUTPUT
from minivlm.models.clip import CLIPConfig, VisionTransformer

torch.manual_seed(0)
vit = VisionTransformer(CLIPConfig())  # untrained: pos is randn * 0.02
with torch.no_grad():
    tokens = vit.patch_embed(pair)  # (2, 16, 64)
    with_pos = tokens + vit.pos  # (2, 16, 64): pos (1, 16, 64) broadcasts over the batch
print("pos", tuple(vit.pos.shape), "= (1, N, D);  tokens", tuple(tokens.shape), "-> with positions",
      tuple(with_pos.shape), "= (B, N, D)")
same = lambda a, b: torch.allclose(a, b, atol=1e-6)
print("same tokens in another order, without positions:", same(tokens[1], tokens[0, perm]))
print("same tokens in another order, with positions   :", same(with_pos[1], with_pos[0, perm]))
print("same mean-pooled vector, with positions        :", same(with_pos[0].mean(0), with_pos[1].mean(0)))

# %% [markdown]
# So the position embedding does its work in the attention layers between it and the pooling: there a token
# can take into account where it is and where the others are. The whole ViT (patches + pos, 2 blocks, LayerNorm,
# mean), untrained, on the two images, with and without its position embedding:

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    pooled = vit(pair)  # (2, 64): patches + pos -> 2 blocks -> LayerNorm -> mean over N
    vit.pos.zero_()  # the same ViT with the position embedding switched off
    pooled_no_pos = vit(pair)  # (2, 64)
print("ViT output", tuple(pooled.shape), "= (B, D)")
apart = lambda a, b: not torch.allclose(a, b, atol=1e-5)
print("ViT tells the two images apart, with positions   :", apart(pooled[0], pooled[1]))
print("ViT tells the two images apart, without positions:", apart(pooled_no_pos[0], pooled_no_pos[1]))

# %% [markdown]
# ## What you learned
#
# - Patchify is a reshape, a transpose and a reshape: (B, C, H, W) → (B, H/P, W/P, C, P, P) → (B, N, C·P·P). The
#   transpose is the step that keeps each patch's pixels together.
# - Patch embedding is one linear map shared by all patches. As a `Conv2d` with kernel = stride = P it is the
#   usual ViT code, and `forward_unfold` shows it is the same product: (B, N, C·P·P) @ (C·P·P, D) → (B, N, D).
# - 32 × 32 images with P = 8 give N = 16 tokens; P = 4 would give 64 tokens: about 3× slower per image on a CPU,
#   and per wall-second patch 8 wins (`bench/README.md`).
# - Tokens carry no position; a learned position embedding (1, N, D) added to them lets attention layers tell
#   "A left of B" from "B left of A".
#
# **Next:** [02_attention.ipynb](02_attention.ipynb), the layer that reads these tokens.
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
