# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · A causal language model
#
# **What you will build.** The language side of the generative VLMs: a small GPT that writes captions of the shapes
# world one token at a time. You will draw the causal mask and check a NumPy masked softmax against the package's
# attention, compute the shifted next-token loss by hand, train the LM on captions alone, sample from it at several
# temperatures, see that a KV cache generates exactly the same tokens faster, and find out why the course scores
# captions by their *meaning* and not by BLEU.
#
# **Needs.** `02_attention` (the attention and the blocks the LM is built from) and `00_world` (the captions).
#
# **Time.** Training is budgeted in optimiser steps: 360 steps of 128 captions (46,080 samples). The whole notebook
# took 0.4 minutes on a 2-core CPU (AMD EPYC, measured 2026-12-04; not measured on CUDA). Under CI
# (`MINIVLM_FAST=1`) it trains 10 steps; the stored outputs below are from a full run.

# %%
# %matplotlib inline
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt

from minivlm import fast_mode
from minivlm.concepts.attention import KVCache, attention, attention_np, causal_mask
from minivlm.concepts.next_token import next_token_loss, next_token_loss_np
from minivlm.data import (COLOURS, HELD_OUT, RELATIONS, SHAPES, SIZES, Scene, Tokenizer, caption_meaning,
                          make_captions, render)
from minivlm.data.world import Obj
from minivlm.evaluate import bleu, is_sentence, meaning_matches, token_metrics
from minivlm.models.lm import CausalLM, sample_next
from minivlm.plots import training_curves
from minivlm.recipes.lm import evaluate_lm, lm_config, train_lm, val_tokens
from minivlm.train import TrainConfig, build

FAST = fast_mode()
STEPS = 10 if FAST else 360  # optimiser steps of 128 captions
print("fast mode" if FAST else "full run", "- training for", STEPS, "steps")

# %% [markdown]
# ## 1. The causal mask
#
# A language model that *generates* must predict token $t+1$ from tokens $0..t$ alone. In a transformer that is one
# boolean mask on the attention scores: query $i$ may attend to key $j$ only when $j \le i$ (Vaswani et al. 2017,
# §3.2.3). `causal_mask(T)` is that $(T, T)$ matrix, True on and below the diagonal:

# %%
# NBVAL_CHECK_OUTPUT
tok = Tokenizer()
words = ["<bos>"] + "a small red circle".split() + ["<eos>"]
mask = causal_mask(len(words))  # (T, T) bool, True = may attend
print(mask.int())

# %% [markdown]
# As a picture: each row is a token looking back. While generating with a cache (section 5) only the newest token is
# a query, and it sees every cached key: `causal_mask(1, past=5)` is one row of six Trues.

# %%
fig, ax = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [6, 6]})
ax[0].imshow(mask, cmap="Greys", vmin=0, vmax=1)
ax[0].set(title="causal_mask(6): black = may attend", xlabel="key (attended to)", ylabel="query (attending)")
ax[0].set_xticks(range(6), words, rotation=45); ax[0].set_yticks(range(6), words)
ax[1].imshow(causal_mask(1, past=5), cmap="Greys", vmin=0, vmax=1)
ax[1].set(title="causal_mask(1, past=5): one new query", xlabel="key (5 cached + the new one)", ylabel="query")
ax[1].set_xticks(range(6), words, rotation=45); ax[1].set_yticks([0], ["<eos>"])
plt.tight_layout()

# %% [markdown]
# The masked softmax from scratch: scores where the mask is False become $-\infty$, so after the softmax their weights
# are exactly 0. We check it against the package's NumPy and torch attention, and against PyTorch's own fused kernel
# with `is_causal=True`.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
q, k, v = rng.normal(size=(3, 5, 8))  # each (T, d): 5 tokens, width 8
m = np.tril(np.ones((5, 5), dtype=bool))  # (T, T): the causal mask

scores = q @ k.T / np.sqrt(8)  # (T, T)
scores = np.where(m, scores, -np.inf)  # the future is -inf
weights = np.exp(scores - scores.max(axis=1, keepdims=True))
weights = weights / weights.sum(axis=1, keepdims=True)  # (T, T): each row sums to 1
by_hand = weights @ v  # (T, d)

