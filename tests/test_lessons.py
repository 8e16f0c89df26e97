"""The lessons' autograders (minivlm.check): reference solutions pass; the exercise stubs and known wrong answers
fail, with a message that says what is wrong."""
from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from minivlm.check import EXERCISES, refusal
from minivlm.check.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "minivlm" / "check" / "solutions"

# Answers a student might write: each template with the right pieces passes, with one wrong piece fails.
ATTENTION = '''import math
import torch

def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1){scale}
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return {softmax} @ v

def causal_mask(t):
    return torch.ones(t, t{dtype}).tril()
'''
RIGHT_ATTENTION = dict(scale=" / math.sqrt(q.shape[-1])", softmax="scores.softmax(dim=-1)", dtype=", dtype=torch.bool")
INFO_NCE = '''import torch

def info_nce(image_emb, text_emb, logit_scale, groups=None):
    i = image_emb / image_emb.norm(dim=1, keepdim=True)
    t = text_emb / text_emb.norm(dim=1, keepdim=True)
    logits = {scale} * i @ t.T
    ids = torch.arange(len(logits)) if {no_groups} else groups
    same = (ids[:, None] == ids[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    image_to_text = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    text_to_image = -(target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return {loss}
'''
RIGHT_INFO_NCE = dict(scale="logit_scale", no_groups="groups is None", loss="(image_to_text + text_to_image) / 2")
PATCH_EMBED = '''def patchify(images, patch):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch).transpose({axes})
    return x.reshape(B, (H // patch) * (W // patch), C * patch * patch){end}

def embed_patches(images, weight, bias):
    return patchify(images, weight.shape[-1]) @ weight.reshape(len(weight), -1).T + bias
'''
RIGHT_PATCH_EMBED = dict(axes="0, 2, 4, 1, 3, 5", end="")
RETRIEVAL = '''import numpy as np

def ranks(sim, query_keys, item_keys):
    order = sim.argsort(dim=1, descending=True).numpy()
    right = np.array(item_keys, dtype=object)[order] == np.array(query_keys, dtype=object)[:, None]
    return np.where(right.any(axis=1), right.argmax(axis=1){offset}, {no_match})
'''
RIGHT_RETRIEVAL = dict(offset="", no_match="sim.shape[1]")
NEXT_TOKEN = '''import torch.nn.functional as F

def next_token_loss(logits, tokens, pad_id, loss_mask=None):
    pred, target = {shift}
    keep = {keep}
    if loss_mask is not None:
        keep = keep & {mask}
    return F.cross_entropy(pred[keep], target[keep])
'''
RIGHT_NEXT_TOKEN = dict(shift="logits[:, :-1], tokens[:, 1:]", keep="target != pad_id", mask="loss_mask[:, 1:]")
SPLICE = '''import torch

def splice(embeds, visual, tokens, image_id):
    rows = []
    for e, v, t in zip(embeds, visual, tokens):
        p = int(({row} == image_id).nonzero()[0])
        rows.append(torch.cat([e[:{before}], v, e[p + 1:]]))
    return torch.stack(rows)

def expand(x, tokens, image_id, n, fill):
    rows = []
    for r, t in zip(x, tokens):
        p = int((t == image_id).nonzero()[0])
        rows.append(torch.cat([r[:p], {visual}, r[p + 1:]]))
    return torch.stack(rows)

def sincos_2d(grid, dim, base=10.0):
    w = base ** (-torch.arange(dim // 4) / {freqs})
    n = torch.arange(grid * grid)
    x, y = ({col})[:, None] * w, ({row_of})[:, None] * w
    return torch.cat([torch.sin(x), torch.cos(x), torch.sin(y), torch.cos(y)], dim=1)
'''
RIGHT_SPLICE = dict(row="t", before="p", visual="torch.full((n,), fill, dtype=x.dtype)", freqs="(dim // 4)",
                    col="n % grid", row_of="n // grid")
