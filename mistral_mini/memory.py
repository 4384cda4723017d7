"""How much memory a model needs, counted before anything is allocated.

The model is built on the ``meta`` device (every shape, no data) and the cache likewise, so the 7B's budget
costs nothing to compute: 7,241,732,096 parameters, 14.48 GB in bf16, and 512 MiB of rolling cache per
sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cache import RollingBufferCache
from .config import ModelArgs
from .transformer import Transformer


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes for a model's weights and for one rolling-buffer cache."""

    weights_bytes: int
    cache_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.cache_bytes

    def __str__(self) -> str:
        return (f"weights {format_bytes(self.weights_bytes)} + rolling cache {format_bytes(self.cache_bytes)} "
                f"= {format_bytes(self.total_bytes)}")


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


def memory_plan(args: ModelArgs, dtype: torch.dtype, batch_size: int = 1) -> MemoryPlan:
    """Bytes that the weights and a cache for ``batch_size`` sequences take in ``dtype``.

    The cache's bytes are ``RollingBufferCache.nbytes`` of a cache built on meta: keys and values for every
    layer, sequence and slot of the window, however long the text.
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n_params = sum(p.numel() for p in meta_model(args).parameters())
    cache = RollingBufferCache(args, batch_size=batch_size, device="meta", dtype=dtype)
    return MemoryPlan(weights_bytes=n_params * dtype.itemsize, cache_bytes=cache.nbytes)
