# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · InfoNCE and toy CLIP
#
# **What you will build.** The contrastive loss of CLIP (InfoNCE) from scratch in NumPy, then a whole toy CLIP — a
# ViT image encoder and a text transformer projected into one embedding space — trained on the shapes world until it
# classifies pictures *zero-shot* from the sentence "a small red circle", retrieves captions for images and images for
# captions, and even names colour×shape pairs it has never seen.
#
# **Needs.** `01_patch_embedding` (the ViT's first layer) and `02_attention` (its blocks); `00_world` for the data.
#
# **Time.** Training is budgeted in optimiser steps: 3,750 steps of 128 pairs (480,000 samples), the same model on
# every machine. The whole notebook took 3.1 minutes on a 2-core CPU (AMD EPYC, measured 2026-12-04; not measured
# on CUDA). Under CI (`MINIVLM_FAST=1`) it trains 40 steps only; the stored outputs below are from a full run.

# %%
# %matplotlib inline
import dataclasses
import textwrap

import numpy as np
import torch
import matplotlib.pyplot as plt

from minivlm import fast_mode
from minivlm.concepts.info_nce import caption_groups, info_nce, info_nce_np
from minivlm.data import SHAPES, COLOURS, HELD_OUT, Tokenizer, make_shapes, meaning_ids, preprocess
from minivlm.evaluate import CLASSES, embed_images, embed_texts, zero_shot, retrieval
from minivlm.models.clip import CLIP
from minivlm.plots import confusion, image_grid, similarity_matrix, training_curves
from minivlm.recipes import cache
from minivlm.recipes.clip import CLIPRecipe, clip_config, eval_sets, evaluate_clip, notebook_clip_steps, train_clip
from minivlm.recipes.recipe import Run, save
from minivlm.recipes.runs import run_stats
from minivlm.train import build

FAST = fast_mode()
STEPS = notebook_clip_steps(FAST)  # 3,750 optimiser steps (40 in fast mode): the course's CLIP
print("fast mode" if FAST else "full run", "- training for", STEPS, "steps")

# %% [markdown]
# ## 1. InfoNCE by hand
#
# A batch holds $B$ matching pairs (image $i$, caption $i$). Both towers' outputs are L2-normalised, and every image is
# compared with every caption:
#
# $$\text{logits}_{ij} = e^{t}\, \frac{I_i \cdot T_j}{\lVert I_i\rVert \lVert T_j\rVert}, \qquad
# \mathcal{L} = \tfrac12\Big(\underbrace{\tfrac1B\textstyle\sum_i
# -\log \operatorname{softmax}_j(\text{logits}_{ij})_{j=i}}_{\text{image}\to\text{text}}
# + \underbrace{\tfrac1B\textstyle\sum_j
# -\log \operatorname{softmax}_i(\text{logits}_{ij})_{i=j}}_{\text{text}\to\text{image}}\Big)$$
#
# $e^{t} = 1/\tau$ is a *learned* inverse temperature (CLIP starts at $\tau = 0.07$ and clips $e^t$ at 100). This is the
# CLIP paper's Figure 3 pseudo-code. Here it is in a few lines of NumPy on a batch of 4 random pairs:

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
img, txt = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))  # (B, E), (B, E)
scale = 1 / 0.07

I = img / np.linalg.norm(img, axis=1, keepdims=True)  # (B, E) unit rows
T = txt / np.linalg.norm(txt, axis=1, keepdims=True)
logits = scale * I @ T.T  # (B, B): row = image, column = caption

def cross_entropy_rows(z):  # -log softmax(z)[i, i], averaged over rows
    z = z - z.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(z).sum(axis=1)) - np.diag(z))

by_hand = (cross_entropy_rows(logits) + cross_entropy_rows(logits.T)) / 2
package_np = info_nce_np(img, txt, scale)
package_torch = info_nce(torch.tensor(img), torch.tensor(txt), torch.tensor(scale)).item()
print(f"by hand {by_hand:.6f}   minivlm NumPy {package_np:.6f}   minivlm torch {package_torch:.6f}")
assert np.isclose(by_hand, package_np) and np.isclose(by_hand, package_torch)

# %% [markdown]
# With random embeddings the loss is large. If every image matched only its own caption perfectly, the loss would fall
# towards 0; if the model could not tell anything apart it would be $\ln B$:

# %%
# NBVAL_CHECK_OUTPUT
perfect = info_nce_np(np.eye(4), np.eye(4), 100.0)
clueless = info_nce_np(np.ones((4, 8)), np.ones((4, 8)), 100.0)
print(f"perfect pairs: {perfect:.4f}   identical embeddings: {clueless:.4f}   ln(4) = {np.log(4):.4f}")