FLAMINGO = '''import math
import torch

def resampler_attention(x_f, latents, w_q, w_k, w_v, w_o, heads):
    kv = {kv}
    B, R, D = latents.shape
    split = lambda x: x.reshape(B, -1, heads, D // heads).transpose(1, 2)
    q, k, v = split(latents @ w_q), split(kv @ w_k), split(kv @ w_v)
    weights = (q @ k.transpose(-1, -2) / math.sqrt({width})).softmax(dim=-1)
    return (weights @ v).transpose(1, 2).reshape(B, R, D) @ w_o

def gated_residual(y, update, alpha):
    return y + {gate} * update

def media_mask(tokens, image_id, n_latents, n_images):
    seen = {seen}
    image_of_key = torch.arange(n_images * n_latents) // n_latents
    return (seen[:, :, None] - 1 {op} image_of_key){heads}

def gated_cross_attention(y, x, mask, alpha):
    sees = mask[:, 0].any(dim=-1, keepdim=True)
    scores = (y @ x.transpose(1, 2) / math.sqrt(y.shape[-1])).masked_fill(~({keys}), {fill})
    update = scores.softmax(dim=-1) @ x
    return gated_residual(y, {zero}, alpha)
'''
RIGHT_FLAMINGO = dict(kv="torch.cat([x_f, latents], dim=1)", width="D // heads", gate="torch.tanh(alpha)",
                      seen="(tokens == image_id).long().cumsum(dim=1)", op="==", heads="[:, None]",
                      keys="mask[:, 0] | ~sees", fill='float("-inf")', zero="update.masked_fill(~sees, 0.0)")
TEMPLATES = {"attention": (ATTENTION, RIGHT_ATTENTION), "info_nce": (INFO_NCE, RIGHT_INFO_NCE),
             "patch_embed": (PATCH_EMBED, RIGHT_PATCH_EMBED), "retrieval": (RETRIEVAL, RIGHT_RETRIEVAL),
             "next_token": (NEXT_TOKEN, RIGHT_NEXT_TOKEN), "splice": (SPLICE, RIGHT_SPLICE),
             "flamingo": (FLAMINGO, RIGHT_FLAMINGO)}
VQ = '''import torch
import torch.nn.functional as F

def quantize(z, codebook):
    ids = ((z[:, :, None, :] - codebook) ** 2).sum(dim=-1).{arg}(dim=-1)
    e = codebook[ids]
    return {z_q}, ids, F.mse_loss(e, z.detach()), F.mse_loss(z, {commit})

def perplexity(ids, codes):
    p = torch.bincount(ids.flatten(), minlength=codes) / ids.numel()
    p = p[p > 0]
    return {perp}
'''
RIGHT_VQ = dict(arg="argmin", z_q="z + (e - z).detach()", commit="e.detach()", perp="torch.exp(-(p * p.log()).sum())")
CM3_TRANSFORM = '''def causal_mask_transform(tokens, spans, sentinel_ids):
    out, tail, last = [], [], 0
    for s, (a, b) in zip(sentinel_ids, {order}):
        out += tokens[last:a] + [s]
        tail += {mark} + tokens[a:b]
        last = b
    return out + tokens[last:] + tail

def undo_transform(transformed, sentinel_ids):
    used = [s for s in sentinel_ids if s in transformed]
    if not used:
        return list(transformed)
    first = [transformed.index(s) for s in used]
    second = [{second} for s in used]
    bounds = second + [len(transformed)]
    doc, last = [], 0
    for hole, a, b in zip(first, bounds, bounds[1:]):
        doc += transformed[last:hole] + transformed[a + 1:b]
        last = hole + 1
    return doc + transformed[last:second[0]]
'''
RIGHT_CM3_TRANSFORM = dict(order="sorted(spans)", mark="[s]",
                           second="len(transformed) - 1 - transformed[::-1].index(s)")
TEMPLATES["vq"] = (VQ, RIGHT_VQ)
TEMPLATES["cm3_transform"] = (CM3_TRANSFORM, RIGHT_CM3_TRANSFORM)


def answer(name, **wrong) -> str:
    template, right = TEMPLATES[name]
    return template.format(**{**right, **wrong})


