"""Solution of lessons/exercises/attention.py: the package's own functions."""
from minivlm.concepts.attention import attention, causal_mask  # noqa: F401