# %% [markdown]
# ### Duplicate captions: a false alarm, and the real false negatives
#
# The world has only 96 single-object captions, so a batch of 128 repeats many of them. It looks as if plain InfoNCE
# tells the model that image 5 must *not* match caption 17 even when both say "a small red circle". `groups` lets
# pairs share positives: each row's target is spread uniformly over every pair in its group.

# %%
# NBVAL_CHECK_OUTPUT
tok = Tokenizer()
batch = make_shapes(128, "notebook-batch", tok, p_two=0.1)
print(f"{len(batch)} captions: {len(caption_groups(batch.tokens).unique())} distinct texts, "
      f"{len(batch.meanings.unique())} distinct meanings")

# %% [markdown]
# But try it. Identical texts get identical embeddings from any text encoder, so their logit columns are identical,
# and a target spread over equal logits gives *exactly* the one-hot loss (and gradients). The false negatives that
# matter are different texts with one meaning: "A to the left of B" and "B to the right of A". That is why the
# training recipe groups pairs by **meaning** (`ShapesData.meanings`, from `caption_meaning`).

# %%
# NBVAL_CHECK_OUTPUT
scene = next(s for s in batch.scenes if len(s.objects) == 2)
texts = ["a small red circle", "a small red circle", scene.caption(), scene.caption(flip=True), "a large blue star"]
tokens = tok.encode_batch(texts)  # (5, L)
same_text, same_meaning = caption_groups(tokens), meaning_ids(texts)  # (5,), (5,)
print("groups by text   ", same_text.tolist())
print("groups by meaning", same_meaning.tolist())
g = torch.Generator().manual_seed(0)
img = torch.randn(5, 16, generator=g, dtype=torch.float64)  # (B, E)
txt = torch.randn(5, 16, generator=g, dtype=torch.float64)[same_text]  # (B, E): identical texts, identical rows
s = torch.tensor(1 / 0.07, dtype=torch.float64)
one_hot, by_text, by_meaning = (info_nce(img, txt, s), info_nce(img, txt, s, same_text),
                                info_nce(img, txt, s, same_meaning))
print(f"one-hot {one_hot:.6f}   grouped by text {by_text:.6f}   grouped by meaning {by_meaning:.6f}")
assert torch.isclose(one_hot, by_text) and not torch.isclose(one_hot, by_meaning)

# %%
pos = (batch.meanings[:, None] == batch.meanings[None, :]).float()  # (B, B)
fig, ax = plt.subplots(1, 2, figsize=(9, 4))
ax[0].imshow(torch.eye(len(pos)), cmap="Greys"); ax[0].set_title("plain InfoNCE: positives = diagonal")
ax[1].imshow(pos, cmap="Greys"); ax[1].set_title("grouped by meaning: a 128-pair batch")
for a in ax: a.set(xlabel="caption j", ylabel="image i")
plt.tight_layout()

# %% [markdown]
# ## 2. The model
#
# `minivlm/models/clip.py` wires the concepts of the earlier notebooks: `PatchEmbed` + learned positions + pre-LN
# `TransformerBlock`s, mean-pooled, for images; token + position embeddings + blocks with a padding mask, pooled at
# the `<eos>` token, for text; a linear projection of each into a 64-d embedding space; and a learned `log_scale`.
# Images go through the one `preprocess` function (uint8 → float in [-1, 1]) in training, evaluation and inference
# alike.

# %%
# NBVAL_CHECK_OUTPUT
cfg = clip_config(tok)
model = build(CLIP, cfg, seed=0)
x = preprocess(batch.images[:8])  # (8, 3, 32, 32)
print("images", tuple(x.shape), "-> patches", tuple(model.visual.patch_embed(x).shape),
      "-> image embeddings", tuple(model.encode_image(x).shape))
print("tokens", tuple(batch.tokens[:8].shape), "-> text embeddings", tuple(model.encode_text(batch.tokens[:8]).shape))
print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
with torch.no_grad():
    print(f"loss at initialisation on the 128-pair batch: "
          f"{model.loss(preprocess(batch.images), batch.tokens, batch.meanings).item():.4f}"
          f"  (ln 128 = {np.log(128):.4f})")

# %% [markdown]
# Before training, the image–caption similarities are noise: nothing on the diagonal stands out. Each row is one
# image of the mixed evaluation set (drawn at the left, labelled by its index there: 0, 3, …, 27), and column $n$ is
# the caption of row $n$'s image, so the true pairs lie on the diagonal.

# %%
tok = Tokenizer()
sets = eval_sets(tok)
mixed = sets["mixed"]
pick = list(range(0, 30, 3))  # ten fixed examples of the mixed evaluation set

