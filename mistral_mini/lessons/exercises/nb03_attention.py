"""Checks of notebook 03 (attention and masks): the window built from triangles, repairing a broken
attention, and how many scores a window needs.

Shapes: T tokens, Tq queries, Tk keys, D head size, W window.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from ...attention import attention_reference
from ...masks import sliding_window_mask
from .checking import check_cases
from .compare import int_difference

__all__ = ["check_window_from_triangles", "check_attention", "check_allowed_pairs"]


def _window(T: int, W: int, transform=lambda offset, W: (offset >= 0) & (offset < W)) -> torch.Tensor:
    pos = torch.arange(T)
    return transform(pos[:, None] - pos[None, :], W)  # [T, T] from offsets i - j


# What a learner who makes each classic mistake returns, and the name the check gives it.
WINDOW_MISTAKES = [
    ("off by one: your window holds W + 1 keys (i - j <= W, the paper's 'positions between i - W and i' "
     "with both ends included). Mistral's holds W, the query's own key included.",
     lambda T, W: _window(T, W + 1)),
    ("off by one: your window holds W - 1 keys. Mistral's holds W, the query's own key included.",
     lambda T, W: _window(T, W - 1)),
    ("rows and columns swapped: mask[i, j] is query i (row) looking at key j (column), so j <= i.",
     lambda T, W: _window(T, W).T),
    ("that is the causal mask alone: the window's second condition, on how far back j lies, is missing.",
     lambda T, W: _window(T, W, lambda o, W: o >= 0)),
    ("the window excludes the query itself (0 < i - j): a token always sees its own key.",
     lambda T, W: _window(T, W, lambda o, W: (o > 0) & (o <= W))),
]

# Typical sizes first; W = 1 and W >= T (where some mistakes give the right answer) last.
WINDOW_SIZES = [(6, 3), (12, 4), (10, 1), (5, 8)]


def check_window_from_triangles(fn: Callable) -> None:
    """``fn(T, W) -> bool Tensor [T, T]``: Mistral's window, built from ``tril`` and ``triu`` (no arange)."""
    cases = [(f"T={T}, W={W}", (T, W), _window(T, W)) for T, W in WINDOW_SIZES]
    check_cases("window_from_triangles(T, W)", fn, cases, mistakes=WINDOW_MISTAKES, forbidden=["torch.arange"],
                hint="print torch.triu(torch.ones(6, 6), diagonal=d) for a few d: which offsets i - j does "
                     "each diagonal keep? Then pick the two triangles whose overlap is the window.")


# ---------------------------------------------------------------------------------------------------------
# repairing a broken attention
# ---------------------------------------------------------------------------------------------------------


def _attention(q, k, v, mask, scale="sqrt", hidden=float("-inf"), shift=True, axis=-1, masked=True,
               shift_axis=-1):
    """Single-head attention with an explicit softmax, and the switches that the classic mistakes flip."""
    divisor = {"sqrt": q.shape[-1] ** 0.5, "D": q.shape[-1], "none": 1.0}[scale]
    scores = q @ k.T / divisor  # [Tq, Tk]
    if masked:
        scores = scores.masked_fill(~mask, hidden)
    if shift:  # subtracting the largest score keeps exp() from overflowing; it cancels in the ratio
        scores = scores - scores.max(dim=shift_axis, keepdim=True).values
    e = scores.exp()
    return e / e.sum(dim=axis, keepdim=True) @ v  # [Tq, D]


# The four bugs of the notebook's buggy_attention: what each one is called, and the switch that makes it.
BUGS = [
    ("the scale: the scores are divided by D, where section 1 divides by sqrt(D)", {"scale": "D"}),
    ("hidden scores: a hidden score set to 0 still gets weight e^0 = 1; it must end with weight exactly 0",
     {"hidden": 0.0}),
    ("overflow: with large scores exp() returns inf and the weights become NaN (section 1's softmax shows "
     "what protects it)", {"shift": False}),
    ("the softmax axis: the weights are normalised over the queries; each query's weights over the keys "
     "must sum to 1", {"axis": 0}),
]


def _with_bugs(switches: dict) -> Callable:
    return lambda q, k, v, m: _attention(q, k, v, m, **switches)


def _bug_mistakes() -> list[tuple[str, Callable]]:
    """One mistake per set of bugs still in the learner's answer, fewest bugs first."""
    mistakes = []
    for n in range(1, len(BUGS) + 1):
        for subset in itertools.combinations(BUGS, n):
            switches = {key: value for _, bug in subset for key, value in bug.items()}
            if n == len(BUGS):
                says = "that is buggy_attention unchanged: all four bugs are still there."
            else:
                says = f"{n} bug{'s' if n > 1 else ''} left: " + "; ".join(name for name, _ in subset) + "."
            mistakes.append((says, _with_bugs(switches)))
            if switches.get("axis") == 0 and switches.get("shift", True):  # the maximum taken either way
                mistakes.append((says, _with_bugs({**switches, "shift_axis": 0})))
    return mistakes


