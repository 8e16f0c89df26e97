"""Solution of lessons/exercises/splice.py: the package's own functions."""
from minivlm.concepts.projector import expand, splice  # noqa: F401
