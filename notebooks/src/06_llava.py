# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · LLaVA: visual tokens in the language model's input, trained in two stages
#
# **What you will build.** A toy LLaVA (Liu et al. 2023): the frozen toy CLIP's 16 patch tokens go through a small
# *projector* into the word-embedding space and are *spliced* into the LM's input where the prompt says `<image>`.
# It is trained in LLaVA's two stages — stage 1 aligns the projector alone on image–caption pairs, stage 2 trains
# projector and LM on instruction data — and then answers questions about pictures: colour, shape, size, position,
# count, relations, yes/no and short descriptions. At the end you can type your own question.
#
# **Needs.** `03_clip` (the vision encoder; the one used here comes from a shared cache, section 1), `04_causal_lm`
# (the LM) and
# `05_clipcap` (a prefix from one pooled vector — LLaVA keeps the whole grid instead).
#
# **Time.** LLaVA trains 1,400 optimiser steps of 128 exchanges (about three minutes on two CPU cores), twice: with
# and without the grid code of section 3. The whole notebook took 5.9 minutes on a 2-core CPU (AMD EPYC, measured
# 2026-12-04, with the course's CLIP already in the cache; not measured on CUDA). Under CI (`MINIVLM_FAST=1`) it
# trains a few steps; the stored outputs are from a full run.

# %%
# %matplotlib inline
import textwrap

import numpy as np
import torch
import matplotlib.pyplot as plt

from minivlm import fast_mode
from minivlm.concepts.positions import sincos_2d, sincos_2d_np
from minivlm.concepts.projector import Projector, expand, splice
from minivlm.data import KINDS, instruction_tokenizer, make_vqa, preprocess, render, sample_scene
from minivlm.data.questions import vqa_correct
from minivlm.models.llava import LLaVA
from minivlm.plots import image_grid
from minivlm.recipes.clip import notebook_clip
from minivlm.recipes.llava import LLaVARecipe, eval_sets, evaluate_llava, head, llava_config, prompts, train_llava
from minivlm.train import TrainConfig, build

FAST = fast_mode()
STEPS = 10 if FAST else 1400  # both stages together: 179,200 exchanges
print("fast mode" if FAST else "full run", "- training LLaVA for", STEPS, "steps")

# %% [markdown]
# ## 1. The vision encoder: a frozen toy CLIP
#
# LLaVA starts from a CLIP that already knows how to see. `notebook_clip` gives the course's CLIP, the one notebook 03
# trained (3,750 steps) and kept in the checkpoint cache `runs/cache/` for notebooks 05-08 (if it is not there, it
# trains that same model first). Only its vision tower is used, and it never trains again.

# %%
clip = notebook_clip(fast=FAST)  # the course's CLIP of 3,750 steps, trained once into runs/cache/

# %% [markdown]
# ## 2. Instruction data from scene metadata
#
# LLaVA asked a text-only GPT-4 to write conversations about COCO images from their captions and boxes. Our world
# knows every object exactly, so `minivlm/data/questions.py` writes the questions and answers itself — every answer
# is true by construction. Each exchange is one string, `<image> question answer`; only the answer tokens (and
# `<eos>`) are ever trained.

# %%
# NBVAL_CHECK_OUTPUT
tok = instruction_tokenizer()
demo = make_vqa(n=16, seed="notebook-06", tokenizer=tok)  # two questions of each kind
for qa in demo.qas[:8]:
    print(f"{qa.kind:<9} Q: {qa.question:<52} A: {qa.answer}")

# %%
image_grid(demo.images[:8], [f"{qa.question} → {qa.answer}" for qa in demo.qas[:8]], cols=8, scale=1.9);

