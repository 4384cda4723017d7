"""Notebook 02's checks: RoPE with positions per sequence, moving rotated vectors by an offset, the half-split
permutation, slow pairs. Each passes a right answer written independently of the package, names each classic
mistake, and never crashes on a wrong type."""

import math

import pytest
import torch

from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might (complex numbers here, pairs in the notebook)
# ---------------------------------------------------------------------------------------------------------


def _turn(x, angle):
    """Rotate the interleaved pairs of x [..., D] by angle [..., D/2] (broadcast), via complex numbers."""
    z = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())  # [..., D/2]
    return torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).flatten(-2)


def _speeds(D, theta, exponent=2):
    return 1.0 / theta ** (exponent * torch.arange(D // 2, dtype=torch.float64) / D)


def rope_per_sequence(x, positions, theta):
    angle = positions.double()[..., None] * _speeds(x.shape[-1], theta)  # [B, T, D/2]
    return _turn(x, angle[:, :, None].float())  # [B, T, 1, D/2]: every head alike


def move_by(x_rot, offset, theta):
    return _turn(x_rot, (offset * _speeds(x_rot.shape[-1], theta)).float())


def half_split(w, n_heads):
    rows = w.shape[0]
    D = rows // n_heads
    order = [h * D + 2 * k + half for h in range(n_heads) for half in (0, 1) for k in range(D // 2)]
    return w[order]


def slow_pairs(head_dim, theta, context):
    return sum(2 * math.pi * theta ** (2 * k / head_dim) > context for k in range(head_dim // 2))


RIGHT = [(ex.check_rope_per_sequence, rope_per_sequence), (ex.check_move_by, move_by),
         (ex.check_half_split, half_split), (ex.check_slow_pairs, slow_pairs)]
IDS = [c.__name__ for c, _ in RIGHT]


@pytest.mark.parametrize("check, answer", RIGHT, ids=IDS)
def test_right_answer_passes(check, answer, capsys):
    assert_check_passes(check, answer, capsys)


# ---------------------------------------------------------------------------------------------------------
# RoPE with a row of positions per sequence
# ---------------------------------------------------------------------------------------------------------


def _half_split_rope(x, positions, theta, sign=1.0):
    D = x.shape[-1]
    angle = sign * positions.double()[..., None, None] * _speeds(D, theta)  # [B, T, 1, D/2] (or [T, 1, D/2])
    cos, sin = torch.cat([angle.cos()] * 2, -1).float(), torch.cat([angle.sin()] * 2, -1).float()
    rotated_half = torch.cat((-x[..., D // 2:], x[..., : D // 2]), -1)
    return x * cos + rotated_half * sin


ROPE_MISTAKES = {
    "backwards": (lambda x, p, t: rope_per_sequence(x, -p, t), "mistake: you rotate the wrong way"),
    "half-split": (_half_split_rope, "mistake: that is Hugging Face's half-split layout"),
    "positions unused": (lambda x, p, t: rope_per_sequence(x, torch.arange(x.shape[1]).expand(x.shape[:2]), t),
                         "mistake: the positions are not used"),
    "first row only": (lambda x, p, t: rope_per_sequence(x, p[:1].expand(x.shape[:2]), t),
                       "mistake: every sequence got the first sequence's positions"),
    "k / D": (lambda x, p, t: _turn(x, (p.double()[..., None] * _speeds(x.shape[-1], t, 1))[:, :, None].float()),
              "mistake: the speeds are off"),
}


@pytest.mark.parametrize("name", ROPE_MISTAKES)
def test_rope_mistake_is_named(name, capsys):
    wrong, says = ROPE_MISTAKES[name]
    assert_check_fails(ex.check_rope_per_sequence, wrong, [says], capsys)


def test_rope_for_one_row_of_positions_fails_with_the_hint(capsys):
    # The notebook's rope, [T] positions, given [B, T]: angle [B, 1, T, D/2] cannot broadcast (or is wrong).
    def one_row(x, positions, theta):
        D = x.shape[-1]
        angle = positions.float()[:, None, None] * theta ** (-torch.arange(0, D, 2).float() / D)  # [B?, 1, D/2]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * angle.cos() - x1 * angle.sin(), x0 * angle.sin() + x1 * angle.cos()), -1).flatten(-2)

    status, out = verdict(ex.check_rope_per_sequence, one_row, capsys)
    assert status == "fail" and ("your code raised RuntimeError" in out or "shape:" in out), out


def test_rope_wrong_types(capsys):
    assert_check_fails(ex.check_rope_per_sequence, lambda x, p, t: x.numpy(),
                       ["expected a torch.Tensor of shape (2, 5, 2, 8), got a numpy.ndarray"], capsys)
    assert_check_fails(ex.check_rope_per_sequence, lambda x, p, t: x[0],
                       ["shape: got (5, 2, 8), expected (2, 5, 2, 8)"], capsys)


def test_ignoring_positions_used_to_pass_a_case_and_now_fails_them(capsys):
    assert_check_fails(ex.check_rope_per_sequence, ROPE_MISTAKES["positions unused"][0],
                       ["3 of 4 cases differ"], capsys)


# ---------------------------------------------------------------------------------------------------------
# moving rotated vectors by an offset
# ---------------------------------------------------------------------------------------------------------


def _rope_at(x, positions, theta, layout="interleaved"):
    if layout == "half-split":
        return _half_split_rope(x, positions, theta)
    return _turn(x, (positions.double()[:, None] * _speeds(x.shape[-1], theta))[:, None].float())


MOVE_MISTAKES = {
    "backwards": (lambda x, o, t: move_by(x, -o, t), "mistake: that moves them back"),
    "offset as a start": (lambda x, o, t: _rope_at(x, o + torch.arange(x.shape[1]), t),
                          "mistake: the offset was used as a start position"),
    "not moved": (lambda x, o, t: x.clone(), "mistake: the vectors did not move"),
    "from scratch": (lambda x, o, t: _rope_at(x, torch.arange(x.shape[1]), t),
                     "mistake: the vectors were rotated from scratch"),
    "half-split": (lambda x, o, t: _rope_at(x, torch.full((x.shape[1],), o), t, "half-split"),
                   "mistake: that is Hugging Face's half-split layout"),
    "k / D": (lambda x, o, t: _turn(x, (o * _speeds(x.shape[-1], t, 1)).float()), "mistake: the speeds are off"),
}


@pytest.mark.parametrize("name", MOVE_MISTAKES)
def test_move_mistake_is_named(name, capsys):
    wrong, says = MOVE_MISTAKES[name]
    assert_check_fails(ex.check_move_by, wrong, [says], capsys)


def test_move_wrong_types(capsys):
    assert_check_fails(ex.check_move_by, lambda x, o, t: float(o), ["expected a torch.Tensor", "got float 3.0"],
                       capsys)
    assert_check_fails(ex.check_move_by, lambda x, o, t: x + torch.zeros(3),
                       ["your code raised RuntimeError"], capsys)


# ---------------------------------------------------------------------------------------------------------
# the half-split permutation
# ---------------------------------------------------------------------------------------------------------


def _inverse(w, n):
    rows, cols = w.shape
    return w.view(n, 2, rows // n // 2, cols).transpose(1, 2).reshape(rows, cols)


HALF_SPLIT_MISTAKES = {
    "inverse": (_inverse, "mistake: that is the inverse permutation"),
    "whole matrix": (lambda w, n: half_split(w, 1), "mistake: the rows were permuted across the whole matrix"),
    "halves swapped": (lambda w, n: half_split(w, n).view(n, 2, -1, w.shape[1]).flip(1).reshape(w.shape),
                       "mistake: the two halves are swapped"),
}


@pytest.mark.parametrize("name", HALF_SPLIT_MISTAKES)
def test_half_split_mistake_is_named(name, capsys):
    wrong, says = HALF_SPLIT_MISTAKES[name]
    assert_check_fails(ex.check_half_split, wrong, [says], capsys)


def test_half_split_hint_names_no_recipe(capsys):
    status, out = verdict(ex.check_half_split, lambda w, n: w.flip(0), capsys)
    assert status == "fail" and "hint: number the rows" in out
    assert "transpose" not in out and "view" not in out


def test_half_split_columns_instead_of_rows(capsys):
    assert_check_fails(ex.check_half_split, lambda w, n: half_split(w.T, n).T,
                       ["shape: got (48, 0), expected (48, 3)"], capsys)


# ---------------------------------------------------------------------------------------------------------
# slow pairs
# ---------------------------------------------------------------------------------------------------------


SLOW_MISTAKES = {
    "no 2 pi": (lambda d, t, c: sum(t ** (2 * k / d) > c for k in range(d // 2)),
                "mistake: one full turn is 2 pi radians"),
    "the other pairs": (lambda d, t, c: d // 2 - slow_pairs(d, t, c),
                        "mistake: that counts the pairs that DO complete a turn"),
    "k / D": (lambda d, t, c: sum(2 * math.pi * t ** (k / d) > c for k in range(d // 2)),
              "mistake: the speeds are off"),
}


@pytest.mark.parametrize("name", SLOW_MISTAKES)
def test_slow_pairs_mistake_is_named(name, capsys):
    wrong, says = SLOW_MISTAKES[name]
    assert_check_fails(ex.check_slow_pairs, wrong, [says], capsys)


def test_slow_pairs_wrong_types(capsys):
    assert_check_fails(ex.check_slow_pairs, lambda d, t, c: torch.ones(d // 2),
                       ["expected one number, got a torch.Tensor of shape (64,)"], capsys)
    assert_check_fails(ex.check_slow_pairs, lambda d, t, c: 17.5, ["expected a whole number, got 17.5"], capsys)


def test_slow_pairs_accepts_a_one_element_tensor(capsys):
    assert_check_passes(ex.check_slow_pairs, lambda d, t, c: torch.tensor(slow_pairs(d, t, c)), capsys)
