"""The checks of notebook 03: right answers pass, each classic mistake is named, nothing crashes on a wrong type."""

import math

import numpy as np
import pytest
import torch

from mistral_mini.lessons import exercises as ex
from mistral_mini.lessons.exercises import nb03_attention
from mistral_mini.masks import sliding_window_mask
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written without the package
# ---------------------------------------------------------------------------------------------------------


def window_by_loops(T, W):
    return torch.tensor([[0 <= i - j < W for j in range(T)] for i in range(T)])


def window_from_triangles(T, W):
    return torch.ones(T, T, dtype=torch.bool).tril().triu(1 - W)


def attention(q, k, v, mask):
    scores = (q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    return (scores - scores.logsumexp(-1, keepdim=True)).exp() @ v  # a softmax without torch.softmax


def allowed_pairs(T, W):
    if T <= W:
        return T * (T + 1) // 2
    return W * (W + 1) // 2 + (T - W) * W


def buggy_attention(q, k, v, mask, fix=()):
    """The notebook's buggy_attention, with the bugs named in ``fix`` repaired."""
    scores = q @ k.T / (math.sqrt(q.shape[-1]) if "scale" in fix else q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf") if "hidden" in fix else 0.0)
    if "overflow" in fix:
        scores = scores - scores.max(dim=-1 if "axis" in fix else 0, keepdim=True).values
    e = scores.exp()
    return e / e.sum(dim=-1 if "axis" in fix else 0, keepdim=True) @ v


CHECKS = [(ex.check_window_from_triangles, window_from_triangles),
          (ex.check_attention, attention), (ex.check_allowed_pairs, allowed_pairs)]
IDS = [check.__name__ for check, _ in CHECKS]


@pytest.mark.parametrize("check, right", CHECKS, ids=IDS)
def test_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


def test_the_repaired_attention_passes_with_every_bug_fixed(capsys):
    assert_check_passes(ex.check_attention, lambda q, k, v, m: buggy_attention(
        q, k, v, m, fix=("scale", "hidden", "overflow", "axis")), capsys)


# ---------------------------------------------------------------------------------------------------------
# the window, by offsets and by triangles
# ---------------------------------------------------------------------------------------------------------

WINDOW_WRONG = [
    ("paper reading", lambda T, W: window_by_loops(T, W + 1), "W + 1 keys"),
    ("one key short", lambda T, W: window_by_loops(T, W - 1), "W - 1 keys"),
    ("transposed", lambda T, W: window_by_loops(T, W).T, "rows and columns swapped"),
    ("causal only", lambda T, W: window_by_loops(T, T), "causal mask alone"),
    ("without itself", lambda T, W: window_by_loops(T, W + 1) & ~torch.eye(T, dtype=torch.bool), "excludes the query"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in WINDOW_WRONG], ids=[n for n, _, _ in WINDOW_WRONG])
def test_window_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_window_from_triangles, wrong, [says, "mistake: "], capsys)


def test_the_papers_diagonal_is_named(capsys):
    paper = lambda T, W: torch.ones(T, T, dtype=torch.bool).tril().triu(-W)  # noqa: E731 (one_file_ref, 2023)
    assert_check_fails(ex.check_window_from_triangles, paper, ["first wrong position [3, 0]", "W + 1 keys"], capsys)


def test_triangles_without_arange(capsys):
    offsets = lambda T, W: window_by_loops(T, W) & (torch.arange(T)[:, None] >= 0)  # noqa: E731
    assert_check_fails(ex.check_window_from_triangles, offsets, ["torch.arange is switched off"], capsys)
    assert torch.arange(3).tolist() == [0, 1, 2]  # and it is back afterwards


@pytest.mark.parametrize("wrong, says", [
    (lambda T, W: window_by_loops(T, W).tolist(), "expected a torch.Tensor of shape (6, 6), got a list"),
    (lambda T, W: window_by_loops(T, W).numpy(), "got a numpy.ndarray of shape (6, 6)"),
    (lambda T, W: window_by_loops(T, W)[None], "shape: got (1, 6, 6), expected (6, 6)"),
], ids=["list", "numpy", "extra axis"])
def test_window_of_the_wrong_type_fails_with_a_message(wrong, says, capsys):
    assert_check_fails(ex.check_window_from_triangles, wrong, [says], capsys)


# ---------------------------------------------------------------------------------------------------------
# repairing the attention: each bug left in is named, alone or with others
# ---------------------------------------------------------------------------------------------------------

ALL_BUGS = ("scale", "hidden", "overflow", "axis")
BUG_WORDS = {"scale": "divided by D", "hidden": "e^0 = 1", "overflow": "NaN", "axis": "over the queries"}


@pytest.mark.parametrize("left", [("scale",), ("hidden",), ("overflow",), ("axis",), ("scale", "axis"),
                                  ("hidden", "overflow", "axis")], ids="+".join)
def test_bugs_left_in_are_named(left, capsys):
    fix = tuple(b for b in ALL_BUGS if b not in left)
    out = verdict(ex.check_attention, lambda q, k, v, m: buggy_attention(q, k, v, m, fix=fix), capsys)[1]
    assert f"mistake: {len(left)} bug{'s' if len(left) > 1 else ''} left: " in out, out
    for bug in ALL_BUGS:
        assert (BUG_WORDS[bug] in out) == (bug in left), (bug, out)


def test_the_softmax_axis_is_named_whichever_axis_the_maximum_is_taken_over(capsys):
    def row_max_column_sum(q, k, v, m):
        scores = (q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~m, float("-inf"))
        e = (scores - scores.max(dim=-1, keepdim=True).values).exp()
        return e / e.sum(dim=0, keepdim=True) @ v

    assert_check_fails(ex.check_attention, row_max_column_sum, ["1 bug left: the softmax axis"], capsys)


def test_the_unchanged_buggy_attention_is_recognised(capsys):
    assert_check_fails(ex.check_attention, buggy_attention, ["buggy_attention unchanged"], capsys)


def test_the_overflow_bug_shows_only_on_large_scores(capsys):
    out = verdict(ex.check_attention, lambda q, k, v, m: buggy_attention(
        q, k, v, m, fix=("scale", "hidden", "axis")), capsys)[1]
    assert "1 of 4 cases differ" in out and "large scores" in out and "got NaN" in out


def test_an_unrelated_answer_gets_the_hint_not_a_mistake(capsys):
    """A mistake whose result is NaN (the softmax over the queries, on keys no query sees) matches nothing."""
    out = verdict(ex.check_attention, lambda q, k, v, m: q.clone(), capsys)[1]
    assert "hint: " in out and "mistake: " not in out


@pytest.mark.parametrize("wrong, says", [
    (lambda q, k, v, m: attention(q * math.sqrt(q.shape[-1]), k, v, m), "scaling is missing altogether"),
    (lambda q, k, v, m: attention(q, k, v, torch.ones_like(m)), "mask is not applied"),
], ids=["unscaled", "unmasked"])
def test_other_attention_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_attention, wrong, [says], capsys)