ATTENTION_MISTAKES = [
    *_bug_mistakes(),
    ("the 1/sqrt(D) scaling is missing altogether: section 1 says what the scores are divided by, and why.",
     _with_bugs({"scale": "none"})),
    ("the mask is not applied: hidden scores must end with weight exactly 0.", _with_bugs({"masked": False})),
    ("the mask is inverted: True means 'may see', so the scores where the mask is False are hidden.",
     lambda q, k, v, m: _attention(q, k, v, ~m | torch.eye(*m.shape, dtype=torch.bool))),
]

# The exercise asks for the softmax written out: these raise while the learner's code runs.
SOFTMAXES = ["torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", "torch.special.softmax",
             "torch.nn.functional.scaled_dot_product_attention"]


def _attention_case(g: torch.Generator, q_pos: torch.Tensor, k_pos: torch.Tensor, D: int, W: int,
                    loud: float = 1.0) -> tuple[str, tuple, torch.Tensor]:
    q = loud * torch.randn(len(q_pos), D, generator=g)  # [Tq, D]
    k, v = torch.randn(len(k_pos), D, generator=g), torch.randn(len(k_pos), D, generator=g)  # [Tk, D]
    mask = sliding_window_mask(q_pos, k_pos, W)  # [Tq, Tk]
    expected = attention_reference(q[None, None], k[None, None], v[None, None], mask)[0, 0]  # [Tq, D]
    label = (f"queries at {int(q_pos[0])}..{int(q_pos[-1])}, keys at {int(k_pos[0])}..{int(k_pos[-1])}, D={D}, W={W}"
             + (f", queries x {loud:g} (large scores)" if loud != 1 else ""))
    return label, (q, k, v, mask), expected


def check_attention(fn: Callable) -> None:
    """``fn(q, k, v, mask) -> Tensor [Tq, D]``: single-head masked attention with an explicit softmax."""
    g = torch.Generator().manual_seed(4)
    r = torch.arange
    # A full pass, a chunk of queries against the keys before it, then large scores (exp overflows there).
    cases = [_attention_case(g, r(9), r(9), D=4, W=3), _attention_case(g, r(10, 14), r(4, 14), D=8, W=4),
             _attention_case(g, r(7), r(7), D=16, W=7), _attention_case(g, r(6), r(6), D=4, W=3, loud=1000.0)]
    check_cases("attention(q, k, v, mask)", fn, cases, mistakes=ATTENTION_MISTAKES,
                forbidden=SOFTMAXES,
                hint="take the steps of section 4 one at a time (scores, scale, mask, softmax, weighted sum) "
                     "and compare each intermediate result with the cells above on the same small input.")


# ---------------------------------------------------------------------------------------------------------
# counting the scores a window needs
# ---------------------------------------------------------------------------------------------------------


def _pairs(T: int, W: int) -> int:
    """Row by row: query i sees the min(i + 1, W) keys from max(0, i - W + 1) to i."""
    return sum(min(i + 1, W) for i in range(T))


def check_allowed_pairs(fn: Callable) -> None:
    """``fn(T, W) -> int``: how many (query, key) pairs the sliding-window mask allows.

    Tested on T up to 4,096, so that summing Exercise 1's [T, T] mask (16 MiB) works as well as a formula.
    """
    cases = [(f"T={T}, W={W}", (T, W), _pairs(T, W)) for T, W in [(10, 3), (4096, 128), (5, 8), (6, 1)]]
    mistakes = [
        ("every query counted with W keys: the first W - 1 queries have fewer keys before them.",
         lambda T, W: T * W),
        ("your count is right when T >= W, not when the text is shorter than the window: then no query "
         "reaches the window's limit.", lambda T, W: T * W - W * (W - 1) // 2),
        ("off by one: that counts W + 1 keys per query (i - j <= W, the paper's reading).",
         lambda T, W: _pairs(T, W + 1)),
        ("off by one: that counts W - 1 keys per query; a query's window includes its own key.",
         lambda T, W: _pairs(T, W - 1)),
        ("that is the causal count: the window's limit is missing.", lambda T, W: T * (T + 1) // 2),
    ]
    check_cases("allowed_pairs(T, W)", fn, cases, compare=int_difference, mistakes=mistakes,
                hint="count row by row: how many keys does query i see, for i < W and for i >= W?")