print("attention weights (row = query):")
print(np.round(weights, 3))
t = lambda a: torch.tensor(a)
assert np.allclose(by_hand, attention_np(q, k, v, m))
assert np.allclose(by_hand, attention(t(q), t(k), t(v), causal_mask(5)).numpy())
assert np.allclose(by_hand, F.scaled_dot_product_attention(t(q), t(k), t(v), is_causal=True).numpy())
print("by hand == attention_np == attention == F.scaled_dot_product_attention(is_causal=True)")

# %% [markdown]
# What the mask buys, seen from a whole (untrained) `CausalLM`: change the last token of a caption, and the logits at
# every earlier position stay exactly as they were. No position can peek at its own answer.

# %%
# NBVAL_CHECK_OUTPUT
lm = build(CausalLM, lm_config(tok), seed=0)
a = tok.encode_batch(["a small red circle"])[:, :6]  # (1, 6): <bos> a small red circle <eos>
b = a.clone()
b[0, 4] = tok.index["square"]  # "a small red square"
with torch.no_grad():
    changed = (lm(a) - lm(b)).abs().amax(dim=-1)[0] > 0  # (6,): did position t's logits move?
for w, c in zip(words, changed.tolist()):
    print(f"{w:>7}: {'changed' if c else 'unchanged'}")

# %% [markdown]
# ## 2. The shifted next-token loss
#
# One forward pass over $T$ tokens gives $T$ rows of logits; the row at position $t$ is scored against token $t+1$.
# So predictions are `logits[:, :-1]`, targets are `tokens[:, 1:]`, and `<pad>` targets are dropped. For one caption:

# %%
# NBVAL_CHECK_OUTPUT
captions = ["a large cyan cross", "a small red circle above a large blue star", "a small white diamond"]
tokens = tok.encode_batch(captions)  # (B, L) = (3, 16), padded with <pad>
row = tokens[0].tolist()
print(f"{'position':>8}  {'input':>7}  {'target':>7}")
for pos in range(len(row) - 1):
    target = tok.vocab[row[pos + 1]]
    print(f"{pos:>8}  {tok.vocab[row[pos]]:>7}  {target:>7}{'   (dropped)' if row[pos + 1] == tok.pad_id else ''}")
    if row[pos + 1] == tok.pad_id:
        break

# %% [markdown]
# The loss by hand in NumPy: log-softmax over the vocabulary, pick the target's log-probability, average over the kept
# targets. An untrained LM guesses uniformly, so the loss starts near $\ln V$.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    logits = lm(tokens)  # (B, L, V)
z, x = logits.numpy(), tokens.numpy()
pred, target = z[:, :-1], x[:, 1:]  # (B, L-1, V), (B, L-1): position t predicts token t + 1
keep = target != tok.pad_id  # (B, L-1)
log_probs = pred - pred.max(-1, keepdims=True)
log_probs = log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))  # (B, L-1, V)
picked = np.take_along_axis(log_probs, target[..., None], axis=-1)[..., 0]  # (B, L-1)
by_hand = -picked[keep].mean()

package = next_token_loss(logits, tokens, tok.pad_id).item()
print(f"{keep.sum()} targets kept of {keep.size}")
print(f"by hand {by_hand:.5f}   next_token_loss_np {next_token_loss_np(z, x, tok.pad_id):.5f}   "
      f"next_token_loss {package:.5f}   ln V = ln {len(tok)} = {np.log(len(tok)):.5f}")
assert np.allclose(by_hand, package, atol=1e-5) and np.allclose(by_hand, next_token_loss_np(z, x, tok.pad_id))

# %% [markdown]
# ## 3. Training the LM on captions alone
#
# `train_lm` (in `minivlm/recipes/lm.py`, the same recipe as the CLI) samples 50 000 captions, half of them
# two-object, and trains a GPT of 2 layers, width 128 and 4 heads on their next tokens: batch 128, AdamW, warm-up and
# a cosine schedule that ends at the last step. Every few training seconds it measures the validation loss
# on the 1 000 captions of the "mixed" evaluation set, and samples 500 captions to see how many are sentences.

