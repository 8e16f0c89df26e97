# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Images as tokens: a VQ tokenizer, DALL-E-style text-to-image, and CM3's causally masked objective
#
# **What you will build.** Up to now images reached the language model as continuous vectors, so it could read them
# but never write them. Here pictures become *words*:
#
# * a tiny **VQ-VAE** turns each 32×32 picture into an 8×8 grid of ids from a codebook of 512 codes, and back;
# * a **DALL-E**-style causal transformer reads a caption and then writes the 64 image ids, which the VQ-VAE's
#   decoder turns into a picture; a toy **CLIP** reranks several samples, as DALL-E did;
# * a **CM3**-style model is trained on documents where a span was cut out and moved to the end; from prompts alone
#   it captions, draws, and *fills in* part of a picture — which a plain left-to-right model cannot do.
#
# A **judge** (a small CNN trained on the world's labels, 100 % right on real renders) reads every generated picture,
# so all scores here are automatic.
#
# **Needs.** Lesson 08 (vector quantisation, the causally masked transform), `03_clip` (the reranker; the one used
# here comes from a shared cache, section 4), `04_causal_lm`.
#
# **Time.** About 30 minutes on a 2-core CPU: judge 90 s, tokenizer 180 s, DALL-E 360 s, CM3 300 s and a
# left-to-right model 300 s, plus sampling. Under CI (`MINIVLM_FAST=1`) each training lasts a few seconds; the
# stored outputs are from a full run.

# %%
# %matplotlib inline
import random

import numpy as np
import torch
import matplotlib.pyplot as plt

from minivlm import fast_mode
from minivlm.concepts.causal_masking import causal_mask_transform
from minivlm.concepts.vq import codebook_usage, quantize, quantize_np
from minivlm.data.datasets import eval_set
from minivlm.data.world import HELD_OUT
from minivlm.models.vqvae import pixels
from minivlm.plots import image_grid, training_curves
from minivlm.recipes.clip import notebook_clip
from minivlm.recipes.cm3 import CM3Recipe, evaluate_cm3, infill_images, object_rows, recolour, train_cm3
from minivlm.recipes.dalle import (DalleRecipe, clip_scores, evaluate_dalle, judge_matches, sample_pictures,
                                   text_tokenizer, train_dalle)
from minivlm.recipes.vq import (JudgeRecipe, VQRecipe, eval_sets, evaluate_judge, evaluate_vq, reconstruct,
                                train_judge, train_vq)
from minivlm.train import TrainConfig

FAST = fast_mode()
S = dict(judge=3, vq=4, dalle=4, cm3=4) if FAST else dict(judge=90, vq=180, dalle=360, cm3=300)
print("fast mode" if FAST else "full run", "- training seconds:", S)

# %% [markdown]
# ## 1. Vector quantisation in a few lines
#
# Each encoder vector is replaced by its nearest codebook vector; the id of that code is the token. The NumPy version
# is the definition; the package's `quantize` is the same in torch, plus the straight-through trick: the forward
# value is the code, the gradient goes to the encoder output unchanged.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
z = rng.normal(size=(1, 5, 4)).astype(np.float32)  # (B, N, D): 5 encoder vectors
codebook = rng.normal(size=(3, 4)).astype(np.float32)  # (K, D): 3 codes
zq_np, ids_np = quantize_np(z, codebook)
z_t = torch.tensor(z, requires_grad=True)
zq, ids, codebook_loss, commitment = quantize(z_t, torch.tensor(codebook))
print("ids (NumPy):", ids_np.tolist(), " ids (torch):", ids.tolist())
print("same quantised vectors:", np.allclose(zq.detach().numpy(), zq_np))
zq.sum().backward()
print("straight-through: d(sum zq)/dz is all ones:", bool((z_t.grad == 1).all()))

# %% [markdown]
# ## 2. The judge: who decides whether a generated picture is right?
#
# A small CNN reads a picture back into its meaning (count, colours, shapes, sizes, relation). It is trained on
# rendered scenes of *every* colour×shape pair, the held-out ones included, because it must score generations of
# them. On real renders it should be (nearly) always right; otherwise its verdicts on generated pictures mean little.

