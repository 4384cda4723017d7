"""The checks of notebook 05 (receptive field): right answers pass, each classic mistake is named, wrong types
get a message instead of a traceback."""

import math

import numpy as np
import pytest
import torch

from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package
# ---------------------------------------------------------------------------------------------------------


def window(T, W, extra=0):
    offset = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    return (offset >= 0) & (offset < W + extra)


def compose_field(T, windows, start=None, extra=0):
    """Compose one window mask per layer, starting from zero layers (the identity)."""
    field = torch.eye(T, dtype=torch.bool) if start is None else start
    for W in windows:
        field = (window(T, W, extra).int() @ field.int()) > 0
    return field


def depends_on(t, n_layers, W):
    return compose_field(t + 1, [W] * n_layers)[t].nonzero().flatten().tolist()


def depends_on_formula(t, n_layers, W):
    return list(range(max(0, t - n_layers * (W - 1)), t + 1))


def buggy_depends_on(t, n_layers, W):
    """The notebook's buggy version: i - j <= W, and the loop starts from one layer already."""
    one = window(t + 1, W, extra=1)
    return compose_field(t + 1, [W] * n_layers, start=one, extra=1)[t].nonzero().flatten().tolist()


def mixed_receptive_field(T, windows):
    return compose_field(T, windows)


def layers_needed(distance, W):
    return math.ceil(distance / (W - 1))


@pytest.mark.parametrize("check, right", [
    (ex.check_depends_on, depends_on),
    (ex.check_depends_on, depends_on_formula),
    (ex.check_depends_on, lambda t, L, W: torch.arange(max(0, t - L * (W - 1)), t + 1)),  # a tensor will do
    (ex.check_depends_on, lambda t, L, W: set(depends_on(t, L, W))),
    (ex.check_mixed_receptive_field, mixed_receptive_field),
    (ex.check_mixed_receptive_field, lambda T, ws: compose_field(T, ws).int()),  # 0/1 counts as a mask
    (ex.check_layers_needed, layers_needed),
    (ex.check_layers_needed, lambda d, W: torch.tensor(d / (W - 1)).ceil()),  # a 0-d tensor is one number
    (ex.check_layers_needed, lambda d, W: np.int64(-(-d // (W - 1)))),
])
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


def span(t, L, W):
    return list(range(max(0, t - L * (W - 1) - 1), t + 1))


DEPENDS_ON_WRONG = [
    ("the buggy version", buggy_depends_on, "that is what buggy_depends_on returns: both of its bugs"),
    ("window i - j <= W", lambda t, L, W: compose_field(t + 1, [W] * L, extra=1)[t].nonzero().flatten().tolist(),
     "W positions back per layer: that is the paper's reading"),
    ("composed L + 1 times", lambda t, L, W: compose_field(t + 1, [W] * (L + 1))[t].nonzero().flatten().tolist(),
     "one layer too many"),
    ("composed L - 1 times", lambda t, L, W: depends_on_formula(t, max(L - 1, 0), W), "one layer too few"),
    ("the span taken for the distance", span, "one position too many: L * (W - 1) + 1 is the span"),
    ("no clamp at 0", lambda t, L, W: list(range(t - L * (W - 1), t + 1)), "negative positions"),
    ("t left out", lambda t, L, W: depends_on_formula(t, L, W)[:-1], "output t itself is missing"),
    ("column t", lambda t, L, W: compose_field(t + L * W + 1, [W] * L)[:, t].nonzero().flatten().tolist(),
     "those are the outputs that input t reaches (column t of the field)"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in DEPENDS_ON_WRONG],
                         ids=[name for name, _, _ in DEPENDS_ON_WRONG])
def test_depends_on_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_depends_on, wrong, ["mistake: " + says], capsys)


def test_the_span_is_not_called_the_papers_figure(capsys):
    """The issue: L(W - 1) + 1 was named "the paper's 32 * 4096". It is an off-by-one of its own."""
    status, out = verdict(ex.check_depends_on, span, capsys)
    assert status == "fail" and "span" in out and "paper" not in out, out


MIXED_WRONG = [
    ("W back per layer", lambda T, ws: compose_field(T, ws, extra=1),
     "W positions back per layer (the paper's reading"),
    ("largest window only", lambda T, ws: window(T, max(ws, default=1)), "only the largest window counts"),
    ("first window everywhere", lambda T, ws: compose_field(T, [ws[0]] * len(ws) if ws else []),
     "every layer given the first layer's window"),
    ("last window everywhere", lambda T, ws: compose_field(T, [ws[-1]] * len(ws) if ws else []),
     "every layer given the last layer's window"),
    ("starts from one layer", lambda T, ws: compose_field(T, ws, start=window(T, ws[0])) if ws else window(T, 1),
     "the first layer counted twice"),
    ("transposed", lambda T, ws: compose_field(T, ws).T, "rows and columns swapped"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in MIXED_WRONG], ids=[n for n, _, _ in MIXED_WRONG])
def test_mixed_receptive_field_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_mixed_receptive_field, wrong, ["mistake: " + says], capsys)


LAYERS_WRONG = [
    ("W per layer", lambda d, W: math.ceil(d / W), "W positions per layer: that is the paper's reading"),
    ("rounded down", lambda d, W: d // (W - 1), "rounded down"),
    ("always one more", lambda d, W: int(d / (W - 1)) + 1, "one layer added every time"),
    ("a span of d tokens", lambda d, W: max(0, math.ceil((d - 1) / (W - 1))),
     "you asked for a span of `distance` tokens"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in LAYERS_WRONG], ids=[n for n, _, _ in LAYERS_WRONG])
def test_layers_needed_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_layers_needed, wrong, ["mistake: " + says], capsys)


# ---------------------------------------------------------------------------------------------------------
# wrong types: a message, never a traceback
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_depends_on, lambda t, L, W: window(t + 1, L * (W - 1) + 1)[t], "booleans (a row of a mask?)"),
    (ex.check_depends_on, lambda t, L, W: [x == 1 for x in window(t + 1, W)[t].tolist()], "booleans"),
    (ex.check_depends_on, lambda t, L, W: compose_field(t + 1, [W] * L), "expected a list of input positions"),
    (ex.check_depends_on, lambda t, L, W: 3, "expected a list or tuple"),
    (ex.check_mixed_receptive_field, lambda T, ws: compose_field(T, ws).tolist(), "expected a torch.Tensor"),
    (ex.check_mixed_receptive_field, lambda T, ws: compose_field(T, ws).numpy(), "numpy.ndarray"),
    (ex.check_layers_needed, lambda d, W: torch.tensor([layers_needed(d, W)] * 2), "expected one whole number"),
    (ex.check_layers_needed, lambda d, W: [layers_needed(d, W)], "expected one number, got a list"),
    (ex.check_layers_needed, lambda d, W: d / (W - 1), "expected a whole number"),
    (ex.check_layers_needed, lambda d, W: 1 / 0, "your code raised ZeroDivisionError"),
    (ex.check_layers_needed, 42, "expected a function"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)
