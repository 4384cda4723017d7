"""Comparing a learner's result with the expected one: None for a match, else the lines saying what differs.

- ``tensor_difference``: shape, largest difference, first wrong position (``loose_difference`` allows for
  float32 rounding in sin, cos and powers);
- ``value_difference``: numbers, None, and lists or tuples of them (tensors and numpy values are turned into
  plain python first);
- ``number_difference`` / ``int_difference``: one number, the latter insisting on a whole one;
- ``describe``: what a value is (type, shape, dtype), for messages about a result of the wrong kind.

None of them raises on a result of the wrong type: they say what they expected instead.
"""

from __future__ import annotations

import torch


def describe(value: object) -> str:
    """``"a torch.Tensor of shape (3, 4), dtype torch.bool"``, ``"a list of 5 items"``, ``"int 7"``..."""
    if isinstance(value, torch.Tensor):
        return f"a torch.Tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy
        return f"a {type(value).__module__}.{type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return f"{type(value).__name__} {value!r}"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------------------------
# comparisons: None for a match, else the lines saying what differs
# ---------------------------------------------------------------------------------------------------------


def _position(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def tensor_difference(got, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None if ``got`` matches ``expected``; otherwise one or more lines saying how they differ.

    Float tensors match within ``atol + rtol * |expected|``; integer and bool tensors must be equal.
    """
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of shape {tuple(expected.shape)}, got {describe(got)}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"shape: got {tuple(got.shape)}, expected {tuple(expected.shape)}"
    got, expected = got.detach().cpu(), expected.detach().cpu()
    if expected.dtype == torch.bool or not expected.dtype.is_floating_point:
        if got.dtype.is_floating_point and expected.dtype != torch.bool:
            got = got.round()
        wrong = got.to(expected.dtype) != expected
        if not wrong.any():
            return None
        first = tuple(int(i) for i in wrong.nonzero()[0])
        return (f"{int(wrong.sum())} of {wrong.numel()} entries differ\n"
                f"first wrong position {_position(first)}: got {got[first].item()}, "
                f"expected {expected[first].item()}")
    if not got.dtype.is_floating_point:
        got = got.to(expected.dtype)
    got, expected = got.double(), expected.double()
    nan_differs = torch.isnan(got) != torch.isnan(expected)  # a NaN matches only a NaN
    if nan_differs.any():
        first = tuple(int(i) for i in nan_differs.nonzero()[0])
        what = "got NaN" if torch.isnan(got[first]) else "got a number where NaN was expected"
        return f"{what}, first at position {_position(first)}"
    diff = (got - expected).nan_to_num(nan=0.0).abs()  # [same shape]; NaN positions agree by now
    wrong = diff > atol + rtol * expected.abs()
    if not wrong.any():
        return None
    first = tuple(int(i) for i in wrong.nonzero()[0])
    return (f"max difference {diff.max().item():.4g} ({int(wrong.sum())} of {wrong.numel()} entries off)\n"
            f"first wrong position {_position(first)}: got {got[first].item():.6g}, "
            f"expected {expected[first].item():.6g}")


def loose_difference(got, expected: torch.Tensor) -> str | None:
    """``tensor_difference`` with room for float32 rounding in sin, cos and powers (atol 1e-4)."""
    return tensor_difference(got, expected, atol=1e-4, rtol=1e-4)


def matches(got, candidate: torch.Tensor) -> bool:
    """Does ``got`` equal ``candidate``? (Used to recognise a classic mistake.)"""
    return isinstance(got, torch.Tensor) and tensor_difference(got, candidate) is None


def _plain(x):
    """Tensors, numpy values, tuples -> plain python lists and numbers, so that results compare with ==."""
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item") and hasattr(x, "dtype"):  # a numpy scalar or array
        return x.tolist()
    return x


def _short(values: list, limit: int = 12) -> str:
    return str(values) if len(values) <= limit else str(values[:limit])[:-1] + ", ...]"


def value_difference(got, expected) -> str | None:
    """None if ``got`` equals ``expected`` (numbers, strings, None, lists or tuples of them), else what differs."""
    g, e = _plain(got), _plain(expected)
    if g == e:
        return None
    if isinstance(e, list):
        if not isinstance(g, list):
            return f"expected a list or tuple like {_short(e)}, got {got!r}"
        if len(g) != len(e):
            return f"length: got {len(g)}, expected {len(e)}\ngot      {_short(g)}\nexpected {_short(e)}"
        first = next(i for i, (a, b) in enumerate(zip(g, e, strict=True)) if a != b)
        return (f"first wrong position [{first}]: got {g[first]!r}, expected {e[first]!r}\n"
                f"got      {_short(g)}\nexpected {_short(e)}")
    return f"got {g!r}, expected {e!r}"


def number_difference(got, expected: float, rel: float = 1e-9) -> str | None:
    """None if the number ``got`` equals ``expected`` (to relative precision ``rel``), else a message.

    One-element tensors and numpy numbers count as numbers: a right answer computed with either passes.
    """
    if (isinstance(got, torch.Tensor) and got.numel() == 1) or (hasattr(got, "item") and getattr(got, "size", 0) == 1):
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return f"expected one number, got {describe(got)}"
    if abs(got - expected) <= rel * max(1.0, abs(expected)):
        return None
    return f"got {got:,}, expected {expected:,} (off by {got - expected:+,})"


def int_difference(got, expected: int) -> str | None:
    """Like ``number_difference`` but insists on a whole number (bytes, parameters, sequences)."""
    if isinstance(got, float) and got.is_integer():
        got = int(got)
    if isinstance(got, float):
        return f"expected a whole number, got {got!r}"
    return number_difference(got, expected, rel=0)