# %%
sets = eval_sets()
judge, judge_hist = train_judge(TrainConfig(seconds=S["judge"], seed=0), JudgeRecipe(n=5000 if FAST else 50_000))
print({k: round(v, 3) for k, v in evaluate_judge(judge, sets).items()})

# %% [markdown]
# ## 3. The image tokenizer (VQ-VAE): 32×32 pixels -> 64 ids -> 32×32 pixels
#
# Training minimises reconstruction error plus the codebook and commitment terms. Codes that no encoder output picks
# never move ("dead codes"); ours restart at the encoder outputs their nearest code serves worst. Each id names one of
# 512 codes of only 8 numbers, and the tokenizer trains with more, smaller steps than the other models (batch 64,
# lr 6e-3): `minivlm/recipes/vq.py` and `bench/README.md` show what each choice bought.

# %%
curve_set = sets["mixed"].subset(np.arange(200 if FAST else 500))
vq_recipe = VQRecipe(n=5000 if FAST else 50_000)  # batch 64, lr 6e-3
vq_budget = TrainConfig(seconds=S["vq"], batch_size=vq_recipe.batch_size, lr=vq_recipe.lr, seed=0,
                        eval_every_s=2 if FAST else 20)
vq, vq_hist = train_vq(vq_budget, vq_recipe, judge=judge, curve_set=curve_set)
vq_metrics = evaluate_vq(vq, judge, sets)
print({k: round(v, 3) for k, v in vq_metrics.items()})
training_curves(vq_hist, ("recon_colour_shape_acc", "recon_judge_acc"), "VQ-VAE");

# %%
mixed = sets["mixed"]
recon, ids = reconstruct(vq, mixed.images[:10])  # (10, 3, 32, 32), (10, 64)
fig = image_grid(np.concatenate([mixed.images[:10], pixels(recon)]), cols=10, scale=1.2,
                 titles=["original"] * 10 + ["from 64 tokens"] * 10)

# %% [markdown]
# What the tokens look like: the 8×8 grid of ids for one picture. The black background is a handful of codes; the
# object's cells use others. And how evenly the codebook is used: a perplexity of P means the codes are used about as
# much as P equally likely codes would be.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
axes[0].imshow(mixed.images[3], interpolation="nearest"); axes[0].set_title(mixed.captions[3], fontsize=8)
grid = ids[3].reshape(8, 8).numpy()
axes[1].imshow(grid, cmap="tab20")
for (r, c), v in np.ndenumerate(grid):
    axes[1].text(c, r, v, ha="center", va="center", fontsize=6)
axes[1].set_title("its 8x8 token ids")
_, all_ids = reconstruct(vq, mixed.images)
counts = torch.bincount(all_ids.flatten(), minlength=vq.cfg.codes).sort(descending=True).values
axes[2].bar(range(len(counts)), counts.numpy(), width=1.0); axes[2].set_yscale("log")
usage = codebook_usage(all_ids, vq.cfg.codes)
axes[2].set_title(f"code use, most used first: perplexity {usage['perplexity']:.0f}, dead {usage['dead_codes']}")
for ax in axes[:2]:
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# ## 4. DALL-E: caption tokens, then image tokens, one causal transformer
#
# A training sequence is the caption padded to 14 positions, an `<image>` marker, then the 64 image ids (offset by
# the 37 words of the vocabulary). Because the caption comes first, the causal mask already lets every image token
# attend to every word: no cross-attention is needed.

# %%
tok = text_tokenizer()
caption = "a large green star above a small red circle"
layout = tok.encode_batch([caption])[0].tolist() + [tok.image_id] + (ids[0] + len(tok)).tolist()
print(len(layout), "positions:", " ".join(tok.vocab[t] if t < len(tok) else f"c{t - len(tok)}" for t in layout[:22]),
      "...")


# %%
def curve_1obj(model):
    m = evaluate_dalle(model, vq, judge, None, kinds=("1obj",), n=4)
    model.train()
    return m

data_n = dict(n=5000) if FAST else {}
dalle, dalle_hist = train_dalle(TrainConfig(seconds=S["dalle"], seed=0, eval_every_s=2 if FAST else 30), vq,
                                DalleRecipe(**data_n), evaluate=curve_1obj)
