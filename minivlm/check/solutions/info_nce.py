"""Solution of lessons/exercises/info_nce.py: the package's own function."""
from minivlm.concepts.info_nce import info_nce  # noqa: F401
