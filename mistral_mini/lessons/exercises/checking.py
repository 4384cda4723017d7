"""Running a learner's answer through a check, and the verdict: PASS, FAIL with a diagnosis, or not done yet.

A check builds its cases, each ``(label, args, expected)``, and calls ``check_cases``. That runs the learner's
function on every case (on copies of the arguments, so an in-place edit cannot leak into the next case), and:

- prints ``PASS`` and returns None when every case matches;
- otherwise prints what differed on the first failing case and, when it can, **names the mistake**: each
  entry of ``mistakes`` is ``(what the mistake is, the function a learner making it would have written)``. A
  mistake is named when the learner's results equal its results on every case, or else on most failing cases.
  Without a match the check prints ``hint``, which points at the idea and never spells out the solution;
- then raises ``ExerciseFailed`` (or ``ExerciseNotDone`` while the function still raises
  ``NotImplementedError``), so the cell fails, as nbgrader's test cells and ``classroom grade`` expect. In
  Jupyter the exception shows as one line under the printed report, not as a traceback.

``forbidden`` names functions an exercise asks the learner not to use (``"torch.softmax"``): they raise
while the learner's code runs, wherever the learner's cell imported them from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from .compare import describe, tensor_difference

Case = tuple[str, tuple, object]  # (label shown on failure, arguments, expected result)
Mistake = tuple[str, Callable]  # (what the mistake is, a function that makes it)


class ExerciseFailed(AssertionError):
    """The learner's answer is wrong; the report (already printed) says how. Shown as one line in Jupyter."""

    def __init__(self, report: str):
        super().__init__(report)
        self.report = report

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [f"{type(self).__name__}: this exercise does not pass yet; the report above says why."]


class ExerciseNotDone(ExerciseFailed):
    """The learner's function still raises NotImplementedError: the exercise has not been started."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: write your answer in the exercise's cell, run it, then run this one."]


class ForbiddenCall(RuntimeError):
    """Raised by a function that an exercise asks the learner to write without."""


def _verdict(exception: type[ExerciseFailed], lines: list[str]) -> ExerciseFailed:
    report = "\n".join(lines)
    print(report)
    return exception(report)


def passed(what: str) -> None:
    print(f"PASS: {what}")


def not_done(what: str) -> ExerciseNotDone:
    """The verdict for an exercise whose function still raises NotImplementedError."""
    return _verdict(ExerciseNotDone, [f"NOT DONE: {what}",
                                      "  not done yet: replace `raise NotImplementedError()` with your code"])


def failed(what: str, details: str, advice: str = "", kind: str = "hint") -> ExerciseFailed:
    """The verdict for a wrong answer: what failed, the details indented below it, then the advice."""
    lines = [f"FAIL: {what}", *(f"  {line}" for line in details.splitlines())]
    if advice:
        lines.append(f"  {kind}: {advice}")
    return _verdict(ExerciseFailed, lines)


# ---------------------------------------------------------------------------------------------------------
# functions an exercise forbids
# ---------------------------------------------------------------------------------------------------------


def _owner_and_attribute(dotted: str) -> tuple[object, str]:
    """``"torch.nn.functional.softmax"`` -> (the module torch.nn.functional, "softmax"); classes work too."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise ValueError(f"cannot find {dotted!r}")


@contextmanager
def forbid(names: Sequence[str], namespace: dict) -> Iterator[None]:
    """While inside, each function in ``names`` raises ForbiddenCall, both where it is defined and under any
    name that ``namespace`` (the learner's globals) bound it to. Everything is restored on the way out."""
    restore: list[tuple[object, str, object, bool]] = []  # (owner, attribute, original, was it owned)
    try:
        for dotted in names:
            owner, attribute = _owner_and_attribute(dotted)
            original = getattr(owner, attribute)

            def refuse(*args, _name=dotted, **kwargs):
                raise ForbiddenCall(f"{_name} is switched off during this check: "
                                    "the exercise asks you to write it yourself")

            owned = not isinstance(owner, type) or attribute in vars(owner)
            restore.append((owner, attribute, original, owned))
            setattr(owner, attribute, refuse)
            for key, value in list(namespace.items()):
                if value is original:
                    restore.append((namespace, key, original, True))
                    namespace[key] = refuse
        yield
    finally:
        for owner, attribute, original, owned in reversed(restore):
            if isinstance(owner, dict):
                owner[attribute] = original
            elif owned:
                setattr(owner, attribute, original)
            else:  # it was inherited (torch.Tensor.softmax lives on a base class): remove our shadow
                delattr(owner, attribute)