training_curves(dalle_hist, ("t2i_match_1obj",), "DALL-E: one-object samples the judge reads right");

# %% [markdown]
# ### Samples, and CLIP reranking
#
# DALL-E drew many samples per caption and kept the ones CLIP scored highest against the caption (Sec. 2.5 of the
# paper). Here: 8 samples per caption, first as drawn, then sorted by the toy CLIP's score (best first, score on top).
# The CLIP is the course's one of 2,500 steps (`notebook_clip`, notebook 03's recipe), trained once into
# `runs/cache/` and shared by notebooks 06-08; the stored output below is from an earlier version of this cell,
# which trained a CLIP here for 100 s.

# %%
clip = notebook_clip(fast=FAST)  # the course's CLIP of 2,500 steps, trained once into runs/cache/

# %%
captions = ["a large red star", "a small blue circle", "a large green star",
            "a large yellow square above a small white cross"]
pictures = sample_pictures(dalle, vq, captions, n=8, seed=1)  # (4, 8, 32, 32, 3)
scores = clip_scores(clip, pictures, captions)  # (4, 8)
verdict = judge_matches(judge, pictures, captions)["match"]  # (4, 8)
order = scores.argsort(dim=1, descending=True).numpy()
fig, axes = plt.subplots(2 * len(captions), 8, figsize=(9, 2.4 * len(captions)))
for i, cap in enumerate(captions):
    for j in range(8):
        for row, k in ((2 * i, j), (2 * i + 1, order[i, j])):
            ax = axes[row, j]
            ax.imshow(pictures[i, k], interpolation="nearest"); ax.set_xticks([]); ax.set_yticks([])
            for s in ax.spines.values():
                s.set_color("green" if verdict[i, k] else "red"); s.set_linewidth(2)
            if row == 2 * i + 1:
                ax.set_title(f"{scores[i, k]:.2f}", fontsize=7)
    axes[2 * i, 0].set_ylabel("drawn", fontsize=7); axes[2 * i + 1, 0].set_ylabel("reranked", fontsize=7)
    axes[2 * i, 0].set_title(cap + ("  (held-out pair)" if ("green", "star") in HELD_OUT and "green star" in cap
                                    else ""), fontsize=8, loc="left")
fig.suptitle("green frame: the judge reads the caption's colours and shapes; red: it does not", fontsize=9)
fig.tight_layout()