@pytest.mark.parametrize("call", ["torch.softmax(s, -1)", "torch.nn.functional.softmax(s, -1)", "s.softmax(-1)"])
def test_softmax_is_switched_off(call, capsys):
    def with_softmax(q, k, v, m):
        s = (q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~m, float("-inf"))  # noqa: F841 (used by eval)
        return eval(call) @ v

    assert_check_fails(ex.check_attention, with_softmax, ["switched off during this check"], capsys)
    assert torch.softmax(torch.zeros(2), -1).tolist() == [0.5, 0.5]


@pytest.mark.parametrize("wrong, says", [
    (lambda q, k, v, m: attention(q, k, v, m).numpy(), "got a numpy.ndarray"),
    (lambda q, k, v, m: attention(q, k, v, m).tolist(), "got a list"),
    (lambda q, k, v, m: attention(q, k, v, m.float()), "your code raised"),
], ids=["numpy", "list", "float mask"])
def test_attention_of_the_wrong_type_fails_with_a_message(wrong, says, capsys):
    assert_check_fails(ex.check_attention, wrong, [says], capsys)


# ---------------------------------------------------------------------------------------------------------
# counting the pairs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong, says", [
    (lambda T, W: T * W, "every query counted with W keys"),
    (lambda T, W: T * W - W * (W - 1) // 2, "shorter than the window"),
    (lambda T, W: allowed_pairs(T, W + 1), "W + 1 keys per query"),
    (lambda T, W: allowed_pairs(T, W - 1) if W > 1 else 0, "W - 1 keys per query"),
    (lambda T, W: T * (T + 1) // 2, "causal count"),
], ids=["T*W", "formula for T >= W only", "W + 1", "W - 1", "causal"])
def test_counting_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_allowed_pairs, wrong, [says], capsys)


