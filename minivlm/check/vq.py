"""Grader for lessons/exercises/vq.py (VQ-VAE, van den Oord et al. 2017, Sec. 3.1-3.2, eq. 3): `quantize` against
minivlm.concepts.vq.quantize (ids, values, both losses, and where each gradient goes: z_q's to z unchanged, the
codebook loss's to the codes only, the commitment loss's to z only) and `perplexity` against `codebook_usage`.
Every case is valid input."""
from __future__ import annotations

import torch

from minivlm.check import Wrong, compare
from minivlm.concepts.vq import codebook_usage, quantize

LESSON = "lessons/08_discrete_tokens.md"
FUNCTIONS = ("quantize", "perplexity")
FORBIDDEN = ()  # torch.cdist is allowed: the exercise is the argmin, the straight-through and the stop-gradients
OUTPUTS = ("z_q", "ids", "codebook_loss", "commitment_loss")


def _inputs(seed, B, N, D, K):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, D, generator=g), torch.randn(K, D, generator=g)  # (B, N, D), (K, D)


def _gradients(fn, z, codebook, output, seed):
    """The gradients of z and of the codebook from sum(weights * fn(z, codebook)[output]), zeros where none came."""
    z, codebook = z.clone().requires_grad_(), codebook.clone().requires_grad_()
    out = fn(z, codebook)[OUTPUTS.index(output)]
    if not out.requires_grad:
        raise Wrong(f"gradients: {output} is not connected to z or the codebook by autograd "
                    "(a .detach() on the wrong side, or a detour through NumPy?)")
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad((out * weights).sum(), (z, codebook), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip((z, codebook), grads)]


WHERE = {"z_q": ("z (straight-through: z gets z_q's gradient unchanged)", "the codebook (none: z_q's values are "
                 "the codes', its gradient is z's)"),
         "codebook_loss": ("z (none: sg(z) in the codebook loss)", "the codebook"),
         "commitment_loss": ("z", "the codebook (none: sg(e) in the commitment loss)")}


def _quantize(seed, B, N, D, K, grads=False):
    def check(student):
        z, codebook = _inputs(seed, B, N, D, K)
        expected, got = quantize(z, codebook), student.quantize(z, codebook)
        if not (isinstance(got, tuple) and len(got) == 4):
            raise Wrong(f"quantize: expected a tuple ({', '.join(OUTPUTS)}), got {type(got).__name__}"
                        + (f" of {len(got)}" if isinstance(got, (tuple, list)) else ""))
        if isinstance(got[1], torch.Tensor) and got[1].dtype != torch.int64:
            raise Wrong(f"ids: expected dtype torch.int64, got {got[1].dtype}")
        for i in (1, 0, 2, 3):  # the ids first: a wrong id makes z_q and the losses wrong too
            compare(expected[i], got[i], what=OUTPUTS[i])
        if grads:
            for output, (at_z, at_codebook) in WHERE.items():
                reference = _gradients(quantize, z, codebook, output, seed)
                mine = _gradients(student.quantize, z, codebook, output, seed)
                compare(reference[0], mine[0], what=f"gradient of {output} reaching {at_z}")
                compare(reference[1], mine[1], what=f"gradient of {output} reaching {at_codebook}")
    return check


def _perplexity(ids, codes):
    def check(student):
        ids_ = torch.tensor(ids)
        compare(codebook_usage(ids_, codes)["perplexity"], student.perplexity(ids_, codes), what="perplexity")
    return check


CASES = [
    ("quantize: B=2, N=6, D=4, K=8", _quantize(0, 2, 6, 4, 8)),
    ("quantize: where the gradients of z_q and of both losses go, B=2, N=5, D=3, K=6",
     _quantize(1, 2, 5, 3, 6, grads=True)),
    ("quantize: an 8x8 grid, D=16, K=512 codes", _quantize(2, 3, 64, 16, 512)),
    ("quantize: batch of 1, one vector, one code (K=1)", _quantize(3, 1, 1, 4, 1, grads=True)),
    ("perplexity: every one of K=8 codes used 3 times (K)", _perplexity(list(range(8)) * 3, 8)),
    ("perplexity: one code does it all (1)", _perplexity([[3, 3, 3], [3, 3, 3]], 8)),
    ("perplexity: a (2, 2, 3) grid of ids, 4 codes of 10 used, unevenly",
     _perplexity([[[0, 0, 0], [0, 5, 5]], [[9, 9, 2], [0, 0, 5]]], 10)),
]
