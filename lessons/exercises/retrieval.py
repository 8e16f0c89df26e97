"""Exercise 4, retrieval ranks for recall@K (lessons/04_toy_clip.md). Check with `python -m minivlm.check retrieval`.

Fill in the function with torch and/or NumPy. Then recall@K = mean(ranks < K), median rank = median(ranks + 1).
"""
import numpy as np
import torch


def ranks(sim: torch.Tensor, query_keys: list, item_keys: list) -> np.ndarray:
    """sim (Q, N): score of item n for query q. A right answer is an item whose key equals the query's key.
    Returns (Q,) ints: for each query, the 0-based position of its best-scored right answer once the items are
    sorted by score, best first; N when no item is right."""
    raise NotImplementedError("ranks: sort the items of each query, find the first right one")