def grade(capsys, name, path=None):
    """Run the grader in this process; return its exit status and its lines, one per case."""
    status = main([name] + ([] if path is None else ["--file", str(path)]))
    return status, [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]


def case_line(cases, prefix):
    (line,) = [c for c in cases if c.split("  ", 1)[1].startswith(prefix)]
    return line


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_solution_passes(capsys, name):
    status, cases = grade(capsys, name, SOLUTIONS / f"{name}.py")
    assert status == 0, "\n".join(cases)
    assert len(cases) >= 5 and all(c.startswith("PASS") for c in cases)


@pytest.mark.parametrize("name", EXERCISES)
def test_stub_fails_as_not_implemented(capsys, monkeypatch, name):
    monkeypatch.chdir(ROOT)  # the default file lessons/exercises/NAME.py is found from the repository root
    status, cases = grade(capsys, name)
    assert status == 1
    assert cases and all(c.startswith("FAIL") and c.endswith(": not implemented yet") for c in cases), cases


@pytest.mark.parametrize("name", EXERCISES)
def test_answer_written_from_scratch_passes(capsys, tmp_path, name):
    (tmp_path / f"{name}.py").write_text(answer(name))
    status, cases = grade(capsys, name, tmp_path / f"{name}.py")
    assert status == 0, "\n".join(cases)