def show_similarity(model, title):
    with torch.no_grad():
        sim = (embed_images(model, mixed.images[pick]) @ embed_texts(model, mixed.tokens[pick]).T).numpy()
    similarity_matrix(sim, [f"image {i}" for i in pick], [mixed.captions[i] for i in pick], title,
                      row_images=mixed.images[pick])
    return sim

sim_before = show_similarity(model, "before training")

# %% [markdown]
# ## 3. Training
#
# The recipe lives in `minivlm/recipes/clip.py` (the CLI and the benchmark use the same one): 50 000 cached scenes
# (10 % with two objects), pairs grouped by caption meaning, batch 128, AdamW (lr 3·10⁻³, β₂ 0.98, weight decay 0.05
# on matrices), 50 warm-up steps and a cosine schedule that ends at the last step. Every 5 training seconds the
# trainer stops the clock and measures zero-shot accuracy, held-out accuracy and retrieval, so we can watch learning
# happen (the evaluations do not change the training: the model trained here is the one `CLIPRecipe()` trains for
# 3,750 steps from seed 0, which section 5 keeps for the later notebooks).

# %%
curve_sets = {k: sets[k] for k in ("zeroshot", "heldout", "mixed")}
recipe = CLIPRecipe()
train_cfg = dataclasses.replace(recipe.train_config(STEPS, seed=0), eval_every_s=1 if FAST else 5)
model, history = train_clip(train_cfg, recipe, tok, curve_sets=curve_sets)
last = history.steps[-1]
print(f"{last['samples']:,} samples in {last['seconds']:.1f} s ({last['samples'] / last['seconds']:.0f} samples/s)")
assert history.steps[-1]["loss"] < history.steps[0]["loss"], "the loss should fall"

# %% [markdown]
# Colour is learned almost at once; shape stalls for a while and then rises sharply. Size is never the bottleneck.

# %%
training_curves(history, metrics=("zero_shot_acc", "colour_acc", "shape_acc", "size_acc", "heldout_acc", "i2t_r1"));

# %% [markdown]
# ### The learned temperature
#
# The logits are $e^{t}\cos(I_i, T_j)$ and $t$ is a parameter like any other. It starts at $e^t = 1/0.07 \approx 14.3$
# (CLIP's initial temperature $\tau = 0.07$) and is clamped to at most 100 after each step, as CLIP does. A larger
# $e^t$ sharpens the softmax over the batch: once the model tells pairs apart, sharpening lowers the loss further, so
# gradient descent raises it.

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot([e["step"] for e in history.evals], [e["logit_scale"] for e in history.evals], marker=".")
ax.axhline(1 / 0.07, color="grey", ls=":", label="initial 1/0.07")
ax.axhline(model.cfg.max_logit_scale, color="grey", ls="--", label="CLIP's cap, 100")
ax.set(xlabel="optimiser step", ylabel="$e^t = 1/\\tau$", title="toy CLIP: the learned inverse temperature")
ax.legend(fontsize=8); ax.grid(alpha=0.3)
print(f"after training: e^t = {model.logit_scale().item():.1f}, temperature tau = {1 / model.logit_scale().item():.4f}")
# %%
metrics = evaluate_clip(model, tok, sets)
for k in ("zero_shot_acc", "colour_acc", "shape_acc", "size_acc", "heldout_acc", "i2t_r1", "i2t_r5", "t2i_r1",
          "i2t_median_rank", "two_obj_i2t_r1"):
    print(f"{k:<18} {metrics[k]:.3f}")
if not FAST:  # the targets of a full run (bench/clip_bench.py measures them carefully)
    assert metrics["zero_shot_acc"] >= 0.95 and metrics["heldout_acc"] >= 0.9 and metrics["i2t_r1"] >= 0.75

# %% [markdown]
# ## 4. What the model learned
#
# After training, the diagonal lights up: each image is closest to its own caption. Off-diagonal bright cells are
# usually captions that share colour and shape.

# %%
sim_after = show_similarity(model, "after training")

# %% [markdown]
# ### Zero-shot classification
#
# No classifier was trained. We embed the 96 prompts "a {size} {colour} {shape}" and label each image with the nearest
# prompt. The confusion matrices show which mistakes remain.

# %%
zs = zero_shot(model, sets["zeroshot"], tok)
confusion([CLASSES[t][1] for t in zs["true"]], [CLASSES[p][1] for p in zs["pred"]], list(COLOURS),
          f"zero-shot colour (accuracy {zs['colour_acc']:.3f})")
confusion([CLASSES[t][2] for t in zs["true"]], [CLASSES[p][2] for p in zs["pred"]], list(SHAPES),
          f"zero-shot shape (accuracy {zs['shape_acc']:.3f})");

