"""Solution of lessons/exercises/splice.py: the package's own functions."""
from minivlm.concepts.positions import sincos_2d  # noqa: F401
from minivlm.concepts.projector import expand, splice  # noqa: F401
