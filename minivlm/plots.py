"""Figures a learner would rather look at than read: samples, curves, similarity matrices, confusions."""
from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")  # headless outside notebooks (the CLI, CI)
import matplotlib.pyplot as plt
import numpy as np


def image_grid(images: np.ndarray, titles: list[str] | None = None, cols: int = 6, scale: float = 1.6):
    """uint8 (N, S, S, 3) images in a grid, each under its (wrapped) title."""
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * scale, rows * scale * 1.25), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            if titles:
                ax.set_title(_wrap(titles[i]), fontsize=7)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 22) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def training_curves(history, metrics=("zero_shot_acc", "colour_acc", "shape_acc"), title: str = "toy CLIP"):
    """Loss per step and the evaluated metrics, both against optimiser steps (not seconds: a step is the same work
    on every machine, and the pauses for evaluation do not show)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    a.plot([r["step"] for r in history.steps], [r["loss"] for r in history.steps], lw=0.8)
    a.set(xlabel="optimiser step", ylabel="loss (nats)", title=f"{title}: training loss", yscale="log")
    for name in metrics:
        rows = [e for e in history.evals if name in e]
        b.plot([e["step"] for e in rows], [e[name] for e in rows], marker=".", label=name)
    b.set(xlabel="optimiser step", ylabel="accuracy", title=f"{title}: evaluation", ylim=(0, 1.02))
    b.grid(alpha=0.3)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def similarity_matrix(sim: np.ndarray, row_labels: list[str], col_labels: list[str], title: str,
                      row_images: np.ndarray | None = None):
    """A (rows × cols) matrix of cosine similarities with its labels; the diagonal holds the true pairs. With
    `row_images` ((rows, S, S, 3) uint8) each row's picture is drawn at its left, beside its label."""
    fig, ax = plt.subplots(figsize=(0.45 * len(col_labels) + 3 + (1 if row_images is not None else 0),
                                    0.35 * len(row_labels) + 2 + (0.25 * len(row_labels) if row_images is not None
                                                                   else 0)))
    im = ax.imshow(sim, cmap="viridis", vmin=-1, vmax=1)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    if row_images is not None:
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage
        ax.tick_params(axis="y", pad=34)  # room for the pictures between the labels and the matrix
        for i, picture in enumerate(row_images):
            box = OffsetImage(picture, zoom=0.75)
            ax.add_artist(AnnotationBbox(box, (-0.5, i), xybox=(-16, 0), xycoords="data", boxcoords="offset points",
                                         frameon=False, annotation_clip=False))
    ax.set(title=title, xlabel="caption", ylabel="image")
    fig.colorbar(im, ax=ax, label="cosine similarity")
    fig.tight_layout()
    return fig


def confusion(true: list[str], pred: list[str], labels: list[str], title: str):
    """Row-normalised confusion matrix: row = true label, column = predicted label."""
    idx = {l: i for i, l in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)))
    for t, p in zip(true, pred):
        m[idx[t], idx[p]] += 1
    m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.5 * len(labels) + 2, 0.5 * len(labels) + 1.5))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    for i, j in zip(*np.nonzero(m >= 0.005)):
        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if m[i, j] > 0.5 else "k")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return fig


def grouped_bars(values: dict[str, dict[str, float]], title: str, xlabel: str, ylabel: str = "exact match",
                 ylim: tuple[float, float] = (0, 1.05)):
    """One group of bars per setting (outer keys), one bar per metric (inner keys), each bar labelled."""
    settings = list(values)
    metrics = list(values[settings[0]])
    x, width = np.arange(len(settings)), 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(1.5 * len(settings) + 3, 3.8))
    for i, name in enumerate(metrics):
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, [values[s][name] for s in settings], width,
                      label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, settings, fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, ylim=ylim)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gate_curves(history, title: str = "toy Flamingo", ax=None):
    """tanh(alpha) of each GATED XATTN-DENSE layer's two gates over training, from the evaluations' "gates"; drawn
    on `ax` when given, else on a new figure. Returns the figure."""
    rows = [e for e in history.evals if "gates" in e]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    t = [e["step"] for e in rows]
    for i in range(len(rows[0]["gates"]) if rows else 0):
        for branch, style in (("xattn", "-"), ("dense", "--")):
            ax.plot(t, [e["gates"][i][branch] for e in rows], style, marker=".", color=f"C{i}",
                    label=f"layer {i} {branch}")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set(xlabel="optimiser step", ylabel="tanh(alpha)", title=f"{title}: gates", ylim=(-1.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.figure.tight_layout()
    return ax.figure
