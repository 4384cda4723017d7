"""mistral_mini: Mistral 7B rebuilt piece by piece.

The model and what runs it are the modules here; ``mistral_mini.lessons`` holds what exists only for the
notebooks (figures, widgets, exercise checks, the classroom commands).
"""

from .cache import RollingBufferCache
from .config import ModelArgs
from .generation import generate
from .memory import memory_plan
from .tokenizer import Tokenizer
from .transformer import Transformer, TransformerBlock

__all__ = ["ModelArgs", "RollingBufferCache", "Tokenizer", "Transformer", "TransformerBlock", "generate",
           "load_model", "memory_plan", "save_model"]

_FROM_CHECKPOINT = ("load_model", "save_model")


def __getattr__(name: str):
    # checkpoint.py is imported on first use rather than here: `python -m mistral_mini.checkpoint convert`
    # runs that module as a script, and importing it here first would leave two copies of it.
    if name in _FROM_CHECKPOINT:
        from . import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'mistral_mini' has no attribute {name!r}")
