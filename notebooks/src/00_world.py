# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · The shapes world
#
# Every model in minivlm learns from one small world: images of one or two coloured shapes on a black background,
# each with an English caption. In this notebook you will look at that world before any model sees it:
#
# - the 6 shapes, 8 colours, 2 sizes and 4 relations, and what a `Scene` records about an image;
# - two-object captions, and why "A to the left of B" and "B to the right of A" must count as the same answer;
# - the 6 colour × shape pairs held out of training, to test compositional generalisation;
# - the tokenizer that turns captions into ids;
# - the fixed evaluation sets, the cached training set, and `preprocess`, the one function that turns pixels into
#   model input;
# - the folder format for bringing your own image + caption pairs.
#
# **Needs:** nothing, this is the first notebook. **Runs in:** 0.1 minutes on a 2-core CPU (AMD EPYC, measured
# 2026-12-04), most of it rendering the 50,000-image training set. It is the same on a CUDA machine: nothing here
# uses the GPU.

# %% [markdown]
# Everything comes from the package: `minivlm.data` draws and stores the world, `minivlm.plots` draws figures.
# `fast_mode()` is true under CI (`MINIVLM_FAST=1`), where the training set is smaller.

# %%
# %matplotlib inline
import random
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from minivlm import fast_mode
from minivlm.data import (COLOURS, EVAL_SETS, HELD_OUT, RELATIONS, SHAPES, SIZES, Scene, Tokenizer, caption_meaning,
                          eval_set, load_folder, load_image, make_shapes, preprocess, render, sample_scene,
                          save_folder)
from minivlm.data.world import Obj
from minivlm.plots import image_grid

FAST = fast_mode()

# %% [markdown]
# ## 1. What the world is made of
#
# Six shapes, eight saturated colours (each pixel colour jitters by ±20 per channel when drawn), two sizes given as a
# radius relative to the image side, and four relations between two objects.

# %%
# NBVAL_CHECK_OUTPUT
print("shapes   :", ", ".join(SHAPES))
print("colours  :", ", ".join(COLOURS))
sizes = [f"{size} (radius {frac} x side = {frac * 32:.1f} px at 32 px)" for size, frac in SIZES.items()]
print("sizes    :", ", ".join(sizes))
print("relations:", " | ".join(RELATIONS))
assert (len(SHAPES), len(COLOURS), len(SIZES), len(RELATIONS)) == (6, 8, 2, 4)

# %% [markdown]
# A scene is made in two steps. `sample_scene` draws its metadata (which objects, where) from a `random.Random`,
# and `render` draws the pixels: at 2× resolution, then downsampled, which smooths the edges. The same seed gives
# the same images on every machine. Here are 18 random scenes, half of them with two objects, and their captions.

# %%
rng = random.Random(0)
scenes = [sample_scene(rng, res=32, p_two=0.5) for _ in range(18)]
images = np.stack([render(s, rng, res=32) for s in scenes])  # (18, 32, 32, 3)
assert images.shape == (18, 32, 32, 3) and images.dtype == np.uint8
fig = image_grid(images, [s.caption() for s in scenes], cols=6)
fig.suptitle("18 random scenes (32 × 32 px) with their captions", y=1.02)
plt.show()

# %% [markdown]
# ## 2. A scene's metadata
#
# Each image keeps its `Scene`: the objects with their shape, colour, size, centre (x, y) and radius r in pixels,
# and, with two objects, where `objects[0]` is relative to `objects[1]`. Later lessons turn this metadata into
# questions and documents. Here is the first two-object scene above.

# %%
# NBVAL_CHECK_OUTPUT
k = next(i for i, s in enumerate(scenes) if len(s.objects) == 2)
scene, image = scenes[k], images[k]
for i, o in enumerate(scene.objects):
    print(f"objects[{i}]: {o.size} {o.colour} {o.shape}, centre x={o.x:.1f} y={o.y:.1f}, radius {o.r:.1f} px")
print("relation  :", scene.relation)
print("caption   :", scene.caption())

