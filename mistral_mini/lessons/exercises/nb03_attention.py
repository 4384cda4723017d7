"""Checks of notebook 03 (attention and masks): the sliding-window mask, masked attention, its cost."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...attention import attention_reference
from ...masks import causal_mask, sliding_window_mask
from .compare import check_cases, matches, number_difference


def check_window_mask(fn: Callable) -> None:
    """``fn(T, W) -> bool Tensor [T, T]``: True where query i may see key j, ``0 <= i - j < W``."""
    cases = []
    for T, W in [(6, 3), (10, 1), (5, 8), (12, 4)]:
        pos = torch.arange(T)
        cases.append((f"T={T}, W={W}", (T, W), sliding_window_mask(pos, pos, W)))

    def diagnose(args, got):
        T, W = args
        pos = torch.arange(T)
        if matches(got, sliding_window_mask(pos, pos, W + 1)):
            return "off by one: your window holds W + 1 keys. It holds W, the query's own included: i - j < W."
        if matches(got, sliding_window_mask(pos, pos, W).T):
            return "rows are queries i, columns keys j: mask[i, j], with j <= i."
        if matches(got, causal_mask(pos, pos)):
            return "that is the causal mask; add the window's condition i - j < W."
        return None

    check_cases("window_mask(T, W)", fn, cases, diagnose=diagnose,
                hint="offset = i - j from two aranges (one as a column, one as a row); keep 0 <= offset < W.")


def check_attention(fn: Callable) -> None:
    """``fn(q, k, v, mask) -> Tensor [T, D]``: single-head masked attention with an explicit softmax."""
    g = torch.Generator().manual_seed(4)
    cases = []
    for T, D, W in [(5, 8, 5), (9, 4, 3), (7, 16, 1)]:
        q, k, v = (torch.randn(T, D, generator=g) for _ in range(3))
        pos = torch.arange(T)
        mask = sliding_window_mask(pos, pos, W)
        expected = attention_reference(q[None, None], k[None, None], v[None, None], mask)[0, 0]  # [T, D]
        cases.append((f"T={T}, D={D}, W={W}", (q, k, v, mask), expected))

    def diagnose(args, got):
        q, k, v, mask = args
        scores = (q @ k.T).masked_fill(~mask, float("-inf"))  # [T, T]
        if matches(got, torch.softmax(scores, -1) @ v):
            return "divide the scores by sqrt(D) before the softmax."
        scaled = scores / q.shape[-1] ** 0.5
        if matches(got, torch.softmax(scaled.nan_to_num(neginf=-1e9), 0) @ v):
            return "softmax over the keys (the last axis): each query's weights must sum to 1."
        if matches(got, torch.softmax(q @ k.T / q.shape[-1] ** 0.5, -1) @ v):
            return "apply the mask: set masked scores to -inf before the softmax."
        return None

    check_cases("attention(q, k, v, mask)", fn, cases, diagnose=diagnose,
                hint="scores = q @ k.T / sqrt(D); masked scores -> -inf; softmax over the last axis; @ v.")


def check_allowed_pairs(fn: Callable) -> None:
    """``fn(T, W) -> int``: how many (query, key) pairs the sliding-window mask allows."""
    cases = []
    for T, W in [(6, 3), (10, 1), (5, 8), (4096, 4096), (32768, 4096)]:
        pos = torch.arange(min(T, 64))
        expected = sum(min(i + 1, W) for i in range(T)) if T > 64 else int(sliding_window_mask(pos, pos, W).sum())
        cases.append((f"T={T}, W={W}", (T, W), expected))

    def diagnose(args, got):
        T, W = args
        if got == T * W:
            return "the first W - 1 queries see fewer than W keys: query i sees min(i + 1, W)."
        return None

    check_cases("allowed_pairs(T, W)", fn, cases, compare=number_difference, diagnose=diagnose,
                hint="query i sees min(i + 1, W) keys; sum over i.")
