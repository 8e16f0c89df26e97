# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · ClipCap: captions from a CLIP prefix
#
# **What you will build.** An image captioner from two trained parts and a small bridge (Mokady et al. 2021, ClipCap):
# the toy CLIP of notebook 03 encodes an image into one vector, a *mapping network* turns that vector into $k$
# embeddings, and the language model of notebook 04 reads them as a prefix and writes the caption. You will train it,
# watch it caption one-object scenes almost perfectly and fail on two-object scenes (and see why), compare the
# paper's two settings (MLP mapper with a fine-tuned LM, transformer mapper with a frozen LM), vary the prefix length,
# and read the prefix back as words.
#
# **Needs.** `03_clip` (the course's CLIP, which it keeps in the checkpoint cache; without it this notebook trains the
# same CLIP first, about 2 minutes more) and `04_causal_lm` (the LM and its loss).
#
# **Time.** Every training is budgeted in optimiser steps. The whole notebook took 2.7 minutes on a 2-core CPU
# (AMD EPYC, measured 2026-12-04, with notebook 03's CLIP in the cache; not measured on CUDA). Under CI
# (`MINIVLM_FAST=1`) every training lasts a few steps; the stored outputs below are from a full run.

# %%
# %matplotlib inline
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt

import dataclasses

from minivlm import fast_mode
from minivlm.data import HELD_OUT, Tokenizer, caption_meaning, preprocess
from minivlm.data.tokenizer import SPECIALS
from minivlm.evaluate import is_sentence, meaning_matches, zero_shot
from minivlm.models.clipcap import ClipCap
from minivlm.plots import grouped_bars, image_grid, training_curves
from minivlm.recipes.clip import eval_sets, notebook_clip
from minivlm.recipes.clipcap import ClipCapRecipe, caption_images, clipcap_config, evaluate_clipcap, train_clipcap
from minivlm.recipes.lm import evaluate_lm, train_lm, val_tokens
from minivlm.train import TrainConfig, build

FAST = fast_mode()
MAIN_STEPS = 5 if FAST else 500  # the main ClipCap: 64,000 captions
EXP_STEPS = 5 if FAST else 200  # each experiment: a step budget, so every setting sees the same 25 600 captions
LM_STEPS = 5 if FAST else 200  # text-only pretraining of the LM that the frozen-LM settings need
DATA = ClipCapRecipe(n_train=2_000 if FAST else 50_000)  # rendered training scenes, half with two objects
N_EVAL = 200 if FAST else 1000  # images per evaluation set
print("fast mode" if FAST else "full run", f"- ClipCap trains {MAIN_STEPS} steps, each experiment {EXP_STEPS} steps")

# %% [markdown]
# ## 1. A frozen CLIP
#
# ClipCap never trains its image encoder: CLIP's embedding already says what is in the picture. `notebook_clip()`
# gives the course's toy CLIP, the one notebook 03 trained (3,750 steps, seed 0) and kept in the checkpoint cache; if
# the cache does not hold it, it trains that same model first.

# %%
clip = notebook_clip(fast=FAST)  # the course's CLIP of 3,750 steps, trained once into runs/cache/
tok = Tokenizer()
clip.eval()
sets = eval_sets(tok, names=("zeroshot", "heldout", "mixed"))
sets = {name: data.subset(range(N_EVAL)) for name, data in sets.items()}  # the first N_EVAL of each
print(f"CLIP zero-shot accuracy over 96 prompts: {zero_shot(clip, sets['zeroshot'], tok)['acc']:.3f}")

# %% [markdown]
# ## 2. The prefix
#
# CLIP pools an image into **one** embedding $e \in \mathbb{R}^{64}$. The mapping network $F$ turns it into $k$
# vectors of the LM's width, $p_1, \dots, p_k = F(e)$, and the LM reads them before `<bos>` as if they were the
# embeddings of $k$ words (ClipCap §3):
#
# $$\mathcal{L} = -\sum_{j} \log p_\theta\big(c_j \mid p_1, \dots, p_k, c_1, \dots, c_{j-1}\big).$$
#
# `clipcap_config` wires the recipe's parts around our CLIP; here are the shapes on 8 images:

# %%
# NBVAL_CHECK_OUTPUT
mixed = sets["mixed"]
cfg = clipcap_config(clip, tok, mapper="mlp", prefix_len=4)
model = build(ClipCap, cfg, seed=0)
model.clip.load_state_dict(clip.state_dict())
x = preprocess(mixed.images[:8])  # (B, 3, 32, 32)
tokens = mixed.tokens[:8]  # (B, L)
with torch.no_grad():
    e = model.clip.encode_image(x)  # (B, E)
    prefix = model.mapper(e)  # (B, k, D)
    logits = model.lm(tokens, prefix)  # (B, L, V): the token positions only
print(f"images {tuple(x.shape)} -> CLIP embedding {tuple(e.shape)} -> mapper -> prefix {tuple(prefix.shape)}")
print(f"prefix {tuple(prefix.shape)} + tokens {tuple(tokens.shape)} -> LM context {cfg.lm.max_len} "
      f"-> logits {tuple(logits.shape)}")

# %% [markdown]
# The prefix positions are context, never targets: the LM returns logits only at the token positions, and the loss
# is notebook 04's shifted loss on those. For one caption the sequence the LM reads looks like this:

# %%
# NBVAL_CHECK_OUTPUT
row = [tok.vocab[i] for i in tokens[0].tolist() if i != tok.pad_id]
inputs = [f"p{i + 1}" for i in range(cfg.prefix_len)] + row
targets = ["-"] * cfg.prefix_len + row[1:] + ["-"]
print(f"{'position':<9}" + "".join(f"{i:>7}" for i in range(len(inputs))))
print(f"{'input':<9}" + "".join(f"{w:>7}" for w in inputs))
print(f"{'target':<9}" + "".join(f"{w:>7}" for w in targets))

# %% [markdown]
# The paper's two mapping networks ("Mapping Network Architecture"): an MLP (one hidden layer, tanh) when the LM is
# fine-tuned with it, and a transformer that turns $e$ into a few tokens next to $k$ learned constants when the LM is
# frozen and $F$ alone must learn to speak its language. What each combination trains:

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'mapper':<12} {'LM':<11} {'trainable':>10} {'frozen':>9}")
for mapper in ("mlp", "transformer"):
    for freeze_lm in (False, True):
        m = build(ClipCap, clipcap_config(clip, tok, mapper, 4, freeze_lm), seed=0)
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in m.parameters() if not p.requires_grad)
        print(f"{mapper:<12} {'frozen' if freeze_lm else 'fine-tuned':<11} {trainable:>10,} {frozen:>9,}")

# %% [markdown]
# ## 3. Training the main setting: MLP mapper, fine-tuned LM, k = 4
#
# `train_clipcap` (in `minivlm/recipes/clipcap.py`, the recipe of the CLI and the benchmark) renders 50 000 scenes,
# half with two objects, copies and freezes the CLIP, and trains the mapper and the LM on the captions: batch 128,
# AdamW, warm-up and a cosine schedule over 500 steps. Every 5 training seconds it captions the
# 1 000 "mixed" images greedily and the 1 000 held-out ones, and scores them by **meaning** (notebook 04, section 6):
# semantic exact match (EM), overall and per number of objects.

# %%
curve_sets = {k: sets[k] for k in ("mixed", "heldout")}
model, history, _ = train_clipcap(TrainConfig(steps=MAIN_STEPS, eval_every_s=5, seed=0), clip, tok, DATA,
                                  curve_sets=curve_sets)  # DATA's defaults: the MLP mapper, k = 4
last = history.steps[-1]
print(f"{last['samples']:,} samples in {last['seconds']:.1f} s ({last['samples'] / last['seconds']:.0f} samples/s)")
assert history.steps[-1]["loss"] < history.steps[0]["loss"], "the loss should fall"

# %% [markdown]
# One-object exact match climbs as training goes on; two-object exact match stays near zero. Watch the held-out EM
# (the six colour×shape pairs never seen in training): it is highest at the first evaluation, 0.823 at step 74,
# and *falls* to 0.418 by step 500 (printed below the plot), while one-object EM on seen pairs climbs to 0.994.
# Section 4 (*Held-out compositions*) shows where it goes: by the end "green circle" is always captioned "green
# square" and "white diamond" mostly "white cross", seen pairs of the same colour. As the LM fits the 42 seen pairs
# it is trained on, it learns to write one of them; a held-out image then gets the nearest seen pair. The per-pair
# counts support this reading; this notebook does not test it further.

