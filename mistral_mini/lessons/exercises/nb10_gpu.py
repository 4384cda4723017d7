"""Checks of notebook 10 (Mistral 7B on a GPU): what the weights take, in 2 bytes or in int8, and how many
sequences fit beside them.

The expected bytes come from ``mistral_mini.memory.memory_plan``, which counts on the meta device. The
mistakes are worked out here from the hyper-parameters, one switch per classic slip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ...config import ModelArgs
from ...memory import memory_plan
from .checking import check_cases
from .compare import int_difference, number_difference
from .models import MODELS, counted_parameters, plan_for

__all__ = ["check_weight_bytes", "check_max_sequences", "check_int8_weight_bytes"]

GiB, GB = 2**30, 10**9


def _bytes_difference(got, expected: int | float) -> str | None:
    """Whole bytes against the answer; a mistake's answer may be a float (GB), compared as a number."""
    if type(got).__module__ == "numpy" and getattr(got, "shape", None) == ():  # np.int64(7): one number too
        got = got.item()
    if isinstance(expected, float):
        return number_difference(got, expected)
    return int_difference(got, expected)


def _matrices(a: ModelArgs) -> list[tuple[int, int, int]]:
    """(how many, rows, columns) of each kind of linear weight, stored [out_features, in_features]."""
    q, kv = a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
    return [(a.n_layers, q, a.dim), (2 * a.n_layers, kv, a.dim), (a.n_layers, a.dim, q),  # wq; wk, wv; wo
            (2 * a.n_layers, a.hidden_dim, a.dim), (a.n_layers, a.dim, a.hidden_dim),  # w1, w3; w2
            (1, a.vocab_size, a.dim)]  # output


WEIGHT_MISTAKES = [
    ("the output projection (output.weight, vocab_size x dim) is a matrix of its own in Mistral 7B, not the "
     "embedding table used twice.", lambda a, s: counted_parameters(a, outputs=1) * s),
    ("wk and wv have n_kv_heads x head_dim rows, not n_heads x head_dim: grouped-query attention shares each "
     "key/value head among several query heads.", lambda a, s: counted_parameters(a, kv_heads=a.n_heads) * s),
    ("the RMSNorm weights are missing: attention_norm and ffn_norm in every layer and the final norm, dim "
     "values each.", lambda a, s: counted_parameters(a, norms=0, final_norm=0) * s),
    ("the final norm (norm.weight, dim values) is missing.", lambda a, s: counted_parameters(a, final_norm=0) * s),
    ("SwiGLU has three matrices per layer (w1, w2 and w3), not two.",
     lambda a, s: counted_parameters(a, ff_matrices=2) * s),
    ("one layer counted: each of the n_layers blocks has weights of its own.",
     lambda a, s: counted_parameters(a, n_layers=1) * s),
    ("that is the parameter count: multiply by the bytes per parameter (itemsize).",
     lambda a, s: counted_parameters(a)),
    ("that is bits: itemsize is already in bytes.", lambda a, s: counted_parameters(a) * s * 8),
    ("that is in GB (10**9 bytes): the function returns bytes, a whole number.",
     lambda a, s: counted_parameters(a) * s / GB),
    ("that is in GiB (2**30 bytes): the function returns bytes, a whole number.",
     lambda a, s: counted_parameters(a) * s / GiB),
]

# Typical first; the MHA model (n_kv_heads = n_heads, where forgetting GQA changes nothing) last.
_WEIGHT_CASES = [("Mistral 7B", 2), ("the tiny preset", 4), ("Mistral 7B", 4), ("a small MHA model", 2)]


def check_weight_bytes(fn: Callable) -> None:
    """``fn(args, itemsize)`` -> bytes the weights take at ``itemsize`` bytes per parameter."""
    cases = [(f"{name}, itemsize {s}", (MODELS[name], s), plan_for(MODELS[name], s).weights_bytes)
             for name, s in _WEIGHT_CASES]
    check_cases("weight_bytes(args, itemsize)", fn, cases, compare=_bytes_difference, mistakes=WEIGHT_MISTAKES,
                hint="list every weight matrix and vector of the model (notebook 08) with its shape, for one "
                     "layer and for the parts outside the layers; which one is missing from your sum?")