# %%
val = val_tokens(tok)  # (1000, L): never trained on
print("a training caption:", make_captions(1, seed=0, p_two=0.5)[0])
model, history = train_lm(TrainConfig(steps=STEPS, eval_every_s=1 if FAST else 2, seed=0), tokenizer=tok,
                          curve_tokens=val)
last = history.steps[-1]
print(f"{last['samples']:,} captions in {last['seconds']:.1f} s ({last['samples'] / last['seconds']:.0f} per s)")
assert history.steps[-1]["loss"] < history.steps[0]["loss"], "the loss should fall"

# %% [markdown]
# The loss falls from $\ln 37 \approx 3.6$ within a few dozen steps, then flattens; the validation loss (dots) follows
# the training loss, since the captions of the world repeat and there is nothing to overfit. Sampled captions become
# sentences soon after the loss flattens.

# %%
fig = training_curves(history, metrics=("val_token_acc", "sample_valid_frac", "sample_two_object_frac"),
                      title="toy LM")
fig.axes[0].plot([e["step"] for e in history.evals], [e["val_ce"] for e in history.evals], "o-", ms=3,
                 label="validation")
fig.axes[0].legend(["training batch", "validation"], fontsize=8)
fig.axes[1].set_ylabel("fraction");

# %% [markdown]
# `token_metrics` gives the validation cross-entropy and how often the LM's top-1 guess is the next token:

# %%
with torch.no_grad():
    metrics = token_metrics(model(val), val, tok.pad_id)
print(f"validation cross-entropy {metrics['ce']:.3f} nats per token, top-1 accuracy {metrics['token_acc']:.3f}")

# %% [markdown]
# Why does the loss stop near 1 nat and not at 0? Most tokens are *choices*, not predictions: after "a small", any of
# 8 colours may follow, and nothing in the text says which. We can compute the lowest loss any model could reach: the
# entropy of the world's caption distribution, divided by the number of target tokens per caption. The world picks one
# or two objects (p = 0.5 each), each object uniformly among 2 sizes × the 42 colour×shape pairs allowed in training
# (the second object of another kind than the first), and one of 4 relations. Stating a relation from either side adds
# no entropy: both wordings of a scene are equally likely, so every caption has the probability of its scene.

# %%
# NBVAL_CHECK_OUTPUT
pairs = len(COLOURS) * len(SHAPES) - len(HELD_OUT)  # 42 colour×shape pairs seen in training
one_object = np.log(len(SIZES) * pairs)  # nats: which object
two_objects = np.log(len(SIZES) * pairs) + np.log(len(SIZES) * (pairs - 1)) + np.log(len(RELATIONS))
entropy = np.log(2) + 0.5 * one_object + 0.5 * two_objects  # nats per caption (one or two objects, then which)
targets = (val[:, 1:] != tok.pad_id).sum(dim=1).float().mean().item()  # target tokens per caption
print(f"caption entropy {entropy:.3f} nats over {targets:.2f} target tokens per caption "
      f"-> the best possible loss is {entropy / targets:.3f} nats per token")

# %% [markdown]
# So the trained LM sits within a few hundredths of a nat of the best any model can do on text alone. The rest of the
# uncertainty is exactly what an image will resolve: which colour, which shape, which size, which relation.

# %% [markdown]
# ## 4. Sampling: greedy, temperature, top-k
#
# `sample_next` turns the last position's logits into the next token: the argmax at temperature 0, otherwise a draw
# from $\operatorname{softmax}(z/\tau)$, optionally among the $k$ most likely tokens only. On four made-up logits:

# %%
# NBVAL_CHECK_OUTPUT
z = torch.tensor([[2.0, 1.0, 0.5, -1.0]])  # (1, V) with V = 4
g = torch.Generator().manual_seed(0)
for temperature, top_k in [(0.5, None), (1.0, None), (2.0, None), (1.0, 2)]:
    p = (z / temperature).softmax(-1)[0]
    if top_k:
        p = torch.where(p >= p.topk(top_k).values[-1], p, 0.0)
        p = p / p.sum()
    draws = sample_next(z.expand(10_000, -1), temperature, top_k, g)  # (10000,) ids
    freq = torch.bincount(draws, minlength=4) / 10_000
    assert torch.allclose(freq, p, atol=0.02), "the draws should follow softmax(z / temperature)"
    print(f"temperature {temperature}, top_k {top_k}: probabilities {np.round(p.numpy(), 3)}")
