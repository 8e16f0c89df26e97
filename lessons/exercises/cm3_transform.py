"""Exercise 8b, CM3's causally masked transform (lessons/08_discrete_tokens.md). Check with
`python -m minivlm.check cm3_transform`.

Plain Python lists of ints; no torch needed. Sentinel i is sentinel_ids[i] (<mask:i>). The spans are valid:
non-empty [start, end) pairs inside the document, not overlapping, at most len(sentinel_ids) of them, and no
sentinel id occurs in the document.
"""


def causal_mask_transform(tokens: list[int], spans: list[tuple[int, int]], sentinel_ids: list[int]) -> list[int]:
    """tokens (T,) -> (T + 2n,): number the n spans in document order (they may come in any order); replace span i
    by sentinel i where it stood, and append sentinel i followed by the span's tokens at the end, for i = 0..n-1.
    No span: the tokens unchanged."""
    raise NotImplementedError("causal_mask_transform: the document with sentinels, then each sentinel and its span")


def undo_transform(transformed: list[int], sentinel_ids: list[int]) -> list[int]:
    """The inverse: the original document, each span from the end put back in place of its first sentinel."""
    raise NotImplementedError("undo_transform: find each sentinel's two places; the tail holds the spans in order")
