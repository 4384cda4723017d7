"""How much memory a model needs, counted before anything is allocated.

The model is built on the ``meta`` device (every shape, no data) and the cache likewise, so the 7B's budget
costs nothing to compute: 7,241,732,096 parameters, 14.48 GB in bf16, and 512 MiB of rolling cache per
sequence. ``activation_bytes`` adds what a prefill chunk holds while it runs (434 MiB for the 7B in bf16 at
4,096 tokens), and ``traced_peak_bytes`` measures that on ``meta`` by watching every operation.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .attention import block_for
from .cache import RollingBufferCache
from .config import ModelArgs
from .quantize import check_quantize, quantize_model
from .transformer import Transformer


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes for a model's weights and for one rolling-buffer cache."""

    weights_bytes: int
    cache_bytes: int
    quantize: str | None = None  # "int8": the linear layers' weights in 8 bits (mistral_mini.quantize)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.cache_bytes

    def __str__(self) -> str:
        weights = format_bytes(self.weights_bytes) + (f" ({self.quantize} linear layers)" if self.quantize else "")
        return f"weights {weights} + rolling cache {format_bytes(self.cache_bytes)} = {format_bytes(self.total_bytes)}"


def format_bytes(n: float) -> str:
    """1536 -> '1.50 KiB', 2**29 -> '512 MiB': binary units, as memory is counted and GPU tools report it."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}".replace(".00 ", " ")
        n /= 1024
    raise AssertionError("unreachable")


def meta_model(args: ModelArgs) -> Transformer:
    """The model with every tensor on ``meta``: all the shapes, no memory, built in an instant even for 7B."""
    with torch.device("meta"):
        return Transformer(args)


def memory_plan(args: ModelArgs, dtype: torch.dtype, batch_size: int = 1, quantize: str | None = None) -> MemoryPlan:
    """Bytes that the weights and a cache for ``batch_size`` sequences take in ``dtype``.

    quantize="int8": the meta model goes through ``quantize_model``, and its int8 weights and float32 scales
    count at their own size, the embedding and the norms in ``dtype`` (what load_model(quantize="int8") holds).
    The cache's bytes are ``RollingBufferCache.nbytes`` of a cache built on meta: keys and values for every
    layer, sequence and slot of the window, however long the text.
    """
    check_quantize(quantize)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model = meta_model(args)
    if quantize == "int8":
        quantize_model(model)  # on meta: the int8 layout, shapes only
    # Float parameters are stored in dtype; what quantize_model made (int8 weights, scales) keeps its own dtype.
    in_dtype = sum(p.numel() for p in model.parameters() if p.is_floating_point())
    own = [*(p for p in model.parameters() if not p.is_floating_point()), *model.buffers()]
    weights_bytes = in_dtype * dtype.itemsize + sum(t.numel() * t.element_size() for t in own)
    cache = RollingBufferCache(args, batch_size=batch_size, device="meta", dtype=dtype)
    return MemoryPlan(weights_bytes=weights_bytes, cache_bytes=cache.nbytes, quantize=quantize)


def activation_bytes(args: ModelArgs, chunk_size: int, dtype: torch.dtype, quantize: str | None = None) -> int:
    """Peak bytes of the temporaries of one prefill chunk of ``chunk_size`` tokens, with the cache full.

    An upper bound, for one sequence, whichever attention kernel runs. Without a fused kernel (the worst case)
    the chunk's queries go in blocks of Bq = ``block_for(W, n_rep, D)``, each against its Bq + W - 1 keys, and
    the math kernel holds their scores in float32. A layer's temporaries are freed before the next layer
    starts, so the peak is that of the largest of four moments of one layer, plus the rotary angles that every
    layer shares.
    Counted, in ``dtype`` unless float32 is said (C = chunk_size, P = W - 1 cached keys the chunk sees):

    * all along: the layer's input and its normed copy [C, dim] each; cos and sin [C, D/2] in float32; the
      positions and slot indices (int64);
    * rotating q: q, k, v [C, (H + 2 Hkv) D]; the turns cos + i sin [C, D/2] complex64; q in float32 and its
      rotated product (complex64, the same bytes), 2 x [C, H D] float32; the rotated q back in dtype [C, H D];
    * attending: q, k, v; the cached keys and values gathered [P, Hkv D] x 2 and joined with the chunk's
      [P + C, Hkv D] x 2; the output [C, H D], which the blocks fill in place; and for one block: its
      scores, twice in float32 (the product, and the product plus the mask) [H, Bq, Bq + W - 1], the mask as
      an additive bias [n_rep Bq, Bq + W - 1] and as bools, the block's queries (gathered, in float32, scaled),
      its keys and values in float32 (copies unless dtype is float32), and its output;
    * the feed-forward: the sum after attention (a third [C, dim]), and w1's and w3's outputs and their
      product, 3 x [C, hidden_dim];
    * the logits of the last position only (prefill asks for no more): [vocab] in dtype and in float32.

    quantize="int8": an Int8Linear multiplies by a float copy of its weight, made for the call; the largest
    such copy that can meet the feed-forward's peak is w3's [hidden_dim, dim], and at the end the output's.
    Its output is then scaled by a copy of its scales in dtype, [hidden_dim] next to the three hidden ones.
    ``tests/test_memory.py`` checks this count against a trace of the real forward pass on ``meta``.
    """
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    check_quantize(quantize)
    C, s, f = chunk_size, dtype.itemsize, 4  # f: float32's itemsize
    d, D, H, Hkv, W = args.dim, args.head_dim, args.n_heads, args.n_kv_heads, args.sliding_window
    P, Bq = W - 1, min(block_for(W, args.n_rep, D), W, C)
    up = 0 if dtype == torch.float32 else f  # the math kernel's float32 copy of a tensor that is not float32
    K = Bq + W - 1  # keys seen by one block
    int8 = quantize == "int8"
    shared = 2 * C * (D // 2) * f + (C + min(C, W) + P) * 8  # angles; positions and slots (int64)
    stream = 2 * C * d * s
    qkv = C * (H + 2 * Hkv) * D * s
    rotating = stream + qkv + C * D * f + C * H * D * (2 * f + s)
    block = (2 * H * Bq * K * f + args.n_rep * Bq * K * s + Bq * K  # scores twice, bias, bool mask
             + H * Bq * D * (2 * s + 2 * f) + 2 * Hkv * K * D * up)  # queries, output; keys, values in float32
    attending = stream + qkv + 2 * (2 * P + C) * Hkv * D * s + C * H * D * s + block
    hidden = C * args.hidden_dim * s
    feed_forward = 3 * C * d * s + max(3 * hidden + (args.hidden_dim * s if int8 else 0),
                                       2 * hidden + (args.hidden_dim * d * s if int8 else 0))
    logits = C * d * s + args.vocab_size * (2 * s + f) + (args.vocab_size * d * s if int8 else 0)
    return shared + max(rotating, attending, feed_forward, logits)


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of every storage that an operation creates, until its last tensor is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.tensors_of: dict[int, int] = {}  # storage -> how many traced tensors use it
        self.bytes_of: dict[int, int] = {}
        self.live = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            key = _storage_key(tensor)
            if key not in self.tensors_of:
                if key in inputs:
                    continue  # a view of a tensor made before the trace: a weight, the cache
                self.tensors_of[key], self.bytes_of[key] = 0, tensor.untyped_storage().nbytes()
                self.live += self.bytes_of[key]
            self.tensors_of[key] += 1
            weakref.finalize(tensor, self._release, key)
        self.peak = max(self.peak, self.live)
        return out

    def _release(self, key: int) -> None:
        self.tensors_of[key] -= 1
        if self.tensors_of[key] == 0:
            self.live -= self.bytes_of.pop(key)
            del self.tensors_of[key]


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata  # the address of the storage: shared by a tensor and its views


def traced_peak_bytes(fn: Callable[[], object]) -> int:
    """Run ``fn()`` and return the peak bytes held at once by tensors that its operations created.

    Every operation is seen as it returns (``TorchDispatchMode``); the bytes of each new storage count until
    the last tensor using it is freed (``weakref.finalize``). Views share their base's storage and cost
    nothing; tensors made before the call (weights, the cache) are not counted. On ``meta`` nothing is
    allocated, so this measures a 7B's activations on any machine. Operations run as the dispatcher gives
    them: under ``torch.inference_mode`` a fused kernel is one operation, under ``torch.no_grad`` the math
    kernel shows its scores.
    """
    mode = _LiveBytes()
    with mode:
        fn()
    return mode.peak
