"""Checks of notebook 02 (rotary embeddings): RoPE itself, Hugging Face's row layout, the wavelengths."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...hf import permute_rope_rows, unpermute_rope_rows
from ...rope import apply_rope, rope_angles, rope_frequencies
from .checking import check_cases
from .compare import loose_difference, matches

__all__ = ["check_rope", "check_half_split", "check_wavelengths"]


def check_rope(fn: Callable) -> None:
    """``fn(x, positions, theta) -> Tensor``: interleaved RoPE of x [B, T, H, D], equal to ``rope.apply_rope``."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for label, shape, start, theta in [("x (1, 6, 2, 8), positions 0..5", (1, 6, 2, 8), 0, 10000.0),
                                       ("x (2, 4, 3, 16), positions 100..103", (2, 4, 3, 16), 100, 10000.0),
                                       ("theta = 1e6", (1, 5, 1, 8), 7, 1e6)]:
        x = torch.randn(*shape, generator=g)
        positions = torch.arange(start, start + shape[1])
        cos, sin = rope_angles(positions, shape[-1], theta)
        cases.append((label, (x, positions, theta), apply_rope(x, cos, sin)))

    def diagnose(args, got):
        x, positions, theta = args
        cos, sin = rope_angles(positions, x.shape[-1], theta)
        if matches(got, apply_rope(x, cos, -sin)):
            return "you rotate the wrong way: the new first feature is x0*cos - x1*sin, the second x0*sin + x1*cos."
        half = x.shape[-1] // 2
        c, s = torch.cat((cos, cos), -1)[:, None], torch.cat((sin, sin), -1)[:, None]  # [T, 1, D]
        rotated_half = torch.cat((-x[..., half:], x[..., :half]), -1)  # [B, T, H, D]
        if matches(got, x * c + rotated_half * s):
            return "that is Hugging Face's half-split layout; here pairs are neighbours (x[2k], x[2k+1])."
        return None

    check_cases("rope(x, positions, theta)", fn, cases, diagnose=diagnose, compare=loose_difference,
                hint="pair k is (x[..., 2k], x[..., 2k+1]); rotate it by position * theta ** (-2k / D).")


def check_half_split(fn: Callable) -> None:
    """``fn(w, n_heads) -> Tensor``: rows of wq/wk from Mistral's interleaved layout to Hugging Face's."""
    w = torch.arange(32 * 3, dtype=torch.float32).view(32, 3)
    cases = [(f"w (32, 3), {n} head{'s' if n > 1 else ''}", (w, n), permute_rope_rows(w, n)) for n in (1, 2, 4)]

    def diagnose(args, got):
        w, n = args
        if matches(got, unpermute_rope_rows(w, n)):
            return "that is the inverse permutation (half-split -> interleaved)."
        if n > 1 and matches(got, permute_rope_rows(w, 1)):
            return "permute within each head: the rows are n_heads blocks of head_dim rows."
        return None

    check_cases("half_split(w, n_heads)", fn, cases, diagnose=diagnose,
                hint="within a head, row 2k goes to row k and row 2k+1 to row k + D/2: view the rows as "
                     "(n_heads, D/2, 2), swap the last two axes, flatten back.")


def check_wavelengths(fn: Callable) -> None:
    """``fn(head_dim, theta) -> Tensor [D/2]``: positions it takes pair k to turn once, 2 pi / freq_k."""
    cases = [(f"head_dim={d}, theta={t:g}", (d, t), 2 * torch.pi / rope_frequencies(d, t))
             for d, t in [(8, 10000.0), (128, 10000.0), (128, 1e6)]]
    check_cases("wavelengths(head_dim, theta)", fn, cases, compare=loose_difference,
                hint="freq_k = theta ** (-2k / head_dim) for k = 0 .. head_dim/2 - 1; one turn is 2 pi.")