@pytest.mark.parametrize("name, wrong, failing, message, passing", [
    ("attention", dict(scale=""), "attention: self-attention", "output: values differ", "causal_mask: T=6"),
    ("attention", dict(softmax="scores.exp() / scores.exp().sum(dim=-1, keepdim=True)"), "attention: large scores",
     "got nan (an overflow", "attention: causal and padding masks"),
    ("attention", dict(dtype=""), "causal_mask: T=6", "expected dtype bool, got float32", "attention: causal mask"),
    ("info_nce", dict(loss="image_to_text"), "B=4, E=8", "loss: wrong value: expected", None),
    ("info_nce", dict(no_groups="True"), "groups [0, 1, 2, 1]", "loss: wrong value", "groups all distinct"),
    ("info_nce", dict(scale="logit_scale.item()"), "B=4, E=8", "no gradient reached logit_scale", None),
    ("patch_embed", dict(axes="0, 2, 4, 3, 5, 1"), "patchify: B=2", "the right numbers in the wrong places", None),
    ("patch_embed", dict(end=".transpose(0, 2, 1)"), "patchify: B=2",
     "wrong shape: expected (2, 16, 192), got (2, 192, 16)", None),
    ("retrieval", dict(offset=" + 1"), "one right item", "ranks: values differ in 6 of 6 entries", None),
    ("retrieval", dict(no_match="0"), "a query with no right item", "expected 4, got 0", "one right item"),
    ("next_token", dict(shift="logits, tokens"), "B=3, T=6", "loss: wrong value", None),
    ("next_token", dict(keep="target >= 0"), "padded rows", "loss: wrong value", "B=3, T=6"),
    ("next_token", dict(mask="True"), "a loss_mask that keeps only the answer", "loss: wrong value", "padded rows"),
    ("next_token", dict(mask="loss_mask[:, :-1]"), "a loss_mask that keeps one target", "loss: wrong value",
     "pad_id = 5"),
    ("splice", dict(before="p + 1"), "splice: B=2", "wrong shape: expected (2, 9, 8), got (2, 10, 8)",
     "expand: the targets"),
    ("splice", dict(row="tokens[0]"), "splice: B=2", "splice: values differ", "splice: batch of 1"),
    ("splice", dict(visual="r[p:p + 1]"), "expand: a loss mask, False",
     "wrong shape: expected (3, 7), got (3, 5)", "splice: B=2"),
    ("splice", dict(visual="r[p:p + 1].expand(n)"), "expand: the targets", "expected 0, got 4", "splice: N=1"),
    ("splice", dict(col="n // grid", row_of="n % grid"), "sincos_2d: the course's 4x4 grid",
     "sincos_2d: values differ", "expand: a loss mask with N=1"),
    ("splice", dict(freqs="dim"), "sincos_2d: a 3x3 grid", "sincos_2d: values differ", "splice: B=2"),
    ("flamingo", dict(kv="x_f"), "resampler_attention: B=2", "resampler_attention: values differ",
     "gated_residual: alpha = 0 gives"),
    ("flamingo", dict(width="D"), "resampler_attention: 4 heads", "resampler_attention: values differ",
     "resampler_attention: B=2, N=6 features, R=3 latents, D=8, one head"),
    ("flamingo", dict(gate="alpha"), "gated_residual: alpha = 0.8", "gated_residual: values differ",
     "gated_residual: alpha = 0 gives"),
    ("flamingo", dict(gate="torch.sigmoid(alpha)"), "gated_residual: alpha = 0 gives",
     "gated_residual: values differ", None),
    ("flamingo", dict(seen="(tokens == image_id).long().cumsum(dim=1) - (tokens == image_id).long()"),
     "media_mask: T=1", "media_mask: values differ in 1 of 1 entries", "media_mask: no image"),
    ("flamingo", dict(op=">="), "media_mask: two images", "media_mask: values differ", "media_mask: T=1"),
    ("flamingo", dict(heads=""), "media_mask: two images", "wrong shape: expected (1, 1, 7, 4), got (1, 7, 4)",
     "gated_residual: alpha = 0.8"),
    ("flamingo", dict(heads="[:, None].long()"), "media_mask: T=1", "expected dtype bool, got int64",
     "resampler_attention: batch of 1"),
    # the subtle part of Flamingo's mask: a token that sees no image gets y exactly, and sends x no gradient
    ("flamingo", dict(keys="mask[:, 0]", zero="update"), "gated_cross_attention: a token that sees no image",
     "got nan (an overflow, or 0/0?)", "gated_residual: alpha = 0 gives"),
    ("flamingo", dict(keys="mask[:, 0]", fill="-1e9", zero="update"),
     "gated_cross_attention: a token that sees no image", "output of the tokens that see no image (y exactly): "
     "values differ", "media_mask: two images"),
    ("flamingo", dict(zero="update.masked_fill(~sees, 1e-7)"), "gated_cross_attention: a token that sees no image",
     "close, but not exactly equal", "gated_cross_attention: 3 rows"),
    ("flamingo", dict(zero="update.masked_fill(~sees, 1e-30)"), "gated_cross_attention: with y = 0",
     "(exactly 0): values differ", "gated_cross_attention: a token that sees no image"),
    ("flamingo", dict(zero="update * sees + 1e-12 * ~sees"), "gated_cross_attention: with y = 0",
     "expected 0, got 6.04368e-13", "gated_cross_attention: no gradient reaches the images"),
    ("flamingo", dict(keys="mask[:, 0]", zero="torch.where(sees, update, 0.0)"),
     "gated_cross_attention: no gradient reaches the images",
     "gradient reaching x from the tokens that see no image (exactly 0): values differ",
     "gated_cross_attention: a token that sees no image"),
    ("flamingo", dict(seen="(tokens == image_id).long().cumsum(dim=1).clamp(min=1)"),
     "media_mask then gated_cross_attention", "output of the two tokens before the first <image> (y exactly)",
     "gated_cross_attention: no gradient reaches the images"),
    ("vq", dict(arg="argmax"), "quantize: B=2", "ids: values differ", "perplexity: one code"),
    ("vq", dict(z_q="e"), "quantize: where the gradients",
     "gradient of z_q reaching z (straight-through: z gets z_q's gradient unchanged): values differ", "quantize: B=2"),
    ("vq", dict(z_q="e + (z - z.detach())"), "quantize: where the gradients",
     "gradient of z_q reaching the codebook (none", "quantize: an 8x8 grid"),
    ("vq", dict(commit="e"), "quantize: where the gradients", "gradient of commitment_loss reaching the codebook",
     "quantize: an 8x8 grid"),
    ("vq", dict(perp="-(p * p.log()).sum()"), "perplexity: every one", "perplexity: wrong value: expected 8, got 2.07",
     "quantize: B=2"),
    ("cm3_transform", dict(order="spans"), "causal_mask_transform: spans given out of order",
     "spans=[(7, 9), (0, 2), (4, 5)]): wrong shape: expected (16,), got (25,)",
     "causal_mask_transform: the lesson's example"),
    ("cm3_transform", dict(mark="[]"), "causal_mask_transform: the lesson's example",
     "wrong shape: expected (14,), got (12,)", "causal_mask_transform: no span"),
    ("cm3_transform", dict(second="transformed.index(s)"), "undo_transform: the lesson's example", "undo_transform(",
     "undo_transform: no sentinel"),
])
def test_wrong_answer_fails_with_a_useful_message(capsys, tmp_path, name, wrong, failing, message, passing):
    (tmp_path / f"{name}.py").write_text(answer(name, **wrong))
    status, cases = grade(capsys, name, tmp_path / f"{name}.py")
    assert status == 1
    line = case_line(cases, failing)
    assert line.startswith("FAIL") and message in line, line
    if passing:
        assert case_line(cases, passing).startswith("PASS"), cases


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_solution_is_written_out(name):
    grader = __import__(f"minivlm.check.{name}", fromlist=["FORBIDDEN"])
    assert refusal(name, (SOLUTIONS / f"{name}.py").read_text(), grader.FORBIDDEN) is None
    assert "minivlm" not in (SOLUTIONS / f"{name}.py").read_text().replace("lessons/exercises", "")


