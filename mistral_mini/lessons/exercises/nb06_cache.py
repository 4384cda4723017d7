"""Checks of notebook 06 (the rolling-buffer cache): which slot a position takes, and what the cache costs.

The expected answers come from the rules in ``mistral_mini.cache`` (``slot_of``, ``slot_positions_after``),
the same functions the model and the figures use.
"""

from __future__ import annotations

from collections.abc import Callable

from ...cache import slot_of, slot_positions_after
from .checking import check_cases
from .compare import int_difference, value_difference
from .models import MODELS, plan_for, small_args

__all__ = ["check_slot_and_evicted", "check_kv_cache_bytes", "check_slot_positions"]


def _evicted(position: int, window: int) -> int | None:
    """The position that ``position`` overwrites in its slot, or None while that slot is still empty."""
    held = int(slot_positions_after(position, window)[slot_of(position, window)])  # before writing position
    return None if held < 0 else held


def check_slot_and_evicted(fn: Callable[[int, int], tuple[int, int | None]]) -> None:
    """``fn(position, window)`` -> (the slot it is written to, the position it overwrites or None)."""
    cases = []
    for window in (1, 4, 8):
        for position in sorted({0, 1, window - 1, window, window + 3, 4 * window, 4 * window + 1}):
            cases.append((f"position={position}, window={window}", (position, window),
                          (slot_of(position, window), _evicted(position, window))))
    check_cases("slot_and_evicted(position, window)", fn, cases,
                "position p goes to slot p % W and overwrites position p - W; "
                "while p < W the slot is still empty, so nothing is overwritten (None)",
                compare=value_difference)


def check_kv_cache_bytes(fn: Callable) -> None:
    """``fn(args, seq_len, itemsize, rolling)`` -> bytes of keys and values for one sequence.

    rolling=True: the rolling buffer, W slots per layer whatever seq_len is (it is allocated up front).
    rolling=False: a full cache, one slot per token seen.
    """
    cases = []
    for label, args in (("the 7B", MODELS["Mistral 7B"]), ("a small model", small_args(n_layers=3, sliding_window=16))):
        for itemsize in (2, 4):
            rolling = plan_for(args, itemsize).cache_bytes
            cases.append((f"{label}, rolling, itemsize {itemsize}, seq_len 100_000",
                          (args, 100_000, itemsize, True), rolling))
            for seq_len in (10, 32_768):
                full = rolling * seq_len // args.sliding_window
                cases.append((f"{label}, full, itemsize {itemsize}, seq_len {seq_len}",
                              (args, seq_len, itemsize, False), full))
    check_cases("kv_cache_bytes(args, seq_len, itemsize, rolling)", fn, cases,
                "keys and values (2) x n_layers x slots x n_kv_heads x head_dim x itemsize; slots is "
                "sliding_window for the rolling buffer and seq_len for a full cache",
                compare=int_difference)


def check_slot_positions(fn: Callable[[int, int], list[int]]) -> None:
    """``fn(n_seen, window)`` -> the position each of the W slots holds after n_seen tokens (-1: empty)."""
    cases = [(f"n_seen={n_seen}, window={window}", (n_seen, window), slot_positions_after(n_seen, window).tolist())
             for window in (1, 3, 8) for n_seen in sorted({0, 1, window - 1, window, window + 1, 3 * window + 2})]
    check_cases("slot_positions(n_seen, window)", fn, cases,
                "positions 0..n_seen-1 were written to slots p % W, each overwriting the last; "
                "slot s keeps the latest p with p % W == s, and -1 if no p has reached it yet",
                compare=value_difference)
