"""Solution of lessons/exercises/causal_mask.py: the package's own functions."""
from minivlm.concepts.causal_masking import causal_mask_transform, undo_transform  # noqa: F401
