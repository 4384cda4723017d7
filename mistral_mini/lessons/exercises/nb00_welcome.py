"""Checks of notebook 00 (welcome): counting Mistral's parameters and the memory to run it, from args alone."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...config import ModelArgs
from ...memory import memory_plan
from ...transformer import TransformerBlock
from .checking import check_cases
from .compare import int_difference
from .models import MODELS, counted_parameters, parameter_count, small_args

__all__ = ["check_block_parameters", "check_memory_needed"]

# The counting configurations, typical first. "Wide heads" has n_heads * head_dim = 96 != dim = 64 (nothing
# forces them to be equal), so that confusing the two shows; the MHA model (n_kv_heads = n_heads), where
# counting wk and wv with n_heads gives the right answer, comes last.
CONFIGS = {
    "Mistral 7B": MODELS["Mistral 7B"],
    "a model with wide heads (dim 64, 4 heads of 24)": small_args(head_dim=24, hidden_dim=160),
    "the tiny preset": MODELS["the tiny preset"],
    "a small MHA model": MODELS["a small MHA model"],
}

# Exercise 1 asks for arithmetic: building the model (and counting its parameters) is switched off meanwhile.
MODEL_BUILDERS = ["mistral_mini.transformer.TransformerBlock", "mistral_mini.transformer.Transformer",
                  "mistral_mini.Transformer", "mistral_mini.memory.memory_plan", "mistral_mini.memory.meta_model",
                  "mistral_mini.cache.RollingBufferCache", "mistral_mini.RollingBufferCache"]


def _block(a: ModelArgs, **mistakes) -> int:
    """One block's parameters, with the switches of ``counted_parameters`` that the classic mistakes flip."""
    return counted_parameters(a, one_block=True, **mistakes)


BLOCK_MISTAKES = [
    ("the two RMSNorm weight vectors (attention_norm, ffn_norm: dim each) are missing.",
     lambda a: _block(a, norms=0)),
    ("only one RMSNorm counted: a block has two, one before attention and one before the feed-forward.",
     lambda a: _block(a, norms=1)),
    ("wk and wv counted with n_heads: they have only n_kv_heads heads of head_dim (grouped-query attention).",
     lambda a: _block(a, kv_heads=a.n_heads)),
    ("wq and wo counted as dim x dim: they map dim to n_heads x head_dim features, which need not equal dim.",
     lambda a: _block(a, q_width=a.dim)),
    ("the feed-forward has three matrices (w1, w2, w3: SwiGLU's gate, down and up), not two.",
     lambda a: _block(a, ff_matrices=2)),
]


def check_block_parameters(fn: Callable) -> None:
    """``fn(args) -> int``: the parameters of one TransformerBlock, by arithmetic on ``args``."""
    cases = [(name, (args,), parameter_count(TransformerBlock, args)) for name, args in CONFIGS.items()]
    check_cases(
        "block_parameters(args)", fn, cases, compare=int_difference, mistakes=BLOCK_MISTAKES,
        forbidden=MODEL_BUILDERS,
        hint="count each weight as (features out) x (features in). In a separate cell, build "
             "TransformerBlock(args) under `with torch.device('meta'):` and print each parameter's name and "
             "shape: your arithmetic must give the same total for every args, not only the 7B's.")


def _memory(a: ModelArgs, dtype: torch.dtype, batch: int, weights_per_sequence: bool = False, cache: int = 2,
            kv_heads: int | None = None, embeddings: int = 2, itemsize: int | None = None) -> int:
    """Bytes for weights and caches, with the switches the classic mistakes flip."""
    itemsize = dtype.itemsize if itemsize is None else itemsize
    weights = a.n_layers * _block(a) + embeddings * a.vocab_size * a.dim + a.dim  # + the final norm
    per_sequence = cache * a.n_layers * a.sliding_window * (a.n_kv_heads if kv_heads is None else kv_heads) \
        * a.head_dim
    if weights_per_sequence:
        return (weights + per_sequence) * batch * itemsize
    return (weights + per_sequence * batch) * itemsize


MEMORY_MISTAKES = [
    ("the weights are counted once per sequence: all sequences of a batch share one copy of the weights; "
     "only the cache is per sequence.", lambda a, d, b: _memory(a, d, b, weights_per_sequence=True)),
    ("the rolling KV cache is missing: every sequence needs its own keys and values.",
     lambda a, d, b: _memory(a, d, b, cache=0)),
    ("the cache holds keys only: it stores keys and values, two tensors per layer.",
     lambda a, d, b: _memory(a, d, b, cache=1)),
    ("the cache counted with n_heads: keys and values have only n_kv_heads heads.",
     lambda a, d, b: _memory(a, d, b, kv_heads=a.n_heads)),
    ("the output projection is missing: `output` is a second vocab_size x dim matrix, not shared with "
     "tok_embeddings.", lambda a, d, b: _memory(a, d, b, embeddings=1)),
    ("the bytes per value ignore dtype: float32 takes 4 bytes, bfloat16 2.",
     lambda a, d, b: _memory(a, d, b, itemsize=2)),
]


def check_memory_needed(fn: Callable) -> None:
    """``fn(args, dtype, batch_size) -> int``: bytes for the weights plus one rolling cache per sequence."""
    runs = [("Mistral 7B", torch.bfloat16, 4), ("the tiny preset", torch.float32, 3),
            ("a model with wide heads (dim 64, 4 heads of 24)", torch.float32, 2),
            ("Mistral 7B", torch.float32, 1)]  # one sequence last: there the batch mistakes do not show
    cases = [(f"{name} in {str(dtype).removeprefix('torch.')}, batch_size={batch}", (CONFIGS[name], dtype, batch),
              memory_plan(CONFIGS[name], dtype, batch_size=batch).total_bytes) for name, dtype, batch in runs]
    check_cases(
        "memory_needed(args, dtype, batch_size)", fn, cases, compare=int_difference, mistakes=MEMORY_MISTAKES,
        forbidden=MODEL_BUILDERS,
        hint="list what is stored (every weight matrix and norm of the model; for each sequence, what the "
             "cache keeps) and how many bytes each value takes in dtype; then ask which of them a second "
             "sequence adds.")