# %%
training_curves(history, metrics=("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em"),
                title="ClipCap (MLP, fine-tuned LM, k=4)")
plt.gcf().axes[1].set_ylabel("semantic exact match")
held_curve = [(e["step"], e["heldout_em"]) for e in history.evals]
best = max(held_curve, key=lambda se: se[1])
print(f"held-out EM: {held_curve[0][1]:.3f} at step {held_curve[0][0]}, highest {best[1]:.3f} at step {best[0]}, "
      f"{held_curve[-1][1]:.3f} at the end (step {held_curve[-1][0]})")

# %%
main = history.evals[-1]  # the last evaluation: the trained model on every set
for k in ("caption_em", "caption_em_1obj", "caption_em_2obj", "heldout_em", "bleu4", "val_ce", "val_token_acc"):
    print(f"{k:<16} {main[k]:.3f}")

# %% [markdown]
# ## 4. What it writes
#
# Twelve images of the mixed evaluation set with their greedy captions (✓ = means what the image shows):

# %%
captions = caption_images(model, mixed.images, tok)  # 1000 greedy captions
right = meaning_matches(captions, mixed.scenes)  # (1000,) bool
image_grid(mixed.images[:12], [f"{'✓' if r else '✗'} {c}" for c, r in zip(captions[:12], right[:12])], cols=6);

# %% [markdown]
# The two-object captions, true and generated:

# %%
for i in [i for i, s in enumerate(mixed.scenes) if len(s.objects) == 2][:8]:
    print(f"{'✓' if right[i] else '✗'} true: {mixed.captions[i]}\n  said: {captions[i]}")


# %% [markdown]
# What goes wrong with two objects? We sort every two-object caption by its mistake. "Right words, wrongly bound"
# means the caption names the right sizes, colours and shapes, but attaches them to the wrong objects (the red
# circle and the blue square become a blue circle and a red square).

# %%
def two_object_error(caption, scene):
    if not is_sentence(caption) or len(caption_meaning(caption)) != 3:
        return "not a two-object sentence"
    (a, rel, b), (ta, trel, tb) = caption_meaning(caption), scene.meaning()
    if (a, rel, b) == (ta, trel, tb):
        return "right"
    if sorted([a, b]) == sorted([ta, tb]):
        return "both objects right, relation wrong"
    if all(sorted([a[i], b[i]]) == sorted([ta[i], tb[i]]) for i in range(3)):
        return "right words, wrongly bound"
    if a in (ta, tb) or b in (ta, tb):
        return "one object right"
    return "neither object right"

two = [i for i, s in enumerate(mixed.scenes) if len(s.objects) == 2]
errors = Counter(two_object_error(captions[i], mixed.scenes[i]) for i in two)
for kind, n in errors.most_common():
    print(f"{kind:<36} {n / len(two):.3f}")

# %% [markdown]
# **Why.** The caption needs *which colour goes with which shape*, and where each object is. CLIP's image tower
# mean-pools its 16 patch tokens into one 64-d vector, trained only to match captions in a batch where nine in ten
# scenes had one object. One vector can hold "red, blue, circle, square, small, large" as a bag; keeping the
# pairings and the relation in it is much harder, and notebook 03 already measured it: CLIP's two-object retrieval
# R@1 is far below its one-object accuracy. The mapping network cannot restore what the pooled vector lost, so the
# fine-tuned LM writes fluent two-object sentences with the details guessed. ClipCap's single-vector prefix is the
# bottleneck; LLaVA (a later notebook) gives the LM all 16 patch tokens instead.

# %% [markdown]
# ### Held-out compositions
#
# Six colour×shape pairs never appear in a training image or caption, so the LM has never written "green circle".
# CLIP names them zero-shot because the prompt supplies the words. Can the captioner put the two words together on
# its own? Sometimes: look at the exact match per pair. More often it keeps the colour and swaps the shape for one it
# has seen with that colour.

