"""Checks of notebook 03 (attention and masks): the sliding-window mask, masked attention, its cost."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...attention import attention_reference
from .checking import check_cases
from .compare import number_difference

__all__ = ["check_window_mask", "check_attention", "check_allowed_pairs"]


def _window(T: int, W: int, transform=lambda offset, W: (offset >= 0) & (offset < W)) -> torch.Tensor:
    pos = torch.arange(T)
    return transform(pos[:, None] - pos[None, :], W)  # [T, T] from offsets i - j


# What a learner who makes each classic mistake returns, and the name the check gives it.
WINDOW_MISTAKES = [
    ("off by one: your window holds W + 1 keys (i - j <= W, the paper's wording). Mistral's holds W, "
     "the query's own key included.", lambda T, W: _window(T, W + 1)),
    ("rows and columns swapped: mask[i, j] is query i (row) looking at key j (column), so j <= i.",
     lambda T, W: _window(T, W).T),
    ("that is the causal mask alone: the window's second condition, on how far back j lies, is missing.",
     lambda T, W: _window(T, W, lambda o, W: o >= 0)),
    ("the window excludes the query itself (0 < i - j): a token always sees its own key.",
     lambda T, W: _window(T, W, lambda o, W: (o > 0) & (o <= W))),
]


def check_window_mask(fn: Callable) -> None:
    """``fn(T, W) -> bool Tensor [T, T]``: True where query i may see key j, ``0 <= i - j < W``."""
    # Typical sizes first; W = 1 and W >= T (where some mistakes give the right answer) last.
    cases = [(f"T={T}, W={W}", (T, W), _window(T, W)) for T, W in [(6, 3), (12, 4), (10, 1), (5, 8)]]
    check_cases("window_mask(T, W)", fn, cases, mistakes=WINDOW_MISTAKES,
                hint="write the offset i - j for every (query, key) pair, then keep the offsets the "
                     "definition above allows.")


def _attention(q, k, v, mask, scale=True, axis=-1, masked=True):
    """Single-head attention, with the switches that the classic mistakes flip."""
    scores = q @ k.T / (q.shape[-1] ** 0.5 if scale else 1.0)  # [T, T]
    if masked:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, axis).nan_to_num() @ v  # [T, D]


ATTENTION_MISTAKES = [
    ("the 1/sqrt(D) scaling is missing: divide the scores by sqrt(D) before the softmax.",
     lambda q, k, v, m: _attention(q, k, v, m, scale=False)),
    ("softmax over the wrong axis: each query's weights over the keys (the last axis) must sum to 1.",
     lambda q, k, v, m: _attention(q, k, v, m, axis=0)),
    ("the mask is not applied: hidden scores must become -inf before the softmax.",
     lambda q, k, v, m: _attention(q, k, v, m, masked=False)),
    ("the mask is inverted: True means 'may see', so the scores where the mask is False are hidden.",
     lambda q, k, v, m: _attention(q, k, v, ~m | torch.eye(len(m), dtype=torch.bool))),
]

# The exercise asks for the softmax written out: these raise while the learner's code runs.
SOFTMAXES = ["torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", "torch.special.softmax",
             "torch.nn.functional.scaled_dot_product_attention"]


def check_attention(fn: Callable) -> None:
    """``fn(q, k, v, mask) -> Tensor [T, D]``: single-head masked attention with an explicit softmax."""
    g = torch.Generator().manual_seed(4)
    cases = []
    for T, D, W in [(9, 4, 3), (5, 8, 5), (7, 16, 2)]:
        q, k, v = (torch.randn(T, D, generator=g) for _ in range(3))
        mask = _window(T, W)
        expected = attention_reference(q[None, None], k[None, None], v[None, None], mask)[0, 0]  # [T, D]
        cases.append((f"T={T}, D={D}, W={W}", (q, k, v, mask), expected))
    check_cases("attention(q, k, v, mask)", fn, cases, mistakes=ATTENTION_MISTAKES, forbidden=SOFTMAXES,
                hint="go through the four steps of section 4 one at a time and compare each with the "
                     "cells above: scores, scale, mask, softmax, weighted sum.")


def check_allowed_pairs(fn: Callable) -> None:
    """``fn(T, W) -> int``: how many (query, key) pairs the sliding-window mask allows.

    Tested on T up to 4,096, so that summing Exercise 1's [T, T] mask (16 MiB) works as well as a formula.
    """
    cases = [(f"T={T}, W={W}", (T, W), sum(min(i + 1, W) for i in range(T)))
             for T, W in [(10, 3), (4096, 128), (6, 1), (5, 8)]]
    mistakes = [
        ("every query counted with W keys: the first W - 1 queries have fewer keys before them "
         "(query i sees min(i + 1, W)).", lambda T, W: T * W),
        ("off by one: that counts W + 1 keys per query (i - j <= W).",
         lambda T, W: sum(min(i + 1, W + 1) for i in range(T))),
        ("that is the causal count T(T + 1)/2: the window's limit is missing.", lambda T, W: T * (T + 1) // 2),
    ]
    check_cases("allowed_pairs(T, W)", fn, cases, compare=number_difference, mistakes=mistakes,
                hint="count row by row: how many keys does query i see, for i < W and for i >= W?")