print("greedy (temperature 0):", sample_next(z).item())

# %% [markdown]
# Now on the trained LM, 300 captions from `<bos>` for each setting: how many are sentences of the world
# (`is_sentence`), and how varied they are. Greedy gives one caption, the most likely path, every time. Higher
# temperatures trade correctness for variety; top-k cuts off the long tail of unlikely words.

# %%
bos = torch.full((300, 1), tok.bos_id)  # (300, 1): 300 prompts that are just <bos>
settings = {"greedy (τ=0)": (0.0, None), "τ=0.7": (0.7, None), "τ=1": (1.0, None), "τ=1.5": (1.5, None),
            "τ=1.5, top-k 3": (1.5, 3)}
print(f"{'setting':<16} {'sentences':>9} {'distinct':>8}  examples")
for name, (temperature, top_k) in settings.items():
    out = model.generate(bos, 15, temperature=temperature, top_k=top_k, generator=torch.Generator().manual_seed(0))
    samples = [tok.decode(row) for row in out]
    valid = np.mean([is_sentence(s) for s in samples])
    print(f"{name:<16} {valid:>9.2f} {len(set(samples)):>8}  {samples[0]!r}, {samples[1]!r}")

# %% [markdown]
# ## 5. The KV cache
#
# Without a cache, every generation step re-runs the whole sequence to read one new row of logits. But the keys and
# values of the old tokens never change (the mask keeps them from seeing the new token), so each attention layer can
# keep them in a `KVCache` and compute $q, k, v$ for the newest token only. One step by hand: the prompt fills the
# cache, then a single new token goes in.

# %%
# NBVAL_CHECK_OUTPUT
prompt = tok.encode_batch(["a small red circle"])[:, :5]  # (1, 5): <bos> a small red circle
cache = [KVCache() for _ in model.blocks]  # one per block
with torch.no_grad():
    model(prompt, cache=cache)  # fills the cache with 5 keys and values per layer
    print("cached keys per layer (B, H, S, D/H):", [tuple(c.k.shape) for c in cache])
    new = torch.tensor([[tok.index["to"]]])  # (1, 1): only the new token goes in
    step = model(new, cache=cache)[:, -1]  # (1, V): its query attends to 5 cached keys + its own
    full = model(torch.cat([prompt, new], dim=1))[:, -1]  # (1, V): the whole sequence again
print("after one step:", [tuple(c.k.shape) for c in cache], "- mask", tuple(causal_mask(1, past=5).shape))
assert torch.allclose(step, full, atol=1e-5), "the cached step must give the logits of the full re-run"
print("cached step logits == full re-run logits")

# %% [markdown]
# `generate(use_cache=True)` does that at every step. It must write exactly the same tokens as the re-run, greedy or
# sampled with the same seed:

# %%
# NBVAL_CHECK_OUTPUT
bos = torch.full((500, 1), tok.bos_id)  # (500, 1)
for temperature in (0.0, 1.0):
    fast = model.generate(bos, 15, temperature=temperature, generator=torch.Generator().manual_seed(1))
    slow = model.generate(bos, 15, temperature=temperature, generator=torch.Generator().manual_seed(1),
                          use_cache=False)
    assert torch.equal(fast, slow), "cached and uncached generation must agree token for token"
    print(f"temperature {temperature}: {len(fast)} captions, cached == uncached token for token")


# %% [markdown]
# And the cache is faster: with it each step costs one query per layer; without it, step $t$ runs $t+1$ tokens through
# every layer. Even for our captions of at most 16 tokens that is several times less work; for long texts the cache
# is what makes generation affordable at all. (Timings on this machine, not checked.)

