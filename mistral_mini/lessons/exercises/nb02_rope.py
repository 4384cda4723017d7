"""Checks of notebook 02 (rotary embeddings): RoPE with positions per sequence, moving rotated vectors by an
offset, Hugging Face's row layout, and which pairs turn less than once over a context."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...hf import permute_rope_rows, unpermute_rope_rows
from ...rope import apply_rope, rope_angles, rope_frequencies
from .checking import check_cases
from .compare import int_difference, loose_difference

__all__ = ["check_rope_per_sequence", "check_move_by", "check_half_split", "check_slow_pairs"]

# Shapes: B batch, T tokens, H heads, D head_dim.


def _rope(x, positions, theta, direction=1.0, layout="interleaved", exponent=2.0):
    """RoPE of x [B, T, H, D] at positions [B, T] (or [T]), with the switches the classic mistakes flip."""
    D = x.shape[-1]
    positions = positions.expand(x.shape[:2]).float()  # [B, T]
    speeds = theta ** (-exponent * torch.arange(D // 2).float() / D)  # [D/2]
    angle = direction * positions[..., None, None] * speeds  # [B, T, 1, D/2]: the same angle for every head
    cos, sin = angle.cos(), angle.sin()
    if layout == "half-split":  # Hugging Face pairs x[k] with x[k + D/2]
        x0, x1 = x[..., : D // 2], x[..., D // 2:]  # [B, T, H, D/2] each
        return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)  # [B, T, H, D]
    x0, x1 = x[..., 0::2], x[..., 1::2]  # [B, T, H, D/2] each
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)  # [B, T, H, D]


def _reference(x, positions, theta):
    """The package's apply_rope, one sequence at a time (it takes one row of positions)."""
    return torch.cat([apply_rope(x[b: b + 1], *rope_angles(positions[b], x.shape[-1], theta))
                      for b in range(x.shape[0])])  # [B, T, H, D]


# Wrong turns that both exercises can make; each function takes (x, positions [B, T], theta).
BACKWARDS = "you rotate the wrong way: a positive angle turns (1, 0) towards (0, 1), as rotate_pair does."
HALF_SPLIT = "that is Hugging Face's half-split layout; Mistral's pairs are neighbours, (x[2k], x[2k+1])."
SPEEDS = "the speeds are off: pair k turns at theta ** (-2k / D), with k counting pairs, not features."

ROPE_MISTAKES = [
    (BACKWARDS, lambda x, p, t: _rope(x, p, t, direction=-1.0)),
    (HALF_SPLIT, lambda x, p, t: _rope(x, p, t, layout="half-split")),
    ("the positions are not used: every sequence was rotated as if it sat at 0, 1, ..., T-1.",
     lambda x, p, t: _rope(x, torch.arange(x.shape[1]), t)),
    ("every sequence got the first sequence's positions: each row of `positions` belongs to its own sequence.",
     lambda x, p, t: _rope(x, p[0], t)),
    (SPEEDS, lambda x, p, t: _rope(x, p, t, exponent=1.0)),
]


def check_rope_per_sequence(fn: Callable) -> None:
    """``fn(x, positions, theta) -> Tensor``: interleaved RoPE of x [B, T, H, D], positions [B, T] per sequence."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for label, shape, positions, theta in [
        ("x (2, 5, 2, 8), positions [[0..4], [7..11]]", (2, 5, 2, 8),
         torch.stack([torch.arange(5), torch.arange(7, 12)]), 10000.0),
        ("x (3, 4, 3, 16), three sequences that continue at 100, 3 and 40", (3, 4, 3, 16),
         torch.tensor([100, 3, 40])[:, None] + torch.arange(4), 10000.0),  # [B, T]
        ("theta = 1e6, x (1, 6, 1, 8), positions 7..12", (1, 6, 1, 8), torch.arange(7, 13)[None], 1e6),
        ("x (2, 3, 1, 4), both sequences at 0, 1, 2", (2, 3, 1, 4), torch.arange(3).expand(2, 3), 10000.0),
    ]:
        x = torch.randn(*shape, generator=g)
        cases.append((label, (x, positions, theta), _reference(x, positions, theta)))
    check_cases("rope_per_sequence(x, positions, theta)", fn, cases, mistakes=ROPE_MISTAKES,
                compare=loose_difference,
                hint="print the shapes of your angle and of x: the angle must differ along the batch axis and "
                     "the token axis, be the same for every head, and pair up with (x[..., 2k], x[..., 2k+1]).")


MOVE_MISTAKES = [
    ("that moves them back: rotating by -offset puts each token offset positions earlier.",
     lambda x, o, t: _rope(x, torch.tensor(float(o)), t, direction=-1.0)),
    ("the offset was used as a start position: token t moved by offset + t. Every token moves by the same "
     "offset.", lambda x, o, t: _rope(x, o + torch.arange(x.shape[1]), t)),
    ("the vectors did not move: a rotation by offset positions is still needed.", lambda x, o, t: x),
    ("the vectors were rotated from scratch for 0, 1, ..., T-1: they are already rotated, and only the "
     "offset is missing.", lambda x, o, t: _rope(x, torch.arange(x.shape[1]), t)),
    (HALF_SPLIT, lambda x, o, t: _rope(x, torch.tensor(float(o)), t, layout="half-split")),
    (SPEEDS, lambda x, o, t: _rope(x, torch.tensor(float(o)), t, exponent=1.0)),
]


def check_move_by(fn: Callable) -> None:
    """``fn(x_rot, offset, theta) -> Tensor``: vectors already rotated at unknown positions, moved by ``offset``."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for label, shape, start, offset, theta in [
        ("x (1, 5, 2, 8) rotated at 0..4, offset 3", (1, 5, 2, 8), 0, 3, 10000.0),
        ("x (2, 4, 1, 16) rotated at 20..23, offset 250", (2, 4, 1, 16), 20, 250, 10000.0),
        ("theta = 1e6, x (1, 3, 2, 8) rotated at 9..11, offset -7", (1, 3, 2, 8), 9, -7, 1e6),
        ("x (1, 4, 1, 8) rotated at 5..8, offset 0", (1, 4, 1, 8), 5, 0, 10000.0),
    ]:
        x = torch.randn(*shape, generator=g)
        positions = torch.arange(start, start + shape[1])
        rotated = apply_rope(x, *rope_angles(positions, shape[-1], theta))
        expected = apply_rope(x, *rope_angles(positions + offset, shape[-1], theta))
        cases.append((label, (rotated, offset, theta), expected))
    check_cases("move_by(x_rot, offset, theta)", fn, cases, mistakes=MOVE_MISTAKES, compare=loose_difference,
                hint="you do not know where the vectors sit, so undoing their rotation is not possible: what do "
                     "two rotations of the same pair add up to?")


