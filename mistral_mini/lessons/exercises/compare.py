"""What every check shares: run the learner's code, compare its result, and report PASS or FAIL alike.

A check builds a list of cases, each ``(label, args, expected)``, and hands it to ``check_cases`` with a
``compare(got, expected)`` that returns None for a match or the lines saying what differs:

- ``tensor_difference``: shape, largest difference, first wrong position (``loose_difference`` allows for
  float32 rounding in sin, cos and powers);
- ``value_difference``: numbers, None, and lists or tuples of them (tensors and numpy values are turned into
  plain python first);
- ``number_difference`` / ``int_difference``: one number, the latter insisting on a whole one.

Also here, because several notebooks' checks need them: the model configurations the checks run on
(``small_args``, ``MODELS``), a parameter count that allocates nothing, and the memory plan by itemsize.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...config import ModelArgs
from ...memory import MemoryPlan, memory_plan

# ---------------------------------------------------------------------------------------------------------
# running the learner's code and reporting
# ---------------------------------------------------------------------------------------------------------


def _passed(what: str) -> None:
    print(f"PASS: {what}")


def _failed(what: str, details: str, hint: str) -> None:
    print(f"FAIL: {what}")
    for line in details.splitlines():
        print(f"  {line}")
    if hint:
        print(f"  hint: {hint}")


def _run(fn: Callable, *args) -> tuple[object, str | None]:
    """Call the learner's function; return (result, None) or (None, a message saying what went wrong)."""
    if not callable(fn):
        return None, f"expected a function, got {type(fn).__name__}"
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not implemented yet: replace `raise NotImplementedError()` with your code"
    except Exception as err:  # the learner's bug, reported rather than raised
        return None, f"your code raised {type(err).__name__}: {err}"


def _fresh(args: tuple) -> tuple:
    """Clones of any tensors in ``args``, so the learner's in-place edits cannot change the next case."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def check_cases(what: str, fn: Callable, cases: list[tuple[str, tuple, object]], hint: str,
                compare: Callable[[object, object], str | None] | None = None,
                diagnose: Callable[[tuple, object], str | None] | None = None) -> None:
    """Run ``fn(*args)`` for each (label, args, expected) case; print PASS, or FAIL for the first case that differs.

    ``compare(got, expected)`` returns None or what differed (tensors by default). ``diagnose(args, got)``
    may recognise a classic mistake and return a hint more precise than ``hint``. Never raises for the
    learner's bugs, and returns nothing, so a notebook cell shows only the message.
    """
    compare = compare or tensor_difference
    for label, args, expected in cases:
        got, error = _run(fn, *_fresh(args))
        if error is not None:
            _failed(what, f"on {label}: {error}", hint if "raised" in error else "")
            return
        difference = compare(got, expected)
        if difference is not None:
            specific = diagnose(_fresh(args), got) if diagnose is not None else None
            _failed(what, f"on {label}:\n{difference}", specific or hint)
            return
    _passed(f"{what} ({len(cases)} case{'s' if len(cases) != 1 else ''})")


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
        return f"expected a torch.Tensor of shape {tuple(expected.shape)}, got {type(got).__name__}"
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
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        first = tuple(int(i) for i in torch.isnan(got).nonzero()[0])
        return f"got NaN, first at position {_position(first)}"
    diff = (got - expected).abs()
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
    """None if the number ``got`` equals ``expected`` (to relative precision ``rel``), else a message."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return f"expected a number, got {type(got).__name__}"
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


# ---------------------------------------------------------------------------------------------------------
# the models the checks run on, and what they cost; nothing here allocates a weight
# ---------------------------------------------------------------------------------------------------------


def small_args(**overrides) -> ModelArgs:
    """A small model (dim 64, 2 layers, 4 query and 2 key/value heads of 16, window 8), fields overridden."""
    base = dict(dim=64, n_layers=2, head_dim=16, hidden_dim=96, n_heads=4, n_kv_heads=2, norm_eps=1e-5,
                vocab_size=97, sliding_window=8, rope_theta=10000.0)
    return ModelArgs(**{**base, **overrides})


# The configurations the counting exercises run on, by the name a failure reports.
MODELS = {
    "Mistral 7B": ModelArgs.from_name("mistral-7b"),
    "the tiny preset": ModelArgs.from_name("tiny"),
    "a small MHA model": small_args(n_layers=3, n_kv_heads=4),  # n_kv_heads = n_heads: no sharing
}


def parameter_count(module_class: type[torch.nn.Module], args: ModelArgs) -> int:
    """Parameters of ``module_class(args)``, counted on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        module = module_class(args)
    return sum(p.numel() for p in module.parameters())


_DTYPE_OF_ITEMSIZE = {1: torch.uint8, 2: torch.bfloat16, 4: torch.float32, 8: torch.float64}


def plan_for(args: ModelArgs, itemsize: int) -> MemoryPlan:
    """``memory.memory_plan`` for one sequence at ``itemsize`` bytes per value: weights and rolling cache."""
    return memory_plan(args, _DTYPE_OF_ITEMSIZE[itemsize])