# %%
def timed(use_cache, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.generate(bos, 15, temperature=1.0, generator=torch.Generator().manual_seed(1), use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    return best

with_cache, without = timed(True), timed(False)
print(f"500 captions: {1000 * with_cache:.0f} ms with the KV cache, {1000 * without:.0f} ms without "
      f"({without / with_cache:.1f}x)")

# %% [markdown]
# ## 6. Scoring captions: BLEU or meaning?
#
# The captioners of the next notebooks must be scored. BLEU (Papineni et al. 2002), the classic captioning metric,
# counts the n-grams a caption shares with a reference. Take this two-object scene:

# %%
scene = Scene((Obj("circle", "red", "small", 8, 16, 4.2), Obj("square", "blue", "large", 23, 16, 6.4)),
              relation="to the left of")
plt.figure(figsize=(2.2, 2.4))
plt.imshow(render(scene, random.Random(0), 32), interpolation="nearest")
plt.title(scene.caption(), fontsize=7); plt.axis("off");

# %% [markdown]
# Four candidate captions: the reference itself, a paraphrase from the other object's side (same meaning, different
# words), one with a single wrong word (wrong meaning), and half a caption. BLEU-4 against the one reference, BLEU-4
# against both wordings the world allows, and whether the caption *means* what the scene shows
# (`meaning_matches`, which compares `caption_meaning` keys):

# %%
# NBVAL_CHECK_OUTPUT
reference = scene.caption()
candidates = {"exact": reference,
              "paraphrase": scene.caption(flip=True),
              "one word wrong": reference.replace("blue", "green"),
              "half a caption": "a small red circle"}
print(f"reference: {reference!r}\n")
print(f"{'candidate':<16} {'BLEU-4 (1 ref)':>14} {'BLEU-4 (2 refs)':>15} {'meaning':>8}   caption")
for name, c in candidates.items():
    one_ref = bleu([c], [[reference]])
    two_refs = bleu([c], [[reference, scene.caption(flip=True)]])
    right = meaning_matches([c], [scene])[0]
    print(f"{name:<16} {one_ref:>14.3f} {two_refs:>15.3f} {str(bool(right)):>8}   {c!r}")

# %% [markdown]
# BLEU rewards the caption with the **wrong** colour (0.83) far above the correct paraphrase (0.49): one swapped word
# breaks only the n-grams that contain it, while the paraphrase shares few 3- and 4-grams with the reference. Half a
# caption has perfect n-gram precision and is held down only by BLEU's brevity penalty. Listing every wording as a
# reference rescues the paraphrase here, but nothing rescues the wrong caption, and in this world a single word
# *is* the content: colour, shape, size or
# relation. So the course scores a caption by its meaning: `caption_meaning` parses it into a canonical key ("A to
# the right of B" becomes "B to the left of A"), and a caption is right when its key equals the scene's
# (`meaning_matches`, averaged as *semantic exact match*). A caption that is not a sentence of the world is wrong.
# BLEU-4 is still reported next to it, for comparison with the literature.

# %%
# NBVAL_CHECK_OUTPUT
print(caption_meaning("a large blue square to the right of a small red circle"))
print(caption_meaning("a small red circle to the left of a large blue square"))

# %% [markdown]
# ## Summary
#
# - A causal LM is a transformer with a lower-triangular mask: position $t$ sees tokens $0..t$ only, so one forward
#   pass trains all $T-1$ next-token predictions at once, with logits and targets shifted by one and `<pad>` dropped.
# - Trained for 360 steps (46k captions) on captions alone, the toy LM reaches a validation loss close to the floor
#   set by the world's real choices (which colour, which shape: about 0.97 nats per token), and nearly all of its
#   samples at $\tau \le 1$ are sentences of the world; high temperatures buy variety at the price of grammar, and
#   top-k takes most of that price back.
# - A KV cache generates exactly the same tokens as re-running the sequence, with one query per layer per step.
# - BLEU rewards shared words, not meaning: a caption with one wrong word outscores a correct paraphrase. The course
#   scores captions by semantic exact match.
#
# **Next:** `05_clipcap` puts an image in front of this LM. **Exercises:** `lessons/05_causal_lm.md`; grade yourself
# with `python -m minivlm.check next_token`.