# %% [markdown]
# ## 3. The projector and the splice
#
# The ViT turns a 32×32 image into a 4×4 grid of 16 patch tokens of width 64. LLaVA reads them from the layer
# *before* the last (the last one is shaped by CLIP's pooled objective; the one before keeps more of each patch).
# The projector (a linear map in LLaVA, a 2-layer MLP in LLaVA-1.5) takes each to the LM's width, 128. Then
# `splice` replaces the single `<image>` token of the embedded prompt by those 16 tokens:
#
# $$[\,e_{\text{<bos>}},\ e_{\text{<image>}},\ e_{\text{what}},\dots] \;\to\;
# [\,e_{\text{<bos>}},\ H_v^1,\dots,H_v^{16},\ e_{\text{what}},\dots],
# \qquad H_v = \text{projector}(Z_v) + s\,P_v$$
#
# The $s\,P_v$ is ours, not LLaVA's. The LM reads the 16 visual tokens as a sequence: its learned 1-D positions can tell
# it that token 6 comes after token 5, but not that it lies to its right, or above token 10. Given enough training it
# learns the grid (on a GPU, with six times the exchanges of our three minutes, it does). On two CPU cores it does not,
# and "where is the red circle?" stays near a coin toss. So we hand it the grid: $P_v$ is a fixed 2-D sin-cos code
# of the patch's row $i$ and column $j$ (as MAE uses), $[\sin(j\omega), \cos(j\omega), \sin(i\omega), \cos(i\omega)]$
# over 32 frequencies $\omega$ each, and $s = 3$ makes it stand out against the projector's output. First in NumPy,
# then the package's, and they agree:

# %%
# NBVAL_CHECK_OUTPUT
P_np = sincos_2d_np(4, 128)  # (16, 128): patch n sits at row n // 4, column n % 4
P = sincos_2d(4, 128)  # the torch twin the model keeps as a buffer
print("NumPy and torch agree:", np.allclose(P_np, P.numpy(), atol=1e-5))
print("every code has length sqrt(128 / 2) = 8:", torch.allclose(P.norm(dim=1), torch.full((16,), 8.0)))

# %% [markdown]
# Nearby patches get similar codes, far ones different codes; and a row's codes share their second half, a column's
# their first. Each small grid shows how similar one patch's code (the dot) is to every patch's:

# %%
Pn = P / P.norm(dim=1, keepdim=True)
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
for ax, (i, j) in zip(axes, [(0, 0), (1, 2), (3, 3), (2, 0)]):
    ax.imshow((Pn @ Pn[i * 4 + j]).reshape(4, 4), cmap="viridis", vmin=0.3, vmax=1)
    ax.plot(j, i, "wo"); ax.set_xticks([]); ax.set_yticks([]); ax.set_title(f"patch (row {i}, col {j})", fontsize=9)
fig.suptitle("cosine similarity of the 2-D sin-cos codes (4×4 grid of patches)", fontsize=10)
plt.tight_layout()

# %%
# NBVAL_CHECK_OUTPUT
cfg = llava_config(clip.cfg, tok)
model = build(LLaVA, cfg, seed=0)
model.vision.load_state_dict(clip.visual.state_dict())
images, tokens = preprocess(demo.images[:2]), demo.tokens[:2, :12]  # (2, 3, 32, 32), (2, 12)
with torch.no_grad():
    z = model.vision(images, tokens=True, layer=cfg.feature_layer)  # (2, 16, 64)
    h = model.projector(z) + LLaVARecipe.visual_positions * P  # (2, 16, 128): the recipe's s = 3
    x = splice(model.lm.tok(tokens), h, tokens, tok.image_id)  # (2, 12 - 1 + 16, 128)
print("patch tokens", tuple(z.shape), "-> visual tokens", tuple(h.shape))
print("prompt", tuple(tokens.shape), "-> embedded", tuple(model.lm.tok(tokens).shape), "-> spliced", tuple(x.shape))
print("the same as the model's own embed:", torch.equal(x, model.embed(images, tokens)))

# %% [markdown]
# Targets and the loss mask are stretched the same way by `expand`: the 16 visual positions are never targets, and of
# the text only the answer counts. This picture is the whole training signal of one exchange:

# %%
row, n = 0, 16
t = demo.tokens[row:row + 1]  # (1, L)
length = int((t != tok.pad_id).sum())
t, mask = t[:, :length], demo.answer_mask[row:row + 1, :length]  # (1, T), (1, T)
seq = expand(t, t, tok.image_id, n, tok.pad_id)[0]  # (T - 1 + 16,)
trained = expand(mask, t, tok.image_id, n, False)[0]  # (T - 1 + 16,)
labels = ["<bos>"] + [f"v{i}" for i in range(1, n + 1)] + [tok.vocab[i] for i in seq[n + 1:].tolist()]
colour = ["lightgrey"] + ["tab:orange"] * n + ["tab:green" if m else "tab:blue" for m in trained[n + 1:].tolist()]
fig, ax = plt.subplots(figsize=(12, 1.6))
ax.bar(range(len(labels)), 1, color=colour)
ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=8); ax.set_yticks([])
ax.set_title("orange: visual tokens (context) · blue: question (context) · green: answer tokens (the loss)")
plt.tight_layout()


# %% [markdown]
# ## 4. Two stages: which parameters train
#
# Stage 1 (*feature alignment*) trains only the projector, on "what is in the image?" → caption; the LM stays as it
# is. Stage 2 (*end to end*) trains projector and LM on every question kind. The vision tower never trains.

# %%
# NBVAL_CHECK_OUTPUT
def trainable(model):
    return {part: sum(p.numel() for p in getattr(model, part).parameters() if p.requires_grad)
            for part in ("vision", "projector", "lm")}

for stage in (1, 2):
    model.set_stage(stage)
    print(f"stage {stage}: trainable parameters", trainable(model))

# %% [markdown]
# ## 5. Training
#
# `train_llava` (in `minivlm/recipes/llava.py`, the same recipe as `python -m minivlm train llava`, which trains
# 2,100 steps on a CLIP of 7,500 steps) spends 15 % of the steps on stage 1 and the rest on stage 2, each with
# warm-up and a cosine schedule; every ~10 training seconds of stage 2 it answers 400 held-back questions (50 of each
# kind) for the curve.

# %%
sets = eval_sets(tok)
cfg = TrainConfig(steps=STEPS, lr=LLaVARecipe.lr, eval_every_s=3 if FAST else 10, seed=0)  # the recipe's 1e-3
model, history, stage_seconds = train_llava(cfg, clip, tok, curve_sets={"vqa": head(sets["vqa"], 400)})
last = history.steps[-1]
print(f"{last['samples']:,} exchanges in {last['seconds']:.0f} s;", {k: round(v, 1) for k, v in stage_seconds.items()})
assert history.steps[-1]["loss"] < history.steps[0]["loss"], "the loss should fall"

# %% [markdown]
# Stage 1 can only move the projector, so against an LM that has never read anything its loss barely falls from
# ln V ≈ 4.1 nats (the plateau on the left). Once the LM may learn too, the loss drops quickly.

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
t = np.array([r["step"] for r in history.steps]); loss = np.array([r["loss"] for r in history.steps])
s1 = np.array([r["seconds"] for r in history.steps]) <= stage_seconds["stage1_seconds"]
a.plot(t[s1], loss[s1], lw=0.8, label="stage 1: projector only")
a.plot(t[~s1], loss[~s1], lw=0.8, label="stage 2: projector + LM")
a.set(xlabel="optimiser step", ylabel="answer loss (nats)", yscale="log", title="LLaVA: training loss"); a.legend()
for kind in KINDS:
    b.plot([e["step"] for e in history.evals], [e["vqa_acc_by_type"][kind] for e in history.evals], marker=".",
           label=kind)
b.set(xlabel="optimiser step", ylabel="accuracy", ylim=(0, 1.02),
      title="VQA accuracy by question kind (400 questions)")
b.legend(fontsize=7, ncol=2); b.grid(alpha=0.3)
plt.tight_layout()