# ---------------------------------------------------------------------------------------------------------
# running the learner's code
# ---------------------------------------------------------------------------------------------------------


class _NotDone(Exception):
    pass


def _copy(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value  # models, tokenizers, numbers: shared (a check passes no mutable state of its own in them)


def _fresh(args: tuple) -> tuple:
    """Copies of the tensors, lists and dicts in ``args``: the learner's in-place edits cannot leak into the
    mistakes' answers or the next case."""
    return tuple(_copy(a) for a in args)


def run_learner(fn: Callable, args: tuple, forbidden: Sequence[str] = ()) -> tuple[object, str | None]:
    """Call the learner's ``fn(*args)``; return (result, None) or (None, what went wrong).

    Raises ``_NotDone`` for a NotImplementedError, which ``check_cases`` turns into "not done yet".
    """
    namespace = getattr(fn, "__globals__", {})
    try:
        with forbid(forbidden, namespace):
            return fn(*_fresh(args)), None
    except NotImplementedError as err:
        raise _NotDone() from err
    except ForbiddenCall as err:
        return None, f"your code called a function this exercise rules out: {err}"
    except Exception as err:  # the learner's bug, reported rather than raised from deep inside torch
        return None, f"your code raised {type(err).__name__}: {err}"


def _safe(function: Callable, *args) -> object:
    """``function(*args)``, or the exception it raised, turned into a message (a check must never crash)."""
    try:
        return function(*args)
    except Exception as err:
        return f"could not compare ({type(err).__name__}: {err})"


def _name_mistake(mistakes: Sequence[Mistake], compare: Callable, runs: list[tuple[tuple, object, bool]]
                  ) -> str | None:
    """The mistake that explains the learner's results: on every case, else on the most failing cases."""
    failing = [(args, got) for args, got, ok in runs if not ok]
    best, best_count = None, 0
    for says, wrong in mistakes:
        explained = []
        for args, got, _ok in runs:
            answer = _safe(wrong, *_fresh(args))
            explained.append(_safe(compare, got, answer) is None)
        if all(explained):
            return says
        count = sum(e for e, (_a, _g, ok) in zip(explained, runs, strict=True) if not ok)
        if count > best_count:
            best, best_count = says, count
    if best is None:
        return None
    return f"{best} (this explains {best_count} of the {len(failing)} failing cases)"


def check_cases(what: str, fn: Callable, cases: Sequence[Case], hint: str,
                compare: Callable[[object, object], str | None] = tensor_difference,
                mistakes: Sequence[Mistake] = (), forbidden: Sequence[str] = ()) -> None:
    """Run ``fn(*args)`` on every case; PASS if all match, else report, name the mistake, and raise.

    ``compare(got, expected)`` returns None or what differed. See the module docstring for the rest.
    """
    if not callable(fn):
        raise failed(what, f"expected a function, got {describe(fn)}", "pass the function itself, without ()")
    runs: list[tuple[tuple, object, bool]] = []  # (args, learner's result, did it match)
    first_failure = None
    for label, args, expected in cases:
        try:
            got, error = run_learner(fn, args, forbidden)
        except _NotDone:
            raise not_done(what) from None
        if error is None:
            difference = _safe(compare, got, expected)
        else:
            difference = error
        runs.append((args, got, difference is None))
        if difference is not None and first_failure is None:
            first_failure = f"on {label}:\n" + "\n".join(f"  {line}" for line in difference.splitlines())
    n_failing = sum(not ok for _a, _g, ok in runs)
    if n_failing == 0:
        passed(f"{what} ({len(cases)} case{'s' if len(cases) != 1 else ''})")
        return
    what = f"{what}: {n_failing} of {len(cases)} case{'s' if len(cases) != 1 else ''} differ"
    mistake = _name_mistake(mistakes, compare, runs)
    if mistake is not None:
        raise failed(what, first_failure, mistake, kind="mistake")
    raise failed(what, first_failure, hint)