def _sequences(free_gib: float, a: ModelArgs, s: int, seq_len: int, unit: int = GiB, weights: bool = True,
               slots: str = "window", kv: int = 2, gqa: bool = True, layers: bool = True,
               rounding: Callable = lambda x: int(x // 1), floor_at_zero: bool = True) -> int:
    """How many rolling caches fit beside the weights, with the switches that the classic mistakes flip."""
    n_slots = a.sliding_window if slots == "window" else seq_len
    heads = a.n_kv_heads if gqa else a.n_heads
    per_sequence = kv * (a.n_layers if layers else 1) * n_slots * heads * a.head_dim * s
    left = free_gib * unit - (counted_parameters(a) * s if weights else 0)
    n = rounding(left / per_sequence)
    return max(0, n) if floor_at_zero else n


SEQUENCE_MISTAKES = [
    ("a slot per token of the whole sequence: that is a full cache. The rolling buffer holds W slots per "
     "layer, however long the sequence grows.", lambda f, a, s, t: _sequences(f, a, s, t, slots="seq_len")),
    ("keys *and* values: every slot of every layer holds both, so one sequence's cache is twice that.",
     lambda f, a, s, t: _sequences(f, a, s, t, kv=1)),
    ("the cache has n_kv_heads heads, not n_heads: grouped-query attention caches only the shared "
     "key/value heads.", lambda f, a, s, t: _sequences(f, a, s, t, gqa=False)),
    ("one layer's cache: every one of the n_layers layers keeps its own keys and values.",
     lambda f, a, s, t: _sequences(f, a, s, t, layers=False)),
    ("free_gib is in GiB (2**30 bytes each), not GB (10**9): the two differ by 7%.",
     lambda f, a, s, t: _sequences(f, a, s, t, unit=GB)),
    ("the weights were forgotten: they take their share of the free memory before any cache.",
     lambda f, a, s, t: _sequences(f, a, s, t, weights=False)),
    ("when the weights alone do not fit, no sequence can run: the answer is 0, never negative.",
     lambda f, a, s, t: _sequences(f, a, s, t, floor_at_zero=False)),
    ("rounded up or to the nearest: a sequence whose cache does not fit whole cannot run, so round down.",
     lambda f, a, s, t: _sequences(f, a, s, t, rounding=round)),
    ("rounded up or to the nearest: a sequence whose cache does not fit whole cannot run, so round down.",
     lambda f, a, s, t: _sequences(f, a, s, t, rounding=lambda x: -int(-x // 1))),
]


def check_max_sequences(fn: Callable) -> None:
    """``fn(free_gib, args, itemsize, seq_len)`` -> how many sequences of ``seq_len`` tokens (more than the
    window) can run at once, each with its own rolling cache, in the GPU memory left beside the weights."""
    cases = []
    for free_gib, name, itemsize, seq_len in ((80.0, "Mistral 7B", 2, 32_768), (23.5, "Mistral 7B", 2, 8_192),
                                              (14.75, "Mistral 7B", 2, 16_384), (0.5, "the tiny preset", 4, 1_000),
                                              (8.0, "Mistral 7B", 2, 32_768)):
        plan = plan_for(MODELS[name], itemsize)
        expected = max(0, (int(free_gib * GiB) - plan.weights_bytes) // plan.cache_bytes)
        cases.append((f"{free_gib:g} GiB free, {name}, itemsize {itemsize}, seq_len {seq_len:,}",
                      (free_gib, MODELS[name], itemsize, seq_len), expected))
    check_cases("max_sequences(free_gib, args, itemsize, seq_len)", fn, cases, compare=_bytes_difference,
                mistakes=SEQUENCE_MISTAKES,
                hint="in bytes: what is left once the weights are in, and what does one more sequence add "
                     "(notebook 06: what does the rolling buffer hold, per layer)?")


def _int8(a: ModelArgs, s: int, scale_bytes: int = 4, scales: str = "row", embedding: str = "float",
          output_int8: bool = True, norms: int | None = None) -> int:
    """Bytes of int8 weights, with the switches that the classic mistakes flip."""
    matrices = _matrices(a) if output_int8 else _matrices(a)[:-1]
    if embedding != "float":  # the embedding table [vocab_size, dim] treated as one more linear layer
        matrices = [*matrices, (1, a.vocab_size, a.dim)]
    per = {"row": lambda rows, cols: rows, "column": lambda rows, cols: cols, "matrix": lambda rows, cols: 1,
           "none": lambda rows, cols: 0}[scales]
    total = sum(n * rows * cols for n, rows, cols in matrices)  # one byte each
    total += scale_bytes * sum(n * per(rows, cols) for n, rows, cols in matrices)
    total -= scale_bytes * a.vocab_size if embedding == "int8, no scales" else 0
    total += a.vocab_size * a.dim * s if embedding == "float" else 0
    total += 0 if output_int8 else a.vocab_size * a.dim * s
    return total + (2 * a.n_layers + 1) * a.dim * (s if norms is None else norms)


INT8_MISTAKES = [
    ("the scales are missing: each row of an int8 matrix stores one float32 scale beside its integers.",
     lambda a, s: _int8(a, s, scales="none")),
    ("the scales are float32 whatever the model's dtype: 4 bytes each.", lambda a, s: _int8(a, s, scale_bytes=s)),
    ("one scale per column: a scale belongs to a row of the weight as stored, [out_features, in_features], "
     "so there is one per output feature.", lambda a, s: _int8(a, s, scales="column")),
    ("one scale per matrix: every row has a scale of its own.", lambda a, s: _int8(a, s, scales="matrix")),
    ("the embedding table was put in int8: it is a lookup table, not a linear layer, and stays in float.",
     lambda a, s: _int8(a, s, embedding="int8")),
    ("the embedding table was put in int8: it is a lookup table, not a linear layer, and stays in float.",
     lambda a, s: _int8(a, s, embedding="int8, no scales")),
    ("the output projection stayed in float: it is a linear layer (vocab_size x dim) and goes to int8 too.",
     lambda a, s: _int8(a, s, output_int8=False)),
    ("the norms were put in int8 (or left out): they stay in float, dim values each.",
     lambda a, s: _int8(a, s, norms=1)),
    ("the norms were put in int8 (or left out): they stay in float, dim values each.",
     lambda a, s: _int8(a, s, norms=0)),
    ("that is one byte for every parameter: the embedding and the norms stay in float, and every int8 row "
     "has a 4-byte scale as well.", lambda a, s: counted_parameters(a)),
    ("that is half of the float weights: the embedding and the norms stay in float, and every int8 row has a "
     "4-byte scale as well.", lambda a, s: counted_parameters(a) * s // 2),
]


@functools.cache
def _int8_plan_bytes(name: str, itemsize: int) -> int:
    dtype = {2: torch.bfloat16, 4: torch.float32}[itemsize]
    return memory_plan(MODELS[name], dtype, quantize="int8").weights_bytes


def check_int8_weight_bytes(fn: Callable) -> None:
    """``fn(args, itemsize)`` -> bytes of the weights as ``load_model(..., quantize="int8")`` holds them: the
    linear layers in int8 with a float32 scale per output row, the embedding and the norms at ``itemsize``."""
    # The 7B once: quantizing it, even on meta, takes seconds.
    cases = [(f"{name}, itemsize {s}", (MODELS[name], s), _int8_plan_bytes(name, s))
             for name, s in _WEIGHT_CASES if (name, s) != ("Mistral 7B", 4)]
    check_cases("int8_weight_bytes(args, itemsize)", fn, cases, compare=_bytes_difference, mistakes=INT8_MISTAKES,
                hint="go through the model's weights one kind at a time (notebook 08): is it a linear layer "
                     "(int8, plus its scales) or not (float), and how many rows does it have?")
