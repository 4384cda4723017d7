"""The checks of notebook 10 (Mistral 7B on a GPU): right answers pass, each classic mistake is named, wrong
types get a message instead of a traceback."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes

GiB = 2**30

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package
# ---------------------------------------------------------------------------------------------------------


def shapes(a):
    """(name, shape) of every weight: the checkpoint's names, one layer's, then the rest."""
    q, kv = a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
    layer = [("wq", (q, a.dim)), ("wk", (kv, a.dim)), ("wv", (kv, a.dim)), ("wo", (a.dim, q)),
             ("w1", (a.hidden_dim, a.dim)), ("w2", (a.dim, a.hidden_dim)), ("w3", (a.hidden_dim, a.dim)),
             ("attention_norm", (a.dim,)), ("ffn_norm", (a.dim,))]
    return (layer * a.n_layers + [("tok_embeddings", (a.vocab_size, a.dim)), ("norm", (a.dim,)),
                                  ("output", (a.vocab_size, a.dim))])


def weight_bytes(a, itemsize):
    return sum(math.prod(shape) for _, shape in shapes(a)) * itemsize


def int8_weight_bytes(a, itemsize, scale_bytes=4):
    total = 0
    for name, shape in shapes(a):
        if name.startswith("w") or name == "output":
            total += math.prod(shape) + scale_bytes * shape[0]  # int8 weights, a float32 scale a row
        else:
            total += math.prod(shape) * itemsize
    return total


def cache_bytes(a, itemsize, slots=None, kv=2, heads=None, layers=None):
    slots = a.sliding_window if slots is None else slots
    heads = a.n_kv_heads if heads is None else heads
    return kv * (a.n_layers if layers is None else layers) * slots * heads * a.head_dim * itemsize


def max_sequences(free_gib, a, itemsize, seq_len):
    return max(0, (int(free_gib * GiB) - weight_bytes(a, itemsize)) // cache_bytes(a, itemsize))


@pytest.mark.parametrize("check, right", [
    (ex.check_weight_bytes, weight_bytes),
    (ex.check_weight_bytes, lambda a, s: np.int64(weight_bytes(a, s))),
    (ex.check_max_sequences, max_sequences),
    (ex.check_max_sequences, lambda f, a, s, t: math.floor(max(0, (f * GiB - weight_bytes(a, s)) / cache_bytes(a, s)))),
    (ex.check_int8_weight_bytes, int8_weight_bytes),
    (ex.check_int8_weight_bytes, lambda a, s: torch.tensor(int8_weight_bytes(a, s))),
])
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


def counted(a, itemsize, leave_out=(), tie=False, kv_heads=None):
    """weight_bytes with some weights left out or miscounted."""
    a = a if kv_heads is None else dataclasses.replace(a, n_kv_heads=kv_heads)
    return sum(math.prod(s) for n, s in shapes(a) if n not in leave_out and not (tie and n == "output")) * itemsize


def one_layer(a, itemsize):
    return sum(math.prod(s) for _, s in shapes(a)[:9] + shapes(a)[-3:]) * itemsize


WEIGHT_WRONG = [
    ("tied output", lambda a, s: counted(a, s, tie=True), "the output projection (output.weight"),
    ("no GQA", lambda a, s: counted(a, s, kv_heads=a.n_heads), "wk and wv have n_kv_heads x head_dim rows"),
    ("no norms", lambda a, s: counted(a, s, leave_out=("attention_norm", "ffn_norm", "norm")),
     "the RMSNorm weights are missing"),
    ("no final norm", lambda a, s: counted(a, s, leave_out=("norm",)), "the final norm (norm.weight"),
    ("two FFN matrices", lambda a, s: counted(a, s, leave_out=("w3",)), "SwiGLU has three matrices"),
    ("one layer", one_layer, "one layer counted"),
    ("parameters", lambda a, s: weight_bytes(a, 1), "that is the parameter count"),
    ("bits", lambda a, s: weight_bytes(a, s) * 8, "that is bits"),
    ("GB", lambda a, s: weight_bytes(a, s) / 1e9, "that is in GB (10**9 bytes)"),
    ("GiB", lambda a, s: weight_bytes(a, s) / GiB, "that is in GiB (2**30 bytes)"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in WEIGHT_WRONG], ids=[n for n, _, _ in WEIGHT_WRONG])
def test_weight_bytes_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_weight_bytes, wrong, ["mistake: " + says], capsys)


def sequences(f, a, s, t, unit=GiB, weights=True, clamp=True, rounding=math.floor, **cache):
    n = rounding((f * unit - (weight_bytes(a, s) if weights else 0)) / cache_bytes(a, s, **cache))
    return max(0, n) if clamp else n


SEQUENCE_WRONG = [
    # The mistakes the issue names: a cache per token, K and V, GiB vs GB, the weights forgotten.
    ("full cache", lambda f, a, s, t: sequences(f, a, s, t, slots=t), "a slot per token of the whole sequence"),
    ("keys only", lambda f, a, s, t: sequences(f, a, s, t, kv=1), "keys *and* values"),
    ("GB", lambda f, a, s, t: sequences(f, a, s, t, unit=10**9), "free_gib is in GiB (2**30 bytes each), not GB"),
    ("no weights", lambda f, a, s, t: sequences(f, a, s, t, weights=False), "the weights were forgotten"),
    ("query heads", lambda f, a, s, t: sequences(f, a, s, t, heads=a.n_heads), "the cache has n_kv_heads heads"),
    ("one layer", lambda f, a, s, t: sequences(f, a, s, t, layers=1), "one layer's cache"),
    ("negative", lambda f, a, s, t: sequences(f, a, s, t, clamp=False), "when the weights alone do not fit"),
    ("rounded", lambda f, a, s, t: sequences(f, a, s, t, rounding=round), "rounded up or to the nearest"),
    ("ceiling", lambda f, a, s, t: sequences(f, a, s, t, rounding=math.ceil), "rounded up or to the nearest"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in SEQUENCE_WRONG], ids=[n for n, _, _ in SEQUENCE_WRONG])
def test_max_sequences_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_max_sequences, wrong, ["mistake: " + says], capsys)


def int8_with(a, itemsize, scales="row", scale_bytes=4, int8=("w", "output"), norms_bytes=None):
    total = 0
    for name, shape in shapes(a):
        if name.startswith(int8):
            rows = {"row": shape[0], "column": shape[1], "matrix": 1, "none": 0}[scales]
            total += math.prod(shape) + scale_bytes * rows
        elif name.endswith("norm"):
            total += math.prod(shape) * (itemsize if norms_bytes is None else norms_bytes)
        else:
            total += math.prod(shape) * itemsize
    return total


INT8_WRONG = [
    ("no scales", lambda a, s: int8_with(a, s, scales="none"), "the scales are missing"),
    ("scales in the model's dtype", lambda a, s: int8_with(a, s, scale_bytes=s), "the scales are float32"),
    ("a scale per column", lambda a, s: int8_with(a, s, scales="column"), "one scale per column"),
    ("a scale per matrix", lambda a, s: int8_with(a, s, scales="matrix"), "one scale per matrix"),
    ("embedding in int8", lambda a, s: int8_with(a, s, int8=("w", "output", "tok_")), "the embedding table was put"),
    ("output in float", lambda a, s: int8_with(a, s, int8=("w",)), "the output projection stayed in float"),
    ("norms in int8", lambda a, s: int8_with(a, s, norms_bytes=1), "the norms were put in int8"),
    ("a byte a parameter", lambda a, s: weight_bytes(a, 1), "that is one byte for every parameter"),
    ("half the float weights", lambda a, s: weight_bytes(a, s) // 2, "that is half of the float weights"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in INT8_WRONG], ids=[n for n, _, _ in INT8_WRONG])
def test_int8_weight_bytes_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_int8_weight_bytes, wrong, ["mistake: " + says], capsys)


# ---------------------------------------------------------------------------------------------------------
# wrong types: a message, never a traceback
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_weight_bytes, lambda a, s: [weight_bytes(a, s)], "expected one number, got a list"),
    (ex.check_weight_bytes, lambda a, s: str(weight_bytes(a, s)), "expected one number, got str"),
    (ex.check_weight_bytes, lambda a, s: weight_bytes(a, s) + 0.5, "expected a whole number"),
    (ex.check_max_sequences, lambda f, a, s, t: torch.tensor([1, 2]), "expected one number"),
    (ex.check_max_sequences, lambda f, a, s, t: (f * GiB - weight_bytes(a, s)) / cache_bytes(a, s),
     "expected a whole number"),
    (ex.check_max_sequences, lambda f, a, s, t: None, "expected one number, got NoneType None"),
    (ex.check_int8_weight_bytes, lambda a, s: a.dim // 0, "your code raised ZeroDivisionError"),
    (ex.check_int8_weight_bytes, "int8", "expected a function"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)