# %% [markdown]
# The metadata drawn over the picture. Image coordinates start at the top left and y grows downwards, so "above"
# means a smaller y. The two objects always sit in opposite halves (dashed line), never more than 2 px apart on the
# other axis, so the relation is never ambiguous.

# %%
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.imshow(image, extent=(0, 32, 32, 0), interpolation="nearest")  # pixel edges on integer coordinates
for i, o in enumerate(scene.objects):
    ax.add_patch(plt.Circle((o.x, o.y), o.r, fill=False, color="magenta", lw=1.5))
    ax.plot(o.x, o.y, "+", color="magenta", ms=10)
    ax.annotate(f"objects[{i}]: {o.colour} {o.shape}", (o.x, o.y - o.r), xytext=(0, 4), textcoords="offset points",
                ha="center", va="bottom", color="white", fontsize=8)
halves = ax.axvline if scene.relation in ("to the left of", "to the right of") else ax.axhline
halves(16, color="grey", ls="--", lw=1)
ax.set(title=f"objects[0] is {scene.relation!r} objects[1]", xlabel="x (px)", ylabel="y (px, downwards)")
plt.show()

# %% [markdown]
# ## 3. Two ways to say the same thing
#
# A two-object caption can be stated from either object's side: "A to the left of B" says the same as "B to the
# right of A". `Scene.caption(flip=True)` gives the other wording, and the training set uses both.
# `caption_meaning` maps a caption to a canonical key (every relation stated as "to the left of" or "above"). The
# metrics use it to decide whether a retrieved caption is right. Word order still matters: swapping the objects while
# keeping the relation word is a different scene.

# %%
# NBVAL_CHECK_OUTPUT
a, b = scene.objects
said, flipped = scene.caption(), scene.caption(flip=True)
swapped = f"{b.phrase} {scene.relation} {a.phrase}"  # same words, objects exchanged: another scene
for text in (said, flipped, swapped):
    print(f"{text!r:75} -> {caption_meaning(text)}")
assert caption_meaning(said) == caption_meaning(flipped)
assert caption_meaning(said) != caption_meaning(swapped)

# %% [markdown]
# A single-object caption means its one object. A sentence the world cannot say is refused.

# %%
# NBVAL_CHECK_OUTPUT
print(caption_meaning("a small red circle"))
try:
    caption_meaning("a small red circle near a large blue square")
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## 4. Held-out colour × shape pairs
#
# Six of the 48 colour × shape pairs never appear in a training image or caption, one per shape, chosen so that
# every colour and every shape is still seen in other pairs. A model that recognises "a green circle" having seen
# only green squares and red circles has learned colour and shape separately: that is compositional
# generalisation, and the `heldout` evaluation set measures it.

# %%
# NBVAL_CHECK_OUTPUT
for colour, shape in sorted(HELD_OUT):
    print(f"held out: {colour} {shape}")
seen = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]
assert {c for c, _ in seen} == set(COLOURS) and {s for _, s in seen} == set(SHAPES)
print(f"{len(seen)} of {len(COLOURS) * len(SHAPES)} pairs are seen in training; every colour and shape is among them")

# %% [markdown]
# All 48 pairs drawn large in the middle of an image, the held-out ones framed in red.

# %%
rng = random.Random(0)
gap, side = 2, 32
mosaic = np.full((len(COLOURS) * (side + gap), len(SHAPES) * (side + gap), 3), 60, dtype=np.uint8)
fig, ax = plt.subplots(figsize=(5, 6.5))
for i, colour in enumerate(COLOURS):
    for j, shape in enumerate(SHAPES):
        one = Scene((Obj(shape, colour, "large", 16, 16, SIZES["large"] * side),))
        y, x = i * (side + gap), j * (side + gap)
        mosaic[y:y + side, x:x + side] = render(one, rng, res=side)  # (32, 32, 3)
        if (colour, shape) in HELD_OUT:
            ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), side, side, fill=False, color="red", lw=2))