HALF_SPLIT_MISTAKES = [
    ("that is the inverse permutation (half-split -> interleaved).", unpermute_rope_rows),
    ("the rows were permuted across the whole matrix: permute within each head, one block of head_dim rows "
     "at a time.", lambda w, n: permute_rope_rows(w, 1)),
    ("the two halves are swapped: the first feature of each pair, rows 0, 2, 4, ..., goes to the first half.",
     lambda w, n: permute_rope_rows(w, n).view(n, 2, -1, w.shape[1]).flip(1).reshape(w.shape)),  # swap halves
]


def check_half_split(fn: Callable) -> None:
    """``fn(w, n_heads) -> Tensor``: rows of wq/wk from Mistral's interleaved layout to Hugging Face's."""
    w = torch.arange(48 * 3, dtype=torch.float32).view(48, 3)  # row r holds 3r, 3r+1, 3r+2
    cases = [(f"w (48, 3), {n} head{'s' if n > 1 else ''} of {48 // n} rows", (w, n), permute_rope_rows(w, n))
             for n in (2, 4, 3, 1)]  # one head last: there the whole-matrix mistake gives the right answer
    check_cases("half_split(w, n_heads)", fn, cases, mistakes=HALF_SPLIT_MISTAKES,
                hint="number the rows of one head 0 .. D-1 and write where each goes (the printout above, "
                     "for D = 8); then do the same inside every head.")


def _slow(head_dim, theta, context, turn=2 * math.pi, exponent=2.0, slower=True):
    """Pairs whose wavelength (positions per turn) exceeds ``context``, with the mistakes' switches."""
    speeds = theta ** (-exponent * torch.arange(head_dim // 2, dtype=torch.float64) / head_dim)  # [D/2]
    wavelengths = turn / speeds
    return int((wavelengths > context).sum()) if slower else int((wavelengths <= context).sum())


SLOW_MISTAKES = [
    ("one full turn is 2 pi radians, not 1: the wavelength is 2 pi / speed.",
     lambda d, t, c: _slow(d, t, c, turn=1.0)),
    ("that counts the pairs that DO complete a turn within the context.",
     lambda d, t, c: _slow(d, t, c, slower=False)),
    ("the speeds are off: pair k turns at theta ** (-2k / D), with k counting pairs, not features.",
     lambda d, t, c: _slow(d, t, c, exponent=1.0)),
]


def check_slow_pairs(fn: Callable) -> None:
    """``fn(head_dim, theta, context) -> int``: how many pairs turn less than once in ``context`` positions."""
    configs = [(128, 10000.0, 4096), (128, 1e6, 32768), (64, 10000.0, 512), (16, 10000.0, 100)]
    cases = [(f"head_dim={d}, theta={t:g}, context={c}", (d, t, c),
              int((2 * math.pi / rope_frequencies(d, t).double() > c).sum())) for d, t, c in configs]
    check_cases("slow_pairs(head_dim, theta, context)", fn, cases, compare=int_difference, mistakes=SLOW_MISTAKES,
                hint="compute every pair's wavelength, as in the table of section 2, and compare each with "
                     "the context.")
