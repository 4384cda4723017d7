"""Checks of notebook 10 (Mistral 7B on a GPU): what the weights take, and how many sequences fit beside them.

The expected bytes come from ``mistral_mini.memory.memory_plan``, which counts on the meta device.
"""

from __future__ import annotations

from collections.abc import Callable

from .checking import check_cases
from .compare import int_difference
from .models import MODELS, plan_for

__all__ = ["check_weight_bytes", "check_max_sequences"]


def check_weight_bytes(fn: Callable) -> None:
    """``fn(args, itemsize)`` -> bytes the weights take at ``itemsize`` bytes per parameter."""
    cases = [(f"{name}, itemsize {itemsize}", (MODELS[name], itemsize), plan_for(MODELS[name], itemsize).weights_bytes)
             for name in ("Mistral 7B", "the tiny preset") for itemsize in (2, 4)]
    check_cases("weight_bytes(args, itemsize)", fn, cases,
                "count the parameters (notebook 08) and multiply by the bytes per parameter: 2 for "
                "bf16, 4 for float32", compare=int_difference)


def check_max_sequences(fn: Callable) -> None:
    """``fn(free_bytes, args, itemsize)`` -> how many sequences' rolling caches fit next to the weights."""
    seven_b = MODELS["Mistral 7B"]
    plan = plan_for(seven_b, 2)
    weights, per_sequence = plan.weights_bytes, plan.cache_bytes
    cases = [(f"{free / 2**30:g} GiB free, the 7B in bf16", (free, seven_b, 2),
              max(0, (free - weights) // per_sequence))
             for free in (80 * 2**30, 24 * 2**30, weights + per_sequence - 1, 8 * 2**30)]
    check_cases("max_sequences(free_bytes, args, itemsize)", fn, cases,
                "subtract the weights (parameters x itemsize), then divide by one sequence's rolling "
                "cache (2 x n_layers x sliding_window x n_kv_heads x head_dim x itemsize), rounding "
                "down; never below 0", compare=int_difference)
