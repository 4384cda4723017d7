"""The exercise checks of notebook 11: they pass a right answer, and fail a wrong one saying what differs."""

import itertools

import pytest
import torch

from mistral_mini.lessons import exercises
from tests.helpers import assert_check_fails

IGNORE = -100

# Right answers, written here independently of the checks' own expected values.


def copy_batch(tokens, distance):
    pad = torch.full((tokens.shape[0], min(distance, tokens.shape[1])), IGNORE, dtype=tokens.dtype)
    return tokens, torch.cat([pad, tokens[:, :tokens.shape[1] - pad.shape[1]]], dim=1)


def accuracy(logits, targets):
    keep = targets != IGNORE
    return float((logits.argmax(-1) == targets)[keep].sum() / keep.sum())


def hop_chains(distance, n_layers, window):
    return sum(1 for hops in itertools.product(range(window), repeat=n_layers) if sum(hops) == distance)


RIGHT = {"check_copy_batch": copy_batch, "check_accuracy": accuracy, "check_hop_chains": hop_chains}


@pytest.mark.parametrize("check", RIGHT)
def test_a_right_answer_passes(check, capsys):
    result = getattr(exercises, check)(RIGHT[check])
    assert result is None
    assert capsys.readouterr().out.startswith("PASS: ")


def rolled(tokens, distance):
    return tokens, torch.roll(tokens, distance, dims=1)


def shifted_one_short(tokens, distance):
    return copy_batch(tokens, max(distance - 1, 0))


def zeros_in_front(tokens, distance):
    targets = torch.zeros_like(tokens)
    targets[:, distance:] = tokens[:, :tokens.shape[1] - distance]
    return tokens, targets


def negative_slice(tokens, distance):
    targets = torch.full_like(tokens, IGNORE)
    targets[:, distance:] = tokens[:, :-distance]  # tokens[:, :-0] is empty
    return tokens, targets


def skips_distance_zero(tokens, distance):
    return tokens, (copy_batch(tokens, distance)[1] if distance else torch.full_like(tokens, IGNORE))


def counts_ignored(logits, targets):
    return (logits.argmax(-1) == targets).float().mean().item()


def counts_right(logits, targets):
    keep = targets != IGNORE
    return int((logits.argmax(-1)[keep] == targets[keep]).sum())


def chains_with_hops(hops):
    return lambda d, n, w: sum(1 for h in itertools.product(hops(w), repeat=n) if sum(h) == d)


WRONG = [
    ("check_copy_batch", rolled,
     ["on tokens of shape (2, 10), distance=3", "targets: 6 of 20 entries differ", "hint: torch.roll wraps"]),
    ("check_copy_batch", shifted_one_short, ["distance=3", "hint: off by one: you copied the token 2 back"]),
    ("check_copy_batch", zeros_in_front,
     ["first wrong position [0, 0]: got 0, expected -100", "must be -100 (IGNORE)"]),
    ("check_copy_batch", negative_slice,
     ["on tokens of shape (2, 6), distance=0", "your code raised RuntimeError", "not tokens[:, :-d]"]),
    ("check_copy_batch", skips_distance_zero, ["distance=0", "hint: tokens[:, :-0] is empty in Python"]),
    ("check_copy_batch", lambda t, d: copy_batch(t, d)[1], ["expected a pair (inputs, targets), got Tensor"]),
    ("check_accuracy", counts_ignored,
     ["on logits of shape (4, 10, 16), 12 targets ignored", "hint: you divided by every position"]),
    ("check_accuracy", counts_right, ["on logits of shape (2, 6, 16)", "hint: that is the number of right answers"]),
    ("check_hop_chains", chains_with_hops(lambda w: range(w + 1)),
     ["on distance=4, n_layers=1, window=4", "got 1, expected 0", "hop lengths 0 .. W - 1, not 0 .. W"]),
    ("check_hop_chains", chains_with_hops(lambda w: range(1, w)),
     ["on distance=3, n_layers=2, window=4", "got 2, expected 4", "hint: a hop may have length 0"]),
    ("check_hop_chains", lambda d, n, w: d <= n * (w - 1), ["expected a number, got bool", "count the chains"]),
]


@pytest.mark.parametrize("check, wrong, expected_lines", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_a_wrong_answer_fails_and_says_what_differs(check, wrong, expected_lines, capsys):
    assert_check_fails(getattr(exercises, check), wrong, expected_lines, capsys)


@pytest.mark.parametrize("check", list(RIGHT))
def test_a_stub_is_reported_not_raised(check, capsys):
    def stub(*args):
        raise NotImplementedError()

    assert getattr(exercises, check)(stub) is None
    out = capsys.readouterr().out
    assert out.startswith("FAIL: ") and "not implemented yet" in out