# %%
held = sets["heldout"]
held_captions = caption_images(model, held.images, tok)
held_right = meaning_matches(held_captions, held.scenes)
for colour, shape in sorted(HELD_OUT):
    rows = [i for i, s in enumerate(held.scenes) if (s.objects[0].colour, s.objects[0].shape) == (colour, shape)]
    said = Counter(" ".join(held_captions[i].split()[2:]) for i in rows).most_common(2)
    print(f"{colour:>7} {shape:<9} EM {held_right[rows].mean():.3f}   most often said: {said}")
print(f"all held-out: {held_right.mean():.3f}")

# %% [markdown]
# ## 5. Experiments: MLP or transformer mapper, LM fine-tuned or frozen
#
# A frozen LM must already know the language, and at the positions where it will read the text: `train_lm` pretrains
# it on captions alone after a blank prefix of $k$ zero embeddings (see the docstring of `minivlm/models/clipcap.py`).
# We pretrain one LM for the two frozen settings; the fine-tuned settings start from scratch, as the recipe does.

# %%
pretrained_lm, _ = train_lm(TrainConfig(steps=LM_STEPS, seed=0), tokenizer=tok, prefix_len=4)
with torch.no_grad():
    lm_metrics = evaluate_lm(pretrained_lm, tok, val_tokens(tok))
print(f"pretrained LM: validation CE {lm_metrics['val_ce']:.3f}, "
      f"{lm_metrics['sample_valid_frac']:.2f} of its samples are sentences")


# %% [markdown]
# A comparison must give every setting the same data, so the experiments count optimiser steps, not seconds (a
# transformer mapper costs more per step, and a time budget would also measure whatever else the machine was doing).
# Each setting trains for 200 steps of 128 captions and is scored on the same sets.

# %%
def experiment(mapper="mlp", freeze_lm=False, k=4, lm=None):
    setting = dataclasses.replace(DATA, mapper=mapper, prefix_len=k, freeze_lm=freeze_lm)
    m, hist, _ = train_clipcap(TrainConfig(steps=EXP_STEPS, seed=0), clip, tok, setting, lm=lm)
    scores = evaluate_clipcap(m, tok, curve_sets)
    scores["trainable"] = sum(p.numel() for p in m.parameters() if p.requires_grad)
    scores["seconds"] = hist.steps[-1]["seconds"]
    return m, scores

results, models = {}, {}
for mapper in ("mlp", "transformer"):
    for freeze_lm in (False, True):
        name = f"{mapper}, {'frozen' if freeze_lm else 'fine-tuned'} LM"
        models[name], results[name] = experiment(mapper, freeze_lm, lm=pretrained_lm if freeze_lm else None)


# %%
def table(results):
    print(f"{'setting':<26} {'trainable':>9} {'time (s)':>8} {'EM':>6} {'1-obj':>6} {'2-obj':>6} {'held-out':>8} "
          f"{'BLEU-4':>6} {'val CE':>6}")
    for name, r in results.items():
        print(f"{name:<26} {r['trainable']:>9,} {r['seconds']:>8.1f} {r['caption_em']:>6.3f} "
              f"{r['caption_em_1obj']:>6.3f} {r['caption_em_2obj']:>6.3f} {r['heldout_em']:>8.3f} {r['bleu4']:>6.3f} "
              f"{r['val_ce']:>6.3f}")

def bars(results):
    return {name: {"EM": r["caption_em"], "1-object EM": r["caption_em_1obj"], "2-object EM": r["caption_em_2obj"],
                   "held-out EM": r["heldout_em"]} for name, r in results.items()}

table(results)
grouped_bars(bars(results), f"ClipCap settings, {EXP_STEPS} training steps each", "mapper, language model");

# %% [markdown]
# With the same 200 steps, the two fine-tuned settings end close to each other, and both frozen-LM settings far
# behind, although their LM was pretrained to a validation loss near the floor of notebook 04 (the printed line
# above). In the paper the two settings are close; there the frozen LM is GPT-2, which knows far more language than
# it needs and only has to be steered, and the mapper trains for many epochs. Our frozen LM is tiny, and 200 steps
# are few for a mapper that must, on its own, write prefixes an unchanged LM reads as "a large red diamond";
# fine-tuning lets the LM meet the mapper halfway. No setting gets two-object captions right: the pooled CLIP vector
# limits them all. (The times in the table are wall-clock seconds, under whatever else ran on the machine; only the
# step budget is equal.)