SDPA = "attention: your solution calls scaled_dot_product_attention, the op this exercise asks you to write"


@pytest.mark.parametrize("name, source, message", [
    ("attention", "from minivlm.concepts.attention import attention, causal_mask\n",
     "attention: your solution imports minivlm.concepts.attention; the package holds the answers, so an exercise uses "
     "nothing from minivlm: write it yourself"),
    ("attention", "from minivlm import concepts\nattention = concepts.attention.attention\n",
     "your solution imports minivlm.concepts; the package holds the answers"),
    ("attention", "import minivlm.check.solutions.attention as s\nattention = s.attention\n",
     "your solution imports minivlm.check.solutions.attention"),
    ("retrieval", "from minivlm.evaluate import ranks\n", "retrieval: your solution imports minivlm.evaluate"),
    # the answers reach other modules too: a recipe imports the concept, and an alias hides the package's name
    ("cm3_transform", "from minivlm.recipes.cm3 import causal_mask_transform\n",
     "cm3_transform: your solution imports minivlm.recipes.cm3"),
    ("attention", "import minivlm as m\nattention = m.concepts.attention.attention\n", "your solution imports minivlm;"),
    ("splice", "splice = __import__('minivlm').concepts.projector.splice\n", "your solution imports minivlm;"),
    ("attention", answer("attention").replace("return {softmax} @ v".format(softmax="scores.softmax(dim=-1)"),
                                             "return torch.nn.functional.scaled_dot_product_attention(q, k, v, mask)"),
     SDPA),
    ("attention", "import torch.nn.functional as F\n\ndef attention(q, k, v, mask=None):\n"
                  "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)\n", SDPA),
    ("attention", "from torch.nn.functional import scaled_dot_product_attention as sdpa\n", SDPA),
    ("flamingo", answer("flamingo") + "\nsdpa = getattr(torch.nn.functional, 'scaled_dot_product_attention')\n",
     "flamingo: your solution calls scaled_dot_product_attention"),
    ("attention", "import torch\n\nmha = torch.nn.MultiheadAttention(8, 2, batch_first=True)\n",
     "attention: your solution calls MultiheadAttention, the op this exercise asks you to write"),
    ("vq", "import importlib\n\nquantize = importlib.import_module('minivlm.concepts.vq').quantize\n",
     "vq: your solution imports minivlm.concepts.vq"),
    ("patch_embed", "import torch\n\ndef patchify(images, patch):\n"
                    "    return torch.from_numpy(images).unfold(2, patch, patch)\n",
     "patch_embed: your solution calls unfold, the op this exercise asks you to write"),
])
def test_solution_calling_the_answer_is_refused(capsys, tmp_path, name, source, message):
    (tmp_path / f"{name}.py").write_text(source)
    status, cases = grade(capsys, name, tmp_path / f"{name}.py")
    assert status == 1 and len(cases) == 1, cases
    assert cases[0].startswith("FAIL") and message in cases[0], cases