ax.imshow(mosaic, interpolation="nearest")
ax.set_xticks([j * (side + gap) + side / 2 for j in range(len(SHAPES))], SHAPES, rotation=30)
ax.set_yticks([i * (side + gap) + side / 2 for i in range(len(COLOURS))], list(COLOURS))
ax.set(title="all colour × shape pairs (red frame: held out)", xlabel="shape", ylabel="colour")
plt.show()

# %% [markdown]
# `sample_scene(..., split="train")` never draws a held-out pair, and `split="heldout"` draws only those. A check on
# 20,000 sampled training scenes (metadata only, which is fast) with many two-object scenes, and on 1,000 held-out
# ones:

# %%
# NBVAL_CHECK_OUTPUT
rng = random.Random(1)
train_scenes = [sample_scene(rng, p_two=0.5, split="train") for _ in range(20_000)]
pairs = [(o.colour, o.shape) for s in train_scenes for o in s.objects]
print(f"objects in 20000 training scenes: {len(pairs)}; held-out pairs among them: {sum(p in HELD_OUT for p in pairs)}")
held = [sample_scene(rng, p_two=0.0, split="heldout") for _ in range(1000)]
assert all((s.objects[0].colour, s.objects[0].shape) in HELD_OUT for s in held)
assert not any(p in HELD_OUT for p in pairs)

# %% [markdown]
# ## 5. The tokenizer
#
# Captions become token ids with a word-level `Tokenizer`: 13 special tokens first, then the 24 words of the
# world in alphabetical order. `<pad>` (id 0) fills a caption up to `max_len` = 16; `<bos>` and `<eos>` open and
# close every caption; `<unk>` stands for an unknown word when you ask for it; `<image>` marks where a
# LLaVA-style model puts the image's tokens; `<mask:0>` … `<mask:7>` are the sentinels of the CM3 lesson, where a
# span of a document is cut out and moved to the end.

# %%
# NBVAL_CHECK_OUTPUT
tok = Tokenizer()
print(len(tok), "tokens, max_len", tok.max_len)
print("specials:", tok.vocab[:13])
print("words   :", tok.vocab[13:])
print("ids of <pad> <bos> <eos> <unk> <image>:", tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id, tok.image_id)
assert len(tok) == 37 and tok.pad_id == 0

# %% [markdown]
# `encode` wraps a caption as `<bos> words <eos>`, and `decode` reverses it.

# %%
# NBVAL_CHECK_OUTPUT
caption = scene.caption()
ids = tok.encode(caption)
print(caption)
print(ids)
print([tok.vocab[i] for i in ids])
print(repr(tok.decode(ids)))
assert tok.decode(ids) == caption

# %% [markdown]
# `encode_batch` pads a list of captions into one (B, max_len) int64 tensor, the input of every text model. The
# longest caption of the world has 12 words, 14 tokens with `<bos>` and `<eos>`, so 16 leaves room. Special
# tokens can be written in the text, as later lessons do.

# %%
# NBVAL_CHECK_OUTPUT
batch = tok.encode_batch(["a small red circle", caption, "<image> a large cyan star <mask:0>"])  # (3, 16)
print(batch.shape, batch.dtype)
print(batch)
for row in batch:
    print(repr(tok.decode(row)))
assert tok.decode(batch[1]) == caption

# %% [markdown]
# A word outside the vocabulary is an error by default, because a typo silently turned into `<unk>` would go
# unnoticed. Pass `unk=True` to map unknown words to `<unk>` on purpose. A caption longer than `max_len` is
# refused as well.

# %%
# NBVAL_CHECK_OUTPUT
try:
    tok.encode("a small pink circle")
except ValueError as e:
    print("ValueError:", e)
ids = tok.encode("a small pink circle", unk=True)
print(ids, "->", repr(tok.decode(ids)))
try:
    tok.encode_batch(["a small red circle to the left of a large blue square below a cross"])
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## 6. The fixed evaluation sets
#
# Evaluation sets are drawn from their own fixed seeds, never from a training seed, so every model, notebook and
# benchmark scores the same images. `zeroshot` holds single objects of seen pairs (classified among 96 prompts
# "a {size} {colour} {shape}"). `heldout` holds single objects of the six unseen pairs. `mixed` (half two-object)
# and `two` (all two-object) are for retrieval.

