"""Checks of notebook 05 (receptive field): how far back a stack of sliding-window layers can see."""

from __future__ import annotations

from collections.abc import Callable

from ...receptive_field import reach, receptive_field_mask
from .checking import check_cases
from .compare import matches, number_difference

__all__ = ["check_reach", "check_receptive_field", "check_layers_needed"]


def check_reach(fn: Callable) -> None:
    """``fn(n_layers, window) -> int``: positions back the last layer can see, L * (W - 1)."""
    cases = [(f"L={L}, W={W}", (L, W), reach(L, W)) for L, W in [(1, 4096), (32, 4096), (3, 4), (5, 1), (0, 7)]]

    def diagnose(args, got):
        L, W = args
        if got == L * W:
            return ("you counted W per layer, like the paper's 32 * 4096 = 131,072. The window includes the "
                    "token itself, so each layer reaches only W - 1 further back.")
        return None

    check_cases("reach(n_layers, window)", fn, cases, compare=number_difference, diagnose=diagnose,
                hint="one layer sees i - j < W, so W - 1 back; layers add up.")


def check_receptive_field(fn: Callable) -> None:
    """``fn(seq_len, n_layers, window) -> bool Tensor [T, T]``: True where input j can influence output i."""
    cases = [(f"T={T}, L={L}, W={W}", (T, L, W), receptive_field_mask(T, L, W))
             for T, L, W in [(10, 1, 3), (16, 2, 3), (20, 3, 4), (8, 0, 5)]]

    def diagnose(args, got):
        T, L, W = args
        if L > 0 and matches(got, receptive_field_mask(T, 1, L * W + 1)):  # reaching L * W back
            return "the field is L * (W - 1) positions back: W - 1 per layer, not W."
        return None

    check_cases("receptive_field(seq_len, n_layers, window)", fn, cases, diagnose=diagnose,
                hint="either compose the one-layer mask L times (a boolean matrix product), or use "
                     "0 <= i - j <= L * (W - 1).")


def check_layers_needed(fn: Callable) -> None:
    """``fn(distance, window) -> int``: the fewest layers whose receptive field reaches ``distance`` back."""
    cases = [(f"distance={d:,}, W={W}", (d, W), -(-d // (W - 1)))
             for d, W in [(12, 4), (5, 4), (4095, 4096), (4096, 4096), (131040, 4096), (131072, 4096), (0, 4)]]

    def diagnose(args, got):
        d, W = args
        if got == -(-d // W):
            return "each layer adds W - 1 positions, not W."
        if got == d // (W - 1):
            return "round up: a partial layer still costs a whole layer."
        return None

    check_cases("layers_needed(distance, window)", fn, cases, compare=number_difference,
                diagnose=diagnose, hint="the smallest L with L * (W - 1) >= distance: a ceiling division.")