# %% [markdown]
# ### Held-out compositions
#
# Six colour×shape pairs (green circle, green star, orange triangle, white diamond, yellow cross, yellow square) never
# appeared in a training image or caption. The model has seen *green* and *circle*, but never together. Can it still
# pick the prompt "a small green circle"?

# %%
held = sets["heldout"]
hz = zero_shot(model, held, tok)
for colour, shape in sorted(HELD_OUT):
    rows = [i for i, s in enumerate(held.scenes) if (s.objects[0].colour, s.objects[0].shape) == (colour, shape)]
    print(f"{colour:>7} {shape:<9} {np.mean(hz['pred'][rows] == hz['true'][rows]):.3f}  ({len(rows)} images)")
print(f"all held-out: {hz['acc']:.3f}")
image_grid(held.images[:12], [f"pred: {' '.join(CLASSES[p])}" for p in hz["pred"][:12]], cols=6);

# %% [markdown]
# ### Retrieval
#
# Text → image: the images closest to a caption. A hit counts when the retrieved image *means* the same, since
# "A to the left of B" and "B to the right of A" describe one scene.

# %%
with torch.no_grad():
    img_emb, txt_emb = embed_images(model, mixed.images), embed_texts(model, mixed.tokens)
queries = [0, 1, 3, 6]
fig, axes = plt.subplots(len(queries), 6, figsize=(10, 1.9 * len(queries)),
                         gridspec_kw={"width_ratios": [2.2, 1, 1, 1, 1, 1]})
for row, q in zip(axes, queries):
    best = (txt_emb[q] @ img_emb.T).argsort(descending=True)[:5]
    row[0].text(0, 0.5, textwrap.fill(mixed.captions[q], 26), fontsize=9, va="center"); row[0].axis("off")
    for rank, (ax, i) in enumerate(zip(row[1:], best), 1):
        ax.imshow(mixed.images[i]); ax.set_title(f"#{rank}", fontsize=8); ax.axis("off")
fig.suptitle("text → image: the 5 nearest images for each caption")

# %% [markdown]
# ### Where the ViT looks
#
# The last ViT block's attention, averaged over heads and over query patches: how much each of the 4×4 patches is
# attended to. Patches holding an object draw the attention; empty black patches are mostly ignored.

# %%
attn = model.visual.blocks[-1].attn
attn.keep_weights = True
with torch.no_grad():
    model.encode_image(preprocess(mixed.images[:6]))
attn.keep_weights = False
maps = attn.last_weights.mean(dim=(1, 2)).reshape(-1, 4, 4)  # (6, 4, 4): attention received per patch
fig, axes = plt.subplots(2, 6, figsize=(11, 4))
for k in range(6):
    axes[0, k].imshow(mixed.images[k]); axes[0, k].set_title(textwrap.fill(mixed.captions[k], 24), fontsize=7)
    axes[1, k].imshow(maps[k], cmap="magma"); axes[1, k].set_title("attention received", fontsize=7)
for a in axes.flat: a.axis("off")
plt.tight_layout()

# %% [markdown]
# ## 5. Save, load, evaluate again
#
# A checkpoint holds the weights, the full config, the recipe, the seed and the package version, and loads with
# `weights_only=True` (no code is run). We keep it in the checkpoint cache (`runs/cache/`, under the folder the
# notebook runs in): notebooks 05-08 start from this model through `notebook_clip()`, which reads it there, and which
# trains this same model (same recipe, seed and steps) if you skip this notebook.

# %%
ckpt_path = cache.path_of(recipe, seed=0, steps=STEPS)
save(recipe, Run(model, history, run_stats(model, history, seed=0)), ckpt_path)
loaded, tok2, ckpt = recipe.load(ckpt_path)
again = evaluate_clip(loaded, tok2, sets)
assert again == metrics, "a loaded checkpoint must evaluate exactly like the model that was saved"
print("reloaded checkpoint evaluates identically; made with seed", ckpt["seed"], "and minivlm", ckpt["version"])

# %% [markdown]
# ## Summary
#
# - InfoNCE is two cross-entropies over one similarity matrix, with a learned temperature. Grouping identical
#   captions as positives changes nothing (their logits are equal); grouping different wordings of one meaning does.
# - Toy CLIP (225k parameters) learns colour in seconds and shape after a sudden transition, reaching ≥95 % zero-shot
#   accuracy over 96 prompts in 3,750 steps (about two minutes of CPU training) — and it names held-out colour×shape
#   pairs it never saw. Its inverse temperature $e^t$ rises from 14.3 to 50.5 as it learns.
# - Two-object retrieval (binding and relations) is much harder than single objects: compare `two_obj_i2t_r1`.
#
# **Exercises:** `lessons/03_info_nce.md` and `lessons/04_toy_clip.md`; grade yourself with
# `python -m minivlm.check info_nce` and `python -m minivlm.check retrieval`.