# %%
t2i = {t: evaluate_dalle(dalle, vq, judge, clip, temperature=t) for t in (0.7, 1.0)}
for t, m in t2i.items():
    print(f"temperature {t}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith("t2i_match")))

# %% [markdown]
# Read the numbers: one-object prompts are mostly drawn right, and CLIP's top-1 of 8 is better still — reranking
# spends compute at sampling time instead of training time. Held-out colour×shape pairs (never seen in training)
# are drawn right too, somewhat less often than seen pairs as drawn and as often once reranked — unlike the
# captioner of notebook 05, which *named* an unseen pair far less often (held-out EM 0.229). Two-object prompts
# are much harder: both objects, each in its place.

# %% [markdown]
# ## 5. CM3: one model that captions, draws and fills in
#
# Each training document holds a caption and the image's tokens, in either order. One span (or none) is cut out and
# moved to the end behind a sentinel. Here is one document before and after:

# %%
# NBVAL_CHECK_OUTPUT
tok_words = tok.encode("a large red star")[1:-1]
doc = tok_words + [tok.image_id] + [len(tok) + c for c in range(64)]
first, last = object_rows(mixed.scenes[0].objects[0], 8)
span = (len(tok_words) + 1 + 8 * first, len(tok_words) + 1 + 8 * last)
masked = causal_mask_transform(doc, [span], [tok.index[f"<mask:{i}>"] for i in range(8)])
show = lambda seq: " ".join(tok.vocab[t] if t < len(tok) else f"c{t - len(tok)}" for t in seq)
print("document :", show(doc)[:90], "...")
print("span     :", span, "(the rows of the object)")
print("masked   :", show(masked[:span[0] + 3]), "...", show(masked[-(span[1] - span[0]) - 2:])[:60], "...")


# %%
def curve_cm3(model):
    m = evaluate_cm3(model, vq, judge, None, n_caption=100, n_infill=100)
    model.train()
    return m

budget = TrainConfig(seconds=S["cm3"], seed=0, eval_every_s=2 if FAST else 60)
cm3, cm3_hist = train_cm3(budget, vq, CM3Recipe(**data_n), evaluate=curve_cm3)
training_curves(cm3_hist, ("caption_em_1obj", "t2i_match_1obj", "infill_judge_acc"), "CM3");

# %% [markdown]
# ### Infilling: recolour one object by redrawing its rows
#
# The prompt is the *edited* caption, the image tokens with the object's rows cut out, and the sentinel that asks for
# them: `<bos> a large blue star <image> c.. <mask:0> c.. <mask:0>`. The model writes the missing rows, having seen
# the rows below them.

# %%
one = eval_set("zeroshot", tok).subset(np.arange(6))
_, one_ids = reconstruct(vq, one.images)
edits = [recolour(s, random.Random(i)) for i, s in enumerate(one.scenes)]
spans = [tuple(8 * r for r in object_rows(s.objects[0], 8)) for s in one.scenes]
filled = infill_images(cm3, [e[0] for e in edits], one_ids, spans, seed=0)
holes = one_ids.clone()
shown_hole = pixels(vq.decode(one_ids)).copy()
for i, (a, b) in enumerate(spans):
    shown_hole[i, 4 * (a // 8):4 * (b // 8)] = 90  # the masked rows, greyed
after = pixels(vq.decode(filled))
said = judge.predict(vq.decode(filled))
titles = ([s.caption() for s in one.scenes] + ["rows cut out"] * 6
          + [f"asked: {e[1]}\njudge: {p[0][1]} {p[0][2]}" for e, p in zip(edits, said)])
fig = image_grid(np.concatenate([one.images, shown_hole, after]), titles=titles, cols=6, scale=1.7)

# %% [markdown]
# ## 6. What only the causal mask adds: the same documents, trained left to right
#
# Same documents, same budget, no span ever moved. This model can caption an image that comes first and draw an image
# that comes second. It has never seen a sentinel, so the infilling prompt means nothing to it.

# %%
l2r, l2r_hist = train_cm3(budget, vq, CM3Recipe(span_mix={"none": 1.0}, **data_n))
results = {name: evaluate_cm3(model, vq, judge, clip) for name, model in (("CM3", cm3), ("left to right", l2r))}
keys = ("caption_em_1obj", "caption_em_1obj_l2r", "t2i_match_1obj", "infill_judge_acc", "infill_text_acc")
x = np.arange(len(keys))
fig, ax = plt.subplots(figsize=(9, 3.2))
for k, (name, m) in enumerate(results.items()):
    ax.bar(x + 0.4 * k - 0.2, [m[key] for key in keys], 0.4, label=name)
ax.set_xticks(x, ["caption\n(masked prompt)", "caption\n(left to right)", "draw\n(1 object)",
                  "infill image\n(recolour)", "infill word\n(colour)"])
ax.set_ylim(0, 1); ax.legend(); ax.set_title("same documents, same budget")
for name, m in results.items():
    print(f"{name:>13}: " + ", ".join(f"{k} {m[k]:.3f}" for k in keys))

# %% [markdown]
# ## Your turn
#
# Write a caption in the world's words (sizes small/large; colours red, green, blue, yellow, purple, orange, cyan,
# white; shapes circle, square, triangle, diamond, star, cross; relations above, below, to the left of, to the right
# of) and draw it. From a terminal: `python -m minivlm draw runs/dalle-seed0/dalle.pt "your caption" --n 8
# --clip runs/dalle-seed0/clip.pt` after `python -m minivlm train dalle`.

# %%
mine = ["a small purple diamond to the left of a large orange circle"]
pics = sample_pictures(dalle, vq, mine, n=8, seed=0)[0]
order = clip_scores(clip, pics[None], mine)[0].argsort(descending=True).numpy()
fig = image_grid(pics[order], titles=[mine[0][:24]] + [""] * 7, cols=8, scale=1.2)