# %% [markdown]
# ## 6. How well does it answer?
#
# The fixed evaluation sets: 1600 questions about scenes with seen colour×shape pairs (200 of each kind) and 800 about
# the six held-out pairs. An answer is right when it has the same words; a description when it *means* the same scene.

# %%
metrics = evaluate_llava(model, tok, sets)
kinds = list(metrics["vqa_acc_by_type"])
x = np.arange(len(kinds))
fig, ax = plt.subplots(figsize=(10, 3.4))
ax.bar(x - 0.2, [metrics["vqa_acc_by_type"][k] for k in kinds], 0.4, label=f"seen pairs (all {metrics['vqa_acc']:.3f})")
ax.bar(x + 0.2, [metrics["vqa_heldout_acc_by_type"][k] for k in kinds], 0.4,
       label=f"held-out pairs (all {metrics['vqa_heldout_acc']:.3f})")
ax.set_xticks(x, kinds); ax.set(ylabel="accuracy", ylim=(0, 1.05), title="toy LLaVA: VQA accuracy by question kind")
ax.legend(fontsize=8); ax.grid(axis="y", alpha=0.3)
plt.tight_layout()
for k in kinds:
    print(f"{k:<9} seen {metrics['vqa_acc_by_type'][k]:.3f}   held-out {metrics['vqa_heldout_acc_by_type'][k]:.3f}")

# %% [markdown]
# Read the numbers against chance (one of 8 colours, 6 shapes, 4 relations; a coin toss for size, position, count
# and yes/no). Count, size, position and colour are learned, on held-out pairs too. Three kinds are not, after three
# CPU minutes: **yes/no** stays near the coin toss (0.565 seen, 0.580 held-out) — "is there a cyan square?" needs
# both words bound to one object, which the toy has not learned; **relation** (0.46 against a chance of 0.25) needs
# two named objects found and compared; **descriptions** are right 0.53 of the time on seen pairs and 0.18 on
# held-out ones. Held-out **shapes** fall to 0.22 (0.78 on seen pairs): asked the shape of an object whose
# colour×shape pair it never saw, it is mostly wrong. Why yes/no fails we have not measured further; these are
# failures of this budget, shown as such.

# %% [markdown]
# ## 7. What the grid code buys
#
# The same recipe, seed and budget once more, without the code ($s = 0$: LLaVA as published). Questions about *what*
# an object is come out within a few points of each other (the code takes some of each token's room: shape questions
# lose a little); questions about *where* a named object is — "is the red circle on the left or on the right?",
# "where is the red circle relative to the blue square?" — are what the code is for: the model must find the circle
# among 16 visual tokens and read where that token sits. (This notebook's CLIP trained 3,750 steps; the
# leaderboard's LLaVA, 2,100 steps on a CLIP of 7,500, answers colour and shape questions at 0.90,
# `bench/results/leaderboard_cpu.md`.)

# %%
model0, history0, _ = train_llava(cfg, clip, tok, LLaVARecipe(visual_positions=0.0),
                                  curve_sets={"vqa": head(sets["vqa"], 400)})
metrics0 = evaluate_llava(model0, tok, {"vqa": sets["vqa"]})
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.4), gridspec_kw={"width_ratios": [3, 2]})
a.bar(x - 0.2, [metrics0["vqa_acc_by_type"][k] for k in kinds], 0.4, color="tab:grey",
      label=f"no grid code, s = 0 (all {metrics0['vqa_acc']:.3f})")
a.bar(x + 0.2, [metrics["vqa_acc_by_type"][k] for k in kinds], 0.4, color="tab:blue",
      label=f"grid code, s = {LLaVARecipe.visual_positions:g} (all {metrics['vqa_acc']:.3f})")
a.set_xticks(x, kinds); a.set(ylabel="accuracy", ylim=(0, 1.05), title="seen pairs, by question kind")
a.legend(fontsize=8); a.grid(axis="y", alpha=0.3)
for kind, colour in (("position", "tab:orange"), ("relation", "tab:purple")):
    for h, style, label in ((history0, ":", "no code"), (history, "-", "grid code")):
        b.plot([e["step"] for e in h.evals], [e["vqa_acc_by_type"][kind] for e in h.evals], style, color=colour,
               label=f"{kind}, {label}")