# %% [markdown]
# ## 6. Prefix length
#
# The paper's ablation of the prefix length reports that a longer prefix helps, up to a point: more vectors give the
# mapping network more room to pass on what the LM needs. We train the main setting (MLP mapper, fine-tuned LM) with
# $k$ = 1, 4 and 10; $k = 4$ is the run above.

# %%
sweep = {"k=1": experiment(k=1)[1], "k=4": results["mlp, fine-tuned LM"], "k=10": experiment(k=10)[1]}
table(sweep)
grouped_bars(bars(sweep), f"prefix length (MLP mapper, fine-tuned LM, {EXP_STEPS} steps each)", "prefix length k");

# %% [markdown]
# What we measured: with 200 steps each, $k$ = 1, 4 and 10 end within a point of each other in exact match; in our
# world the prefix length hardly matters. That is not the paper's finding, and a likely reason is the size of the
# message: the whole image arrives as one 64-d CLIP vector, and a single 128-d prefix vector already has room for
# all of it. More
# prefix vectors cannot carry information that the CLIP vector does not hold; a photo described by GPT-2 has far more
# to pass on. The held-out column is another matter: it moves widely between runs of nearly the same exact match
# (0.43 to 0.84 in the two tables), as fragile as its fall during training above; read it as noise at this budget.

# %% [markdown]
# ## 7. Reading the prefix as words
#
# The paper's curiosity ("Prefix Interpretability"): map each learned prefix vector to its nearest word embeddings.
# Our LM ties its output head to the token embedding (notebook 04), so the cosine between a prefix vector and a row of
# `model.lm.tok.weight` asks which word the prefix "looks like". For four images of the main model:

# %%
words = torch.arange(len(SPECIALS), len(tok))  # the world's words; special tokens are never inputs here
W = F.normalize(model.lm.tok.weight[words], dim=-1)  # (V', D)
pick = [0, 1, 2, 4]
with torch.no_grad():
    p = F.normalize(model.prefix(preprocess(mixed.images[pick])), dim=-1)  # (n, k, D)
cos = p @ W.T  # (n, k, V')
for row, i in enumerate(pick):
    print(f"image {i}: {mixed.captions[i]!r}")
    for j in range(cos.shape[1]):
        best = cos[row, j].topk(3)
        print(f"   p{j + 1}: "
              + ", ".join(f"{tok.vocab[words[b]]} ({c:.2f})" for c, b in zip(best.values, best.indices)))

# %% [markdown]
# The nearest words are relation words (to, above, below), shapes, sizes and colours, with cosines around 0.2. A
# slot tends to sit near the same kind of word for every image (the first near relations, the middle ones near
# shapes) rather than spell out the caption. The prefix is a signal the fine-tuned LM has learned to read,
# not a sentence in its vocabulary; the paper, too, found the prefixes of its fine-tuned setting only partly readable
# as words.

# %% [markdown]
# ## Summary
#
# - ClipCap is a frozen CLIP, a small mapping network and a causal LM: one image embedding becomes $k$ prefix
#   embeddings that the LM reads before the caption, and only the caption tokens are targets.
# - With an MLP mapper and a fine-tuned LM, one-object captions are learned fast; two-object captions almost never
#   come out right, because one pooled CLIP vector keeps the words of a scene but loses which colour belongs to which
#   shape, and where each object is. Giving the LM all the patch tokens (LLaVA) is the fix.
# - Some held-out colour×shape pairs are named even though the LM never wrote them in training; others are replaced by
#   a seen pair of the same colour.
# - At an equal step budget a fine-tuned LM beats a frozen one by far in our tiny world, and the prefix length hardly
#   matters: a 64-d CLIP vector fits in one prefix vector.
# - The prefix vectors are not words: their nearest word embeddings show slots that specialise, not a caption.
#
# **Exercises:** `lessons/06_prefix_and_splice.md` (exercises 5 and 6 are about this notebook); grade the splice of
# the next model with `python -m minivlm.check splice`.
