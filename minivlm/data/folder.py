"""A folder of image + caption pairs: how data_samples/ is stored, and how a user brings their own images.

Format: PNG files beside a `captions.tsv` whose lines are `file.png<TAB>caption`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from minivlm.data.datasets import ShapesData, meaning_ids
from minivlm.data.tokenizer import Tokenizer


def load_image(path, res: int = 32, resize: bool = False) -> np.ndarray:
    """Read one image as (res, res, 3) uint8 RGB. Another size is an error unless resize=True."""
    try:
        img = Image.open(path).convert("RGB")
    except (OSError, ValueError) as e:
        raise ValueError(f"image: cannot read {str(path)!r} as an image ({e})") from None
    if img.size != (res, res):
        if not resize:
            raise ValueError(f"image: {str(path)!r} is {img.size[0]}x{img.size[1]}, expected {res}x{res} "
                             "(pass resize=True, or --resize on the command line, to resize it)")
        img = img.resize((res, res), Image.BILINEAR)
    return np.asarray(img)  # (res, res, 3)


def save_folder(data: ShapesData, path) -> None:
    """Write each image as NNN.png and the captions as captions.tsv."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (img, cap) in enumerate(zip(data.images, data.captions)):
        Image.fromarray(img).save(path / f"{i:03d}.png")
        lines.append(f"{i:03d}.png\t{cap}\n")
    (path / "captions.tsv").write_text("".join(lines))


def load_folder(path, tokenizer: Tokenizer, res: int = 32, resize: bool = False) -> ShapesData:
    """Read a folder written by `save_folder` (or by hand in the same format) into a ShapesData."""
    path = Path(path)
    index = path / "captions.tsv"
    if not index.is_file():
        raise ValueError(f"path: expected a folder with captions.tsv, found none in {str(path)!r}")
    files, captions = [], []
    for n, line in enumerate(index.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"captions.tsv line {n}: expected 'file.png<TAB>caption', got {line!r}")
        name, caption = line.split("\t", 1)
        files.append(path / name)
        captions.append(caption.strip())
    if not files:
        raise ValueError(f"path: {str(index)!r} lists no images")
    images = np.stack([load_image(f, res, resize) for f in files])  # (N, res, res, 3)
    return ShapesData(images, captions, tokenizer.encode_batch(captions), meaning_ids(captions))