b.set(xlabel="optimiser step", ylabel="accuracy", ylim=(0, 1.02), title="where-questions during training")
b.legend(fontsize=7)
plt.tight_layout()
for k in ("position", "relation"):
    print(f"{k:<9} no code {metrics0['vqa_acc_by_type'][k]:.3f}   grid code {metrics['vqa_acc_by_type'][k]:.3f}")

# %% [markdown]
# Here are some answers of the model with the code, two of each kind, graded as the evaluation grades them
# (`vqa_correct`): the same words, and for a description the same *meaning* as the true caption (✗ shows the truth):

# %%
data = sets["vqa"]
pick = list(range(0, 48, 3))
answers = model.answer(preprocess(data.images[pick]), [prompts(data)[i] for i in pick], tok)
titles = [f"{data.qas[i].question}\n→ {a} "
          f"{'✓' if vqa_correct(a, data.qas[i]) else '✗ (' + data.qas[i].answer + ')'}"
          for i, a in zip(pick, answers)]
fig, axes = plt.subplots(2, 8, figsize=(17, 5.4))
for ax, i, title in zip(axes.flat, pick, titles):
    ax.imshow(data.images[i], interpolation="nearest"); ax.axis("off")
    ax.set_title("\n".join(textwrap.fill(line, 24) for line in title.split("\n")), fontsize=7)
plt.tight_layout()

# %% [markdown]
# Descriptions are the hardest answers to grade and the easiest to misjudge by eye: a fluent sentence is not a right
# one. Here are the first ten descriptions of the evaluation set, graded by meaning:

# %%
describe = [i for i, qa in enumerate(data.qas) if qa.kind == "describe"][:10]
said = model.answer(preprocess(data.images[describe]), [prompts(data)[i] for i in describe], tok)
for i, a in zip(describe, said):
    print(f"{'✓' if vqa_correct(a, data.qas[i]) else '✗'} said: {a:<48} true: {data.qas[i].answer}")
print(f"descriptions right over the whole set: {metrics['vqa_acc_by_type']['describe']:.3f}")

# %% [markdown]
# ## 8. Where the answer looks: attention over the visual tokens
#
# Notebook 02 drew attention on toy inputs; here is a trained model's. For "what colour is the circle?" about a
# two-object scene, the LM must find the circle among the 16 visual tokens. We keep every LM layer's attention
# weights (`keep_weights`, the plain `attention` of notebook 02 instead of the fused op) for the position that
# writes the first answer word, average over heads, and lay the 16 weights on the 4×4 patch grid. The green box is
# the patch holding the named object's centre.

# %%
def answer_attention(model, image, prompt):
    """Each LM layer's head-averaged attention from the last prompt position to the 16 visual tokens: (layers, 4, 4)."""
    ids = torch.tensor([tok.encode(prompt)[:-1]])  # (1, P): <bos> <image> question, no <eos>
    n = model.cfg.vision.grid ** 2  # 16 visual tokens, spliced in at position 1
    for block in model.lm.blocks:
        block.attn.keep_weights = True
    with torch.no_grad():
        model.lm.decode(model.embed(preprocess(image[None]), ids))  # (1, P - 1 + 16, V)
    maps = torch.stack([b.attn.last_weights[0, :, -1, 1:1 + n].mean(0) for b in model.lm.blocks])  # (layers, 16)
    for block in model.lm.blocks:
        block.attn.keep_weights, block.attn.last_weights = False, None
    return maps.reshape(-1, model.cfg.vision.grid, model.cfg.vision.grid)  # (layers, 4, 4)