# %%
# NBVAL_CHECK_OUTPUT
for name, spec in EVAL_SETS.items():
    print(f"{name:9} n={spec['n']:5}  p_two={spec['p_two']:.1f}  split={spec['split']:8} seed={spec['seed']!r}")

# %% [markdown]
# Rendering all four takes a fraction of a second. Each set is identical on every call; a few counts show what is
# in it.

# %%
# NBVAL_CHECK_OUTPUT
sets = {name: eval_set(name, tok) for name in EVAL_SETS}
for name, d in sets.items():
    two = sum(len(s.objects) == 2 for s in d.scenes)
    meanings = len({caption_meaning(c) for c in d.captions})
    print(f"{name:9} images {d.images.shape} {d.images.dtype}, tokens {tuple(d.tokens.shape)}, "
          f"two-object {two:4}, distinct meanings {meanings:4}")
print("first zeroshot captions:", sets["zeroshot"].captions[:3])
again = eval_set("heldout", tok)
assert np.array_equal(again.images, sets["heldout"].images) and again.captions == sets["heldout"].captions

# %% [markdown]
# The held-out set: pairs no training image shows.

# %%
d = sets["heldout"]
fig = image_grid(d.images[:12], d.captions[:12], cols=6)
fig.suptitle("eval set 'heldout': colour × shape pairs never seen in training", y=1.02)
plt.show()

# %% [markdown]
# ## 7. The cached training set
#
# Rendering costs almost nothing next to a training step, but it would take CPU time from training, so the
# training set is rendered once and kept as a uint8 array. `make_shapes` is the call the toy-CLIP recipe makes:
# 50,000 scenes (5,000 in fast mode), 10 % of them with two objects, and each two-object caption stated from a
# random side.

# %%
n_train = 5_000 if FAST else 50_000
t0 = time.perf_counter()
train = make_shapes(n_train, seed=0, tokenizer=tok, p_two=0.1)
seconds = time.perf_counter() - t0
print(f"rendered {len(train):,} scenes in {seconds:.1f} s ({len(train) / seconds:,.0f} images/s)")
print(f"images {train.images.shape} {train.images.dtype}: {train.images.nbytes / 1e6:.1f} MB")
print(f"tokens {tuple(train.tokens.shape)} {train.tokens.dtype}: {train.tokens.nbytes / 1e6:.1f} MB")
print(f"two-object scenes: {np.mean([len(s.objects) == 2 for s in train.scenes]):.1%}")
assert train.images.shape == (n_train, 32, 32, 3) and train.images.dtype == np.uint8

# %% [markdown]
# The check of section 4, now on the cached set itself: no held-out pair in any object or caption.

# %%
# NBVAL_CHECK_OUTPUT
in_objects = sum((o.colour, o.shape) in HELD_OUT for s in train.scenes for o in s.objects)
in_captions = sum(f"{c} {s}" in caption for caption in train.captions for c, s in HELD_OUT)
print("held-out pairs in training objects :", in_objects)
print("held-out pairs in training captions:", in_captions)
assert in_objects == 0 and in_captions == 0

# %% [markdown]
# ## 8. `preprocess`: one function from pixels to model input
#
# Models never see uint8 pixels. `preprocess` turns a uint8 batch (B, 32, 32, 3), or one image (32, 32, 3), into
# float32 (B, 3, 32, 32) in [-1, 1]. Training, evaluation and inference all call this one function, so a model
# always sees pixels scaled exactly as in training.

# %%
# NBVAL_CHECK_OUTPUT
x = preprocess(sets["mixed"].images[:8])  # (8, 3, 32, 32)
print(x.shape, x.dtype, f"min {x.min():.3f} max {x.max():.3f}")
one = preprocess(sets["mixed"].images[0])  # (1, 3, 32, 32): a single image gets a batch axis
print(one.shape)
print("0 ->", preprocess(np.zeros((32, 32, 3), np.uint8)).unique().tolist(),
      " 255 ->", preprocess(np.full((32, 32, 3), 255, np.uint8)).unique().tolist())
