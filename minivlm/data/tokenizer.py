"""A word-level tokenizer for the shapes world, with special tokens reserved for later models."""
from __future__ import annotations

import re

import torch

from minivlm.data.world import WORDS

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<bos>", "<eos>", "<unk>", "<image>"
N_SENTINELS = 8  # CM3-style mask sentinels <mask:0> ... <mask:7>
SPECIALS = (PAD, BOS, EOS, UNK, IMAGE) + tuple(f"<mask:{i}>" for i in range(N_SENTINELS))
_SPLIT = re.compile(r"<[^>\s]+>|[a-z]+|[?.,!]")


class Tokenizer:
    """Maps text to ids and back. Ids 0..len(SPECIALS)-1 are the special tokens; `pad_id` is 0.

    `encode` wraps a caption as <bos> words <eos> and pads to `max_len`; a word outside the vocabulary is an
    error unless the caller passes `unk=True`, which maps it to <unk>.
    """

    def __init__(self, words=WORDS, max_len: int = 16):
        self.vocab = list(SPECIALS) + sorted(set(words) - set(SPECIALS))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.index[t] for t in (PAD, BOS, EOS, UNK))
        self.image_id = self.index[IMAGE]

    def __len__(self) -> int:
        return len(self.vocab)

    def split(self, text: str) -> list[str]:
        return _SPLIT.findall(text.lower())

    def encode(self, text: str, unk: bool = False) -> list[int]:
        """Text -> [bos, ids..., eos] (unpadded)."""
        ids = [self.bos_id]
        for w in self.split(text):
            if w not in self.index and not unk:
                raise ValueError(f"text: unknown word {w!r} in {text!r}; known words are {self.vocab[len(SPECIALS):]}"
                                 " (pass unk=True to map unknown words to <unk>)")
            ids.append(self.index.get(w, self.unk_id))
        return ids + [self.eos_id]

    def encode_batch(self, texts: list[str], unk: bool = False) -> torch.Tensor:
        """Texts -> (B, max_len) int64, padded with pad_id. Raises on an empty batch or a text that is too long."""
        if len(texts) == 0:
            raise ValueError("texts: expected at least one text, got an empty batch")
        out = torch.full((len(texts), self.max_len), self.pad_id, dtype=torch.long)  # (B, L)
        for i, text in enumerate(texts):
            ids = self.encode(text, unk=unk)
            if len(ids) > self.max_len:
                raise ValueError(f"texts[{i}]: {len(ids)} tokens with <bos>/<eos>, more than max_len={self.max_len}: "
                                 f"{text!r}")
            out[i, :len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids) -> str:
        """Ids -> text, dropping <bos>, <pad> and everything from <eos> on."""
        words = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                words.append(self.vocab[i])
        return " ".join(words)
