"""Checks of notebook 05 (receptive field): which inputs a stack of sliding-window layers lets a token read.

Two readings of one window give two reaches, and both are mistakes a learner makes here: Mistral's weights
were run with W keys per query (``0 <= i - j < W``), W - 1 positions back per layer; the paper's sentence
("positions between i - W and i") reads as W + 1 keys, W back per layer, hence its 32 * 4096 = 131,072.
A third count, L * (W - 1) + 1, is the *span* of tokens (the token itself included), not a distance back.
The cases use L >= 2 first: with one layer the paper's figure and the span are the same number.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...receptive_field import receptive_field_mask
from .checking import check_cases
from .compare import describe, int_difference, tensor_difference, value_difference

__all__ = ["check_depends_on", "check_mixed_receptive_field", "check_layers_needed"]


def _inputs(t: int, back: int) -> list[int]:
    """The input positions ``back`` or fewer positions before t, t included; there is none before 0."""
    return list(range(max(0, t - back), t + 1))


def _positions_difference(got, expected: list[int]) -> str | None:
    """``value_difference`` for a list of positions, also taking a 1-d tensor or array, a range or a set."""
    if hasattr(got, "tolist") and hasattr(got, "shape"):  # a torch or numpy value
        if len(got.shape) != 1:
            return f"expected a list of input positions, got {describe(got)}"
        got = got.tolist()
    if isinstance(got, (set, frozenset, range)):
        got = sorted(got)
    if isinstance(got, (list, tuple)) and got and all(isinstance(x, bool) for x in got):
        return (f"expected a list of input positions like {expected[:3]}..., got a list of {len(got)} booleans "
                "(a row of a mask?): return the positions where it is True")
    return value_difference(got, expected)


DEPENDS_ON_MISTAKES = [
    ("that is what buggy_depends_on returns: both of its bugs are still there.",
     lambda t, L, W: _inputs(t, (L + 1) * W)),
    ("W positions back per layer: that is the paper's reading, where a query sees positions i - W .. i "
     "(W + 1 keys), whose 32 x 4,096 gives 131,072. Mistral's window holds W keys, the query's own included.",
     lambda t, L, W: _inputs(t, L * W)),
    ("one layer too many: the loop composes the one-layer mask n_layers times on top of one layer already. "
     "With n_layers = 0 an output depends on its own input only.",
     lambda t, L, W: _inputs(t, (L + 1) * (W - 1))),
    ("one layer too few: with n_layers = 1 an output already reads W - 1 positions back.",
     lambda t, L, W: _inputs(t, max(L - 1, 0) * (W - 1))),
    ("one position too many: L * (W - 1) + 1 is the span of tokens that can matter (output t's own input "
     "included), not how far back they reach.", lambda t, L, W: _inputs(t, L * (W - 1) + 1)),
    ("negative positions: the first tokens of a text have fewer than L * (W - 1) inputs before them; "
     "positions start at 0.", lambda t, L, W: list(range(t - L * (W - 1), t + 1))),
    ("output t itself is missing: every output depends on its own input (the residual connection, and its "
     "own key in the window).", lambda t, L, W: _inputs(t, L * (W - 1))[:-1]),
    ("those are the outputs that input t reaches (column t of the field), not the inputs output t reads "
     "(row t): mask[i, j] is output i reading input j.", lambda t, L, W: list(range(t, t + L * (W - 1) + 1))),
]


def check_depends_on(fn: Callable) -> None:
    """``fn(t, n_layers, window) -> list[int]``: the input positions output t can depend on, in order."""
    # (L, W) pairs not shown in the notebook; L >= 2 first, then the start of the text, then no reach at all.
    cases = [(f"t={t}, n_layers={L}, window={W}", (t, L, W), _inputs(t, L * (W - 1)))
             for t, L, W in [(30, 3, 5), (25, 2, 7), (40, 4, 3), (6, 3, 4), (12, 0, 6), (10, 5, 1), (0, 2, 3)]]
    check_cases("depends_on(t, n_layers, window)", fn, cases, compare=_positions_difference,
                mistakes=DEPENDS_ON_MISTAKES,
                hint="section 2 measured output 20 after 3 layers with W = 4: inputs 11 .. 20. Run your "
                     "function on those numbers, then count how many layers your code composes and how many "
                     "keys its one-layer mask gives each query.")


def _field(seq_len: int, back: int) -> torch.Tensor:
    return receptive_field_mask(seq_len, 1, back + 1)  # [T, T]: 0 <= i - j <= back


MIXED_MISTAKES = [
    ("W positions back per layer (the paper's reading, W + 1 keys per query): a layer of window W reaches "
     "W - 1 back.", lambda T, ws: _field(T, sum(ws))),
    ("only the largest window counts: layers relay information, so each layer's reach adds to the others'.",
     lambda T, ws: _field(T, max(ws, default=1) - 1)),
    ("every layer given the first layer's window: windows[l] is layer l's own window.",
     lambda T, ws: _field(T, len(ws) * (ws[0] - 1) if ws else 0)),
    ("every layer given the last layer's window: windows[l] is layer l's own window.",
     lambda T, ws: _field(T, len(ws) * (ws[-1] - 1) if ws else 0)),
    ("the first layer counted twice: start from zero layers, where each output reads its own input only.",
     lambda T, ws: _field(T, sum(w - 1 for w in ws) + (ws[0] - 1 if ws else 0))),
    ("rows and columns swapped: field[i, j] is output i (row) reading input j (column), so j <= i.",
     lambda T, ws: _field(T, sum(w - 1 for w in ws)).T),
]


def check_mixed_receptive_field(fn: Callable) -> None:
    """``fn(seq_len, windows) -> bool Tensor [T, T]``: the field of layers whose windows differ, layer by layer."""
    # Typical stacks first, then a window as long as the text (plain causal), windows of 1, no layer at all.
    cases = [(f"seq_len={T}, windows={ws}", (T, ws), _field(T, sum(w - 1 for w in ws)))
             for T, ws in [(20, [5, 2, 7]), (16, [3, 6]), (16, [4, 16]), (12, [6, 1, 1]), (6, [])]]
    check_cases("mixed_receptive_field(seq_len, windows)", fn, cases, compare=tensor_difference,
                mistakes=MIXED_MISTAKES,
                hint="how far back does one layer of window w let an output read, and what does a stack of "
                     "zero layers let it read? Section 2 adds layers one at a time.")


def _count_difference(got, expected: int) -> str | None:
    """``int_difference`` that also takes a one-element tensor or numpy number, and says so for anything else."""
    if hasattr(got, "shape") and hasattr(got, "dtype"):  # a torch or numpy value
        size = got.numel() if isinstance(got, torch.Tensor) else got.size
        if size != 1:
            return f"expected one whole number of layers, got {describe(got)}"
        got = got.item()
    return int_difference(got, expected)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


LAYERS_MISTAKES = [
    ("W positions per layer: that is the paper's reading (W + 1 keys per query). With W keys, the query's "
     "own included, a layer adds W - 1 positions.", lambda d, W: _ceil_div(d, W)),
    ("rounded down: when the distance is not a whole number of layers' reach, the last part still needs a "
     "whole layer.", lambda d, W: d // (W - 1)),
    ("one layer added every time: when W - 1 divides the distance exactly, no extra layer is needed.",
     lambda d, W: d // (W - 1) + 1),
    ("you asked for a span of `distance` tokens (the last token included): distance counts positions back, "
     "so L layers must reach that many positions before the token.", lambda d, W: _ceil_div(max(d - 1, 0), W - 1)),
]


def check_layers_needed(fn: Callable) -> None:
    """``fn(distance, window) -> int``: the fewest layers whose receptive field reaches ``distance`` back."""
    # Windows not shown in the notebook first, then exact multiples, the 7B's numbers, and zero distance.
    cases = [(f"distance={d:,}, window={W:,}", (d, W), _ceil_div(d, W - 1))
             for d, W in [(13, 4), (131_040, 1024), (100, 11), (1_000, 17), (131_072, 4096), (131_040, 4096),
                          (4096, 4096), (4095, 4096), (1, 2), (0, 4)]]
    check_cases("layers_needed(distance, window)", fn, cases, compare=_count_difference,
                mistakes=LAYERS_MISTAKES,
                hint="how far back do L layers reach? Look for the smallest L for which that is at least "
                     "the distance, and check your answer on distance 3 with W = 4 by hand.")
