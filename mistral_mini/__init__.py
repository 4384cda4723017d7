"""mistral_mini: Mistral 7B rebuilt piece by piece."""

from .cache import RollingBufferCache
from .config import ModelArgs
from .tokenizer import Tokenizer
from .transformer import Transformer, TransformerBlock

__all__ = ["ModelArgs", "RollingBufferCache", "Tokenizer", "Transformer", "TransformerBlock"]