def test_refusal_reads_code_not_prose():
    stub = (ROOT / "lessons" / "exercises" / "attention.py").read_text()  # its docstring names the fused op
    assert "scaled_dot_product_attention" in stub
    assert refusal("attention", stub, ("scaled_dot_product_attention",)) is None
    assert refusal("attention", '"""See minivlm.concepts.attention for the package\'s version."""\n', ()) is None


def test_exception_is_reported_with_its_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --file, as a student would type it
    Path("mine.py").write_text("def ranks(sim, query_keys, item_keys):\n"
                               "    raise ValueError('sim: I expected a NumPy array')\n")
    status, cases = grade(capsys, "retrieval", "mine.py")
    assert status == 1
    assert all(c.endswith("raised ValueError: sim: I expected a NumPy array (line 2 of mine.py)") for c in cases), cases


def test_unloadable_file_fails_in_one_line(capsys, tmp_path):
    (tmp_path / "syntax.py").write_text("def attention(q, k, v, mask=None)\n")
    (tmp_path / "partial.py").write_text(answer("attention").replace("def causal_mask", "def other_name"))
    status, cases = grade(capsys, "attention", tmp_path / "syntax.py")
    assert status == 1 and len(cases) == 1 and f"could not import {tmp_path / 'syntax.py'}: SyntaxError" in cases[0]
    status, cases = grade(capsys, "attention", tmp_path / "partial.py")
    assert status == 1 and len(cases) == 1 and "defines no function causal_mask" in cases[0]


@pytest.mark.parametrize("argv, message", [
    (["nope"], "NAME: expected one of patch_embed, attention, info_nce, retrieval, next_token, splice, flamingo, "
               "vq, cm3_transform, "
               "got 'nope'"),
    (["attention", "--file", "no/such/file.py"], "no file 'no/such/file.py'"),
])
def test_bad_name_or_path_exits_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy: this file imported it already
def test_list_through_python_dash_m(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["minivlm.check", "--list"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("minivlm.check", run_name="__main__")  # what `python -m minivlm.check --list` runs
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert [line.split()[0] for line in out.splitlines()] == list(EXERCISES)
    assert "lessons/02_attention.md" in out


LESSONS = ROOT / "lessons"


def test_lessons_readme_lists_every_exercise_with_its_command():
    readme = (LESSONS / "README.md").read_text()
    for name in EXERCISES:
        grader = __import__(f"minivlm.check.{name}", fromlist=["LESSON"])
        assert f"python -m minivlm.check {name}" in readme, name
        assert f"`exercises/{name}.py`" in readme, name
        assert f"python -m minivlm.check {name}`" in (ROOT / grader.LESSON).read_text(), grader.LESSON


def test_lessons_readme_says_what_each_grader_refuses():
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2] for line in (LESSONS / "README.md").read_text()
            .splitlines() if line.startswith("| `")}  # the refusal table: | `name` | refused | allowed |
    for name in EXERCISES:
        forbidden = __import__(f"minivlm.check.{name}", fromlist=["FORBIDDEN"]).FORBIDDEN
        assert all(f"`{op}`" in rows[name] for op in forbidden), (name, forbidden, rows[name])
        assert bool(forbidden) != rows[name].strip().startswith("nothing"), (name, rows[name])


def test_lessons_name_notebooks_that_exist():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("0*.ipynb")}  # 00_world ... 08_discrete_tokens
    for page in sorted(LESSONS.glob("*.md")):
        text = page.read_text()
        named = set(re.findall(r"\b(0\d_[a-z0-9_]+?)(?:\.ipynb|`)", text))
        assert named <= notebooks, (page.name, named - notebooks)
        for number in re.findall(r"[Nn]otebooks? (0\d)\b", text):  # "notebook 06"
            assert any(n.startswith(number + "_") for n in notebooks), (page.name, number)
