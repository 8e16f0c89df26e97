"""Solution of lessons/exercises/cm3_transform.py, written out in plain Python."""


def causal_mask_transform(tokens, spans, sentinel_ids):
    document, moved, last = [], [], 0
    for sentinel, (start, end) in zip(sentinel_ids, sorted(spans)):  # numbered in document order
        document += tokens[last:start] + [sentinel]  # the span's place keeps its sentinel
        moved += [sentinel] + tokens[start:end]  # and the span goes to the end, after the sentinel again
        last = end
    return document + tokens[last:] + moved


def undo_transform(transformed, sentinel_ids):
    used = [s for s in sentinel_ids if s in transformed]  # sentinels 0..n-1
    if not used:
        return list(transformed)
    holes = [transformed.index(s) for s in used]  # each sentinel's first place, in the document
    tails = [len(transformed) - 1 - transformed[::-1].index(s) for s in used]  # its second, in the tail
    bounds = tails + [len(transformed)]  # span i lies between sentinel i and sentinel i + 1 in the tail
    document, last = [], 0
    for hole, start, end in zip(holes, bounds, bounds[1:]):
        document += transformed[last:hole] + transformed[start + 1:end]
        last = hole + 1
    return document + transformed[last:tails[0]]
