"""How every exercise check runs and reports: verdicts, mistakes named over all cases, forbidden functions
switched off and restored, and no crash on a result of the wrong kind. Each notebook's own checks are tested
in tests/test_exercises_nbNN.py."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_check_not_done, verdict

from mistral_mini import ModelArgs, Transformer
from mistral_mini.lessons import exercises
from mistral_mini.lessons.exercises.checking import ExerciseFailed, ExerciseNotDone, check_cases, forbid
from mistral_mini.lessons.exercises.compare import describe, int_difference, number_difference
from mistral_mini.lessons.exercises.models import counted_parameters, parameter_count, small_args
from mistral_mini.transformer import TransformerBlock

CASES = [(f"x={x}", (x,), x * x) for x in (3, 5, 2)]  # at x = 2 doubling is right: a mistake may match
MISTAKES = [("you doubled instead of squaring.", lambda x: 2 * x), ("you cubed.", lambda x: x**3)]


def check_square(fn):
    check_cases("square(x)", fn, CASES, compare=number_difference, mistakes=MISTAKES,
                hint="multiply x by itself.")


def test_a_right_answer_passes_and_returns_none(capsys):
    assert verdict(check_square, lambda x: x * x, capsys) == ("pass", "PASS: square(x) (3 cases)\n")


def test_the_mistake_that_explains_every_case_is_named(capsys):
    status, out = verdict(check_square, lambda x: 2 * x, capsys)
    assert status == "fail"
    assert out.splitlines()[:3] == ["FAIL: square(x): 2 of 3 cases differ", "  on x=3:",
                                    "    got 6, expected 9 (off by -3)"]
    assert "  mistake: you doubled instead of squaring." in out and "hint" not in out


def test_a_mistake_explaining_only_some_failing_cases_says_so(capsys):
    _, out = verdict(check_square, lambda x: x**3 if x == 3 else -1, capsys)
    assert "mistake: you cubed. (this explains 1 of the 3 failing cases)" in out


def test_an_unrecognised_answer_gets_the_hint(capsys):
    _, out = verdict(check_square, lambda x: x + 100, capsys)
    assert out.rstrip().endswith("hint: multiply x by itself.") and "mistake" not in out


def test_not_done_code_that_raises_and_results_of_the_wrong_kind(capsys):
    def stub(x):
        raise NotImplementedError()

    assert verdict(check_square, stub, capsys)[0] == "not done"
    status, out = verdict(check_square, lambda x: 1 / 0, capsys)
    assert status == "fail" and "your code raised ZeroDivisionError: division by zero" in out
    status, out = verdict(check_square, lambda x: np.array([x, x]), capsys)
    assert status == "fail" and "expected one number, got a numpy.ndarray of shape (2,)" in out
    status, out = verdict(check_square, 9, capsys)
    assert status == "fail" and "expected a function, got int 9" in out


def test_a_comparison_that_crashes_becomes_a_message(capsys):
    def crashing_compare(got, expected):
        return torch.tensor([1, 2]) == torch.tensor([1, 2, 3])  # raises: sizes differ

    with pytest.raises(ExerciseFailed) as info:
        check_cases("f(x)", lambda x: x, CASES, hint="", compare=crashing_compare)
    assert "could not compare (RuntimeError" in info.value.report
    capsys.readouterr()


def test_each_case_gets_fresh_arguments(capsys):
    seen = []

    def edits_in_place(t):
        seen.append(t.clone())
        t.add_(1)
        return t

    cases = [("a", (torch.zeros(2),), torch.ones(2))] * 2
    check_cases("f(t)", edits_in_place, cases, hint="")
    assert all(torch.equal(s, torch.zeros(2)) for s in seen)
    assert torch.equal(cases[0][1][0], torch.zeros(2))
    capsys.readouterr()


def test_forbidden_functions_raise_inside_and_are_restored_after(capsys):
    namespace = {"softmax": F.softmax}
    originals = (torch.softmax, F.softmax, torch.Tensor.softmax)
    with forbid(["torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax"], namespace):
        for call in (lambda t: torch.softmax(t, -1), lambda t: t.softmax(-1), lambda t: namespace["softmax"](t, -1)):
            with pytest.raises(Exception, match="switched off during this check"):
                call(torch.zeros(3))
    assert (torch.softmax, F.softmax, torch.Tensor.softmax) == originals and namespace["softmax"] is F.softmax
    assert "softmax" not in vars(torch.Tensor)  # the shadow on the subclass is gone, the base method is back
    assert torch.allclose(torch.zeros(2).softmax(-1), torch.full((2,), 0.5))


def test_a_forbidden_call_is_reported_as_such(capsys):
    def uses_softmax(x):
        return torch.softmax(torch.tensor([float(x)]), -1).item() * x * x

    with pytest.raises(ExerciseFailed) as info:
        check_cases("square(x)", uses_softmax, CASES, hint="", compare=number_difference,
                    forbidden=["torch.softmax"])
    assert "your code called a function this exercise rules out: torch.softmax" in info.value.report
    capsys.readouterr()


def test_jupyter_shows_one_line_instead_of_a_traceback():
    assert ExerciseFailed("report")._render_traceback_() == [
        "ExerciseFailed: this exercise does not pass yet; the report above says why."]
    assert len(ExerciseNotDone("report")._render_traceback_()) == 1
    assert issubclass(ExerciseNotDone, ExerciseFailed) and issubclass(ExerciseFailed, AssertionError)


def test_describe():
    assert describe(torch.zeros(2, 3, dtype=torch.bool)) == "a torch.Tensor of shape (2, 3), dtype torch.bool"
    assert describe([1]) == "a list of 1 item" and describe((1, 2)) == "a tuple of 2 items"
    assert describe(None) == "NoneType None" and describe({}) == "a dict"


def test_tensor_difference_on_integers_and_nan():
    assert exercises.tensor_difference(torch.tensor([1, 2]), torch.tensor([1, 2])) is None
    assert "first wrong position [1]" in exercises.tensor_difference(torch.tensor([1, 3]), torch.tensor([1, 2]))
    assert "NaN" in exercises.tensor_difference(torch.tensor([float("nan")]), torch.tensor([0.0]))
    assert "expected a torch.Tensor of shape (1,), got a list of 1 item" in exercises.tensor_difference(
        [1.0], torch.tensor([1.0]))


def test_value_difference():
    assert exercises.value_difference((3, None), [3, None]) is None
    assert exercises.value_difference(torch.tensor([1, 2]), [1, 2]) is None
    assert exercises.value_difference([(0, 5), (5, 7)], [(0, 5), (5, 7)]) is None
    assert exercises.value_difference(7, 8) == "got 7, expected 8"
    assert "expected a list or tuple" in exercises.value_difference(7, [7])
    message = exercises.value_difference(list(range(20)), list(range(19)) + [99])
    assert message.startswith("first wrong position [19]: got 19, expected 99") and ", ...]" in message


def test_numbers_from_numpy_or_torch_count_as_numbers():
    assert int_difference(np.int64(5), 5) is None and int_difference(torch.tensor(5), 5) is None
    assert number_difference(np.float32(2.5), 2.5) is None
    assert int_difference(np.int64(6), 5) == "got 6, expected 5 (off by +1)"
    assert "expected a whole number" in int_difference(5.5, 5)


def test_lists_are_copied_too(capsys):
    def pops(items):
        items.pop()
        return len(items)

    cases = [("three", ([1, 2, 3],), 2)]
    check_cases("f(items)", pops, cases, hint="", compare=number_difference,
                mistakes=[("never named", lambda items: len(items) - 5)])
    assert cases[0][1][0] == [1, 2, 3]
    capsys.readouterr()


def test_a_nan_matches_only_a_nan():
    nan = float("nan")
    assert exercises.tensor_difference(torch.tensor([nan, 1.0]), torch.tensor([nan, 1.0])) is None
    assert "got a number where NaN was expected" in exercises.tensor_difference(
        torch.tensor([0.0, 1.0]), torch.tensor([nan, 1.0]))
    assert "got NaN, first at position [1]" in exercises.tensor_difference(
        torch.tensor([nan, nan]), torch.tensor([nan, 1.0]))


CHECK_NAMES = sorted(name for name in dir(exercises) if name.startswith("check_"))


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_every_check_says_not_done_for_a_stub(name, capsys):
    assert_check_not_done(getattr(exercises, name), capsys)


def test_counted_parameters_counts_right_by_default():
    for args in (ModelArgs.from_name("mistral-7b"), small_args(head_dim=24)):  # heads x head_dim != dim too
        assert counted_parameters(args) == parameter_count(Transformer, args)
        assert counted_parameters(args, one_block=True) == parameter_count(TransformerBlock, args)
    assert counted_parameters(ModelArgs.from_name("mistral-7b")) == 7_241_732_096