assert torch.equal(one[0], x[0])

# %% [markdown]
# Anything else is refused with a message naming what was expected and what came: a common mistake is pixels
# already scaled to [0, 1], or channels-first arrays.

# %%
# NBVAL_CHECK_OUTPUT
bad_inputs = {
    "floats in [0, 1]": sets["mixed"].images[:4] / 255,
    "channels first": sets["mixed"].images[:4].transpose(0, 3, 1, 2),
    "64 x 64 image": np.zeros((64, 64, 3), np.uint8),
    "grey, no channels": np.zeros((4, 32, 32), np.uint8),
    "empty batch": np.zeros((0, 32, 32, 3), np.uint8),
    "a list": [[0, 0, 0]],
}
for what, bad in bad_inputs.items():
    try:
        preprocess(bad)
    except (TypeError, ValueError) as e:
        print(f"{what:18} -> {type(e).__name__}: {e}")
    else:
        raise AssertionError(f"{what} was accepted")

# %% [markdown]
# ## 9. A folder of your own images
#
# `data_samples/` in the repository stores image + caption pairs as PNG files beside a `captions.tsv` with one
# `file.png<TAB>caption` line per image. `save_folder` writes that format and `load_folder` reads it back. You can
# also write such a folder by hand to try a trained model on your own pictures. Here we use a temporary folder
# (the metadata of a `Scene` is not stored; a folder keeps only pixels and captions).

# %%
# NBVAL_CHECK_OUTPUT
small = sets["mixed"].subset(range(5))
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp) / "my_shapes"
    save_folder(small, folder)
    print(sorted(p.name for p in folder.iterdir()))
    print((folder / "captions.tsv").read_text(), end="")
    back = load_folder(folder, tok)
assert np.array_equal(back.images, small.images) and back.captions == small.captions
assert torch.equal(back.tokens, small.tokens) and back.scenes is None
print("round trip: images, captions and tokens identical")

# %% [markdown]
# One picture from disk, as at inference: `load_image` reads it as (32, 32, 3) uint8 and `preprocess` does the rest.
# An image of another size is refused unless you ask for `resize=True`.

# %%
# NBVAL_CHECK_OUTPUT
with tempfile.TemporaryDirectory() as tmp:
    big = Path(tmp) / "photo.png"
    Image.fromarray(np.kron(small.images[0], np.ones((2, 2, 1), np.uint8))).save(big)  # a 64 x 64 copy
    try:
        load_image(big)
    except ValueError as e:
        print("ValueError:", str(e).replace(tmp, "<tmp>"))
    pixels = load_image(big, resize=True)  # (32, 32, 3)
x = preprocess(pixels)  # (1, 3, 32, 32)
print(pixels.shape, pixels.dtype, "->", tuple(x.shape), x.dtype)

# %% [markdown]
# ## What you learned
#
# - The world: 6 shapes × 8 colours × 2 sizes, one or two objects, four relations, all drawn deterministically
#   from a seed. Each image keeps its `Scene` metadata.
# - Captions with two objects have two wordings. `caption_meaning` gives the key the metrics compare, so
#   "A left of B" and "B right of A" both count as right.
# - Six colour × shape pairs never appear in training; the `heldout` set tests whether a model composes colour and
#   shape it saw apart.
# - The tokenizer has 37 tokens, 13 of them special; it refuses unknown words unless `unk=True`.
# - Fixed evaluation sets (`EVAL_SETS`), a cached uint8 training set (about 150 MB for 50,000 images, a few seconds
#   to render), and one `preprocess` for training, evaluation and inference.
#
# **Next:** [01_patch_embedding.ipynb](01_patch_embedding.ipynb) cuts these images into patches, the first layer of
# a vision transformer.
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
