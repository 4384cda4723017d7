"""Checks of notebook 00 (welcome): counting Mistral's parameters and the memory to run it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...memory import memory_plan
from ...transformer import TransformerBlock
from .checking import check_cases
from .compare import number_difference
from .models import MODELS, parameter_count

__all__ = ["check_block_parameters", "check_memory_needed"]


def check_block_parameters(fn: Callable) -> None:
    """``fn(args) -> int``: the parameters of one TransformerBlock (attention, feed-forward, two norms)."""
    cases = [(name, (args,), parameter_count(TransformerBlock, args)) for name, args in MODELS.items()]
    check_cases(
        "block_parameters(args)", fn, cases, compare=number_difference,
        hint="wq and wo are dim x (n_heads * head_dim), wk and wv dim x (n_kv_heads * head_dim); the "
             "feed-forward has three dim x hidden_dim matrices; each RMSNorm has dim weights; no biases.")


def check_memory_needed(fn: Callable) -> None:
    """``fn(args, dtype) -> int``: bytes to run one sequence: all the weights plus one rolling KV cache."""
    cases = [(f"{name} in {dtype}", (args, dtype), memory_plan(args, dtype).total_bytes)
             for name, args in MODELS.items() for dtype in (torch.bfloat16, torch.float32)]

    def diagnose(args, got):
        a, dtype = args
        if got == memory_plan(a, dtype).weights_bytes:
            return "add the rolling cache: 2 x n_layers x sliding_window x n_kv_heads x head_dim values."
        return None

    check_cases(
        "memory_needed(args, dtype)", fn, cases, compare=number_difference, diagnose=diagnose,
        hint="weights: every parameter x bytes per value (torch.tensor([], dtype=dtype).element_size()); "
             "cache: keys and values for sliding_window positions, every layer, n_kv_heads x head_dim each.")