def target_patch(scene, qa, patch=8):
    """(row, col) of the patch holding the centre of the object whose colour the question asks, or None when the
    answer fits both objects."""
    hits = [o for o in scene.objects if o.colour == qa.answer]
    return (int(hits[0].y // patch), int(hits[0].x // patch)) if len(hits) == 1 else None

asked = [i for i, qa in enumerate(data.qas) if qa.kind == "colour" and len(data.scenes[i].objects) == 2
         and target_patch(data.scenes[i], qa) is not None]
layers = len(model.lm.blocks)
fig, axes = plt.subplots(layers + 1, 6, figsize=(11, 2.1 * (layers + 1)))
for col, i in enumerate(asked[:6]):
    maps, (r, c) = answer_attention(model, data.images[i], prompts(data)[i]), target_patch(data.scenes[i], data.qas[i])
    axes[0, col].imshow(data.images[i], interpolation="nearest")
    axes[0, col].set_title(textwrap.fill(data.qas[i].question, 22), fontsize=7)
    for layer in range(layers):
        ax = axes[layer + 1, col]
        ax.imshow(maps[layer], cmap="magma")
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="lime", lw=2))
        ax.set_title(f"layer {layer}", fontsize=7)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
fig.suptitle("toy LLaVA: attention of the answer position over the 4×4 visual tokens (green: the named object)")
plt.tight_layout()

# %% [markdown]
# Counted over every such question of the evaluation set (two objects, one of them of the answer's colour): how often
# each layer's most-attended visual token is the named object's patch, against $1/16$ for a patch picked at random.

# %%
hits = np.zeros(layers)
for i in asked:
    maps, (r, c) = answer_attention(model, data.images[i], prompts(data)[i]), target_patch(data.scenes[i], data.qas[i])
    hits += (maps.flatten(1).argmax(1) == r * model.cfg.vision.grid + c).numpy()
for layer in range(layers):
    print(f"layer {layer}: the most-attended visual token is the named object's in {hits[layer] / len(asked):.3f} "
          f"of {len(asked)} questions (random patch: {1 / 16:.3f})")

# %% [markdown]
# ## 9. Ask it yourself
#
# Change the question (any words of the world: colours, shapes, sizes, "what", "where", "is there", ...) or the
# seed of the scene, and run the cell. A word the model has never seen is an error — or `<unk>` if you pass
# `unk=True`. `python -m minivlm ask CKPT IMAGE.png "what colour is the circle?"` does the same from the command line.

# %%
import random
question = "how many objects are there?"
scene = sample_scene(random.Random("my scene 3"), 32, p_two=1.0)
image = render(scene, random.Random(0), 32)  # (32, 32, 3) uint8
answer = model.answer(preprocess(image[None]), [f"<image> {question}"], tok)[0]
plt.figure(figsize=(2.2, 2.2)); plt.imshow(image, interpolation="nearest"); plt.axis("off")
plt.title(textwrap.fill(f"{question} → {answer}", 30), fontsize=8)
print("truth:", scene.caption())
try:
    model.answer(preprocess(image[None]), ["<image> what colour is the dodecahedron?"], tok)
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## Summary
#
# - LLaVA keeps the whole grid: 16 visual tokens, projected to the LM's width and spliced where `<image>` stood. The
#   loss is the next-token loss on the answer tokens only.
# - Stage 1 trains only the projector (alignment); stage 2 trains projector and LM on instruction data. The vision
#   tower is frozen throughout — checked above by counting trainable parameters.
# - The LM knows the order of its inputs, not the image's grid. Handing it the grid — a fixed 2-D sin-cos code added
#   to each visual token — is what lets three CPU minutes answer *where* a named object is: position questions
#   0.645 without it, 0.805 with it. Relations between two named objects stay hard either way (0.435, 0.460).
# - Not learned at this budget, shown above as failures: yes/no (0.565, a coin toss), relations, held-out shapes
#   and held-out descriptions.
#
# **Exercises:** `lessons/06_prefix_and_splice.md` (the splice and the answer-only loss mask); grade yourself with
# `python -m minivlm.check splice`.