def test_a_paper_reading_count_is_not_blamed_on_the_first_queries(capsys):
    """The old check said 'the first W - 1 queries see fewer keys' to an answer counting W + 1 keys."""
    out = verdict(ex.check_allowed_pairs, lambda T, W: allowed_pairs(T, W + 1), capsys)[1]
    assert "W + 1" in out and "first W - 1" not in out


@pytest.mark.parametrize("answer, status, says", [
    (lambda T, W: float(allowed_pairs(T, W)), "pass", "PASS"),
    (lambda T, W: np.int64(allowed_pairs(T, W)), "pass", "PASS"),
    (lambda T, W: allowed_pairs(T, W) + 0.5, "fail", "expected a whole number"),
    (lambda T, W: [allowed_pairs(T, W)], "fail", "expected one number, got a list"),
    (lambda T, W: torch.full((T,), W), "fail", "expected one number, got a torch.Tensor"),
], ids=["float", "numpy int", "fraction", "list", "tensor"])
def test_pairs_of_other_types(answer, status, says, capsys):
    got, out = verdict(ex.check_allowed_pairs, answer, capsys)
    assert got == status and says in out, out


def test_pairs_are_counted_on_a_mask_of_at_most_4096_tokens(monkeypatch):
    """Summing Exercise 1's mask must be a workable answer: no case may need a [32768, 32768] mask."""
    sizes = []
    monkeypatch.setattr(nb03_attention, "check_cases",
                        lambda what, fn, cases, **kw: sizes.extend(args[0] for _, args, _ in cases))
    ex.check_allowed_pairs(allowed_pairs)
    assert max(sizes) == 4096


# ---------------------------------------------------------------------------------------------------------
# the notebook's answers to its "think about it" questions
# ---------------------------------------------------------------------------------------------------------


def test_the_papers_reading_against_mistrals():
    """Notebook 03 proves sliding_window_mask equal to transformers' mask function."""
    p = torch.arange(20)
    for W in (1, 3, 8):
        paper = torch.ones(20, 20, dtype=torch.bool).tril().triu(-W)
        mistral = sliding_window_mask(p, p, W)
        differ = (paper != mistral).nonzero().tolist()
        assert differ[0] == [W, 0] and all(i - j == W for i, j in differ)
        assert paper[5 + W].sum() == W + 1 and mistral[5 + W].sum() == W
    assert 32 * 4096 == 131_072 and 32 * 4095 == 131_040


def test_the_7b_needs_a_tenth_of_the_dense_scores():
    T, W = 32768, 4096
    assert allowed_pairs(T, W) == 125_831_168
    assert round(100 * allowed_pairs(T, W) / T**2, 1) == 11.7
    assert round(100 * allowed_pairs(T, W) / (T * (T + 1) // 2), 1) == 23.4


def test_float32_exp_overflows_just_above_88():
    assert torch.isfinite(torch.tensor(88.7).exp()) and torch.isinf(torch.tensor(88.8).exp())
    assert torch.isnan(buggy_attention(1000 * torch.eye(3), torch.eye(3), torch.eye(3),
                                       torch.ones(3, 3, dtype=torch.bool), fix=("scale", "hidden", "axis"))).any()
