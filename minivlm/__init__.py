"""minivlm: vision-language models built from scratch on a procedural world of coloured shapes."""
import os

__version__ = "0.1.0"


def fast_mode() -> bool:
    """True when MINIVLM_FAST=1: notebooks then train for seconds instead of minutes (CI runs them so)."""
    return os.environ.get("MINIVLM_FAST", "0") == "1"
