"""Solution of lessons/exercises/next_token.py: the package's own function."""
from minivlm.concepts.next_token import next_token_loss  # noqa: F401
