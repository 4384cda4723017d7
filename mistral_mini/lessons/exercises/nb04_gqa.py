"""Checks of notebook 04 (grouped-query attention): sharing key/value heads, and what the cache saves."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...attention import repeat_kv
from ...config import ModelArgs
from .checking import check_cases
from .compare import matches, number_difference
from .models import MODELS

__all__ = ["check_repeat_kv", "check_kv_bytes_per_token", "check_kv_head_of"]


def check_repeat_kv(fn: Callable) -> None:
    """``fn(x, n_rep) -> Tensor``: [B, Hkv, T, D] -> [B, Hkv * n_rep, T, D], equal to ``attention.repeat_kv``."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for B, Hkv, T, D, n_rep in [(1, 2, 3, 4, 2), (2, 3, 5, 2, 4), (1, 4, 2, 3, 1)]:
        x = torch.randn(B, Hkv, T, D, generator=g)
        cases.append((f"x {(B, Hkv, T, D)}, n_rep={n_rep}", (x, n_rep), repeat_kv(x, n_rep)))

    def diagnose(args, got):
        x, n_rep = args
        if matches(got, x.repeat(1, n_rep, 1, 1)):
            return ("you tiled the heads (kv0, kv1, kv0, kv1); repeat each in place (kv0, kv0, kv1, kv1): "
                    "query head h reads key/value head h // n_rep.")
        return None

    check_cases("repeat_kv(x, n_rep)", fn, cases, diagnose=diagnose,
                hint="x[:, :, None] has a new axis after the heads: expand it to n_rep, then reshape.")


def check_kv_bytes_per_token(fn: Callable) -> None:
    """``fn(args, bytes_per_value) -> int``: KV cache bytes per token, all layers, keys and values."""
    seven_b = MODELS["Mistral 7B"]
    mha = ModelArgs(**{**seven_b.to_dict(), "n_kv_heads": seven_b.n_heads})
    cases = [(f"{name}, {nbytes} bytes per value", (args, nbytes),
              2 * args.n_layers * args.n_kv_heads * args.head_dim * nbytes)
             for name, args, nbytes in [("Mistral 7B", seven_b, 2), ("Mistral 7B with 32 KV heads", mha, 2),
                                        ("the tiny preset", MODELS["the tiny preset"], 4)]]

    def diagnose(args, got):
        a, nbytes = args
        if got == a.n_layers * a.n_kv_heads * a.head_dim * nbytes:
            return "count both the key and the value: x 2."
        if got == 2 * a.n_layers * a.n_heads * a.head_dim * nbytes:
            return "only the key/value heads are cached: n_kv_heads, not n_heads."
        return None

    check_cases("kv_bytes_per_token(args, bytes_per_value)", fn, cases, compare=number_difference,
                diagnose=diagnose, hint="2 (key and value) x n_layers x n_kv_heads x head_dim x bytes.")


def check_kv_head_of(fn: Callable) -> None:
    """``fn(query_head, n_heads, n_kv_heads) -> int``: the key/value head a query head reads."""
    cases = [(f"query head {h} of {H}, {Hkv} KV heads", (h, H, Hkv), h // (H // Hkv))
             for H, Hkv in [(32, 8), (8, 2), (8, 1), (4, 4)] for h in range(H)]

    def diagnose(args, got):
        h, H, Hkv = args
        if got == h % Hkv:
            return "neighbouring query heads share a KV head (h // n_rep), they do not take turns (h % n_kv_heads)."
        return None

    check_cases("kv_head_of(query_head, n_heads, n_kv_heads)", fn, cases, compare=number_difference,
                diagnose=diagnose, hint="n_rep = n_heads // n_kv_heads query heads share each KV head.")
