"""The checks of notebook 11 (does the window stack?): right answers pass, each classic mistake is named, wrong
types get a message instead of a traceback."""

import itertools

import numpy as np
import pytest
import torch

from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes

IGNORE = -100

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package
# ---------------------------------------------------------------------------------------------------------


def copy_batch_padded(tokens, lengths, distance):
    targets = []
    for row, n in zip(tokens.tolist(), lengths, strict=True):
        targets.append([row[t - distance] if distance <= t < n else IGNORE for t in range(len(row))])
    return tokens, torch.tensor(targets)


def copy_batch_padded_cat(tokens, lengths, distance):
    T = tokens.shape[1]
    pad = torch.full((tokens.shape[0], min(distance, T)), IGNORE, dtype=tokens.dtype)
    targets = torch.cat([pad, tokens[:, :T - pad.shape[1]]], dim=1)
    return tokens, targets.masked_fill(torch.arange(T) >= torch.tensor(lengths)[:, None], IGNORE)


def accuracy(logits, targets):
    keep = targets != IGNORE
    return float((logits.argmax(-1) == targets)[keep].sum() / keep.sum())


def hop_chains(distance, n_layers, window):
    return sum(1 for hops in itertools.product(range(window), repeat=n_layers) if sum(hops) == distance)


def hop_chains_matrix(distance, n_layers, window):
    offsets = torch.arange(distance + 1)[:, None] - torch.arange(distance + 1)[None, :]
    one_layer = ((offsets >= 0) & (offsets < window)).long()
    return int(torch.linalg.matrix_power(one_layer, n_layers)[distance, 0])


@pytest.mark.parametrize("check, right", [
    (ex.check_copy_batch_padded, copy_batch_padded),
    (ex.check_copy_batch_padded, copy_batch_padded_cat),
    (ex.check_copy_batch_padded, lambda x, n, d: list(copy_batch_padded(x, n, d))),  # a list pair will do
    (ex.check_accuracy, accuracy),
    (ex.check_accuracy, lambda lg, tg: torch.tensor(accuracy(lg, tg))),  # a 0-d tensor is one number
    (ex.check_hop_chains, hop_chains),
    (ex.check_hop_chains, hop_chains_matrix),
    (ex.check_hop_chains, lambda d, L, W: torch.tensor(hop_chains(d, L, W))),
])
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


def mask_padding(targets, lengths, shift=0):
    return targets.masked_fill(torch.arange(targets.shape[1]) >= torch.tensor(lengths)[:, None] + shift, IGNORE)


def rolled(tokens, lengths, distance):
    return tokens, mask_padding(torch.roll(tokens, distance, dims=1), lengths)


def zeros_in_front(tokens, lengths, distance):
    targets = torch.zeros_like(tokens)
    targets[:, distance:] = tokens[:, :tokens.shape[1] - distance]
    return tokens, mask_padding(targets, lengths)


def negative_slice(tokens, lengths, distance):
    targets = torch.full_like(tokens, IGNORE)
    targets[:, distance:] = tokens[:, :-distance]  # tokens[:, :-0] is empty: raises for distance 0
    return tokens, mask_padding(targets, lengths)


def skips_distance_zero(tokens, lengths, distance):
    targets = torch.full_like(tokens, IGNORE)
    if distance:  # a guard against x[:-0] that skips distance 0 altogether
        targets[:, distance:] = tokens[:, :-distance]
    return tokens, mask_padding(targets, lengths)


COPY_WRONG = [
    # The mistakes the issue names: rolled, shifted one short, zeros in front, x[:-0].
    ("rolled", rolled, ["on tokens of shape (3, 10), lengths=[10, 7, 4], distance=3", "mistake: torch.roll wraps"]),
    ("shifted one short", lambda x, n, d: copy_batch_padded(x, n, max(d - 1, 0)),
     ["mistake: off by one: that copies the token distance - 1 back"]),
    ("shifted one too far", lambda x, n, d: copy_batch_padded(x, n, d + 1),
     ["mistake: off by one: that copies the token distance + 1 back"]),
    ("zeros in front", zeros_in_front,
     ["first wrong position [0, 0]: got 0, expected -100", "mistake: the first `distance` targets are 0"]),
    ("x[:-0]", negative_slice, ["distance=0", "your code raised RuntimeError", "mistake: x[:, :-d] for d = 0"]),
    ("distance 0 skipped", skips_distance_zero, ["distance=0", "mistake: at distance 0 every target is the token"]),
    ("padding learned", lambda x, n, d: copy_batch_padded(x, [x.shape[1]] * len(n), d), ["mistake: the padding has"]),
    ("padding from n + 1", lambda x, n, d: (x, mask_padding(copy_batch_padded(x, [x.shape[1]] * len(n), d)[1], n, 1)),
     ["mistake: off by one at the end: a sequence of length n has its tokens at positions 0 .. n - 1, so"]),
    ("padding from n - 1", lambda x, n, d: (x, mask_padding(copy_batch_padded(x, n, d)[1], n, -1)),
     ["mistake: off by one at the end: a sequence of length n has its tokens at positions 0 .. n - 1, and"]),
    ("ahead", lambda x, n, d: (x, mask_padding(torch.cat([x[:, d:], torch.full_like(x[:, :d], IGNORE)], 1), n)),
     ["mistake: that copies the token `distance` *ahead*"]),
    ("swapped", lambda x, n, d: copy_batch_padded(x, n, d)[::-1], ["mistake: the pair is (inputs, targets)"]),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in COPY_WRONG], ids=[n for n, _, _ in COPY_WRONG])
def test_copy_batch_padded_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_copy_batch_padded, wrong, says, capsys)


def per_sequence(logits, targets):
    keep = targets != IGNORE
    right = (logits.argmax(-1) == targets) & keep
    return (right.sum(1) / keep.sum(1)).mean().item()


ACCURACY_WRONG = [
    # The mistake the issue names: the ignored targets counted.
    ("ignored counted", lambda lg, tg: (lg.argmax(-1) == tg).float().mean().item(),
     ["on logits of shape (4, 10, 16), 21 of 40 targets ignored", "mistake: the ignored positions were counted"]),
    ("number right", lambda lg, tg: int((lg.argmax(-1) == tg).sum()), ["mistake: that is the number of right answers"]),
    ("percentage", lambda lg, tg: 100 * accuracy(lg, tg), ["mistake: that is a percentage"]),
    ("mean per sequence", per_sequence, ["mistake: that is the mean of each sequence's accuracy"]),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in ACCURACY_WRONG], ids=[n for n, _, _ in ACCURACY_WRONG])
def test_accuracy_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_accuracy, wrong, says, capsys)


def chains_with_hops(hops, layers=lambda L: L):
    return lambda d, L, W: sum(1 for h in itertools.product(hops(W), repeat=layers(L)) if sum(h) == d)


HOP_WRONG = [
    ("hops up to W", chains_with_hops(lambda w: range(w + 1)),
     ["on distance=6, n_layers=2, window=4", "got 3, expected 1", "mistake: a hop reaches at most W - 1 back"]),
    ("no zero hop", chains_with_hops(lambda w: range(1, w)), ["mistake: a hop may have length 0"]),
    ("unordered", lambda d, L, W: sum(1 for h in itertools.combinations_with_replacement(range(W), L) if sum(h) == d),
     ["mistake: the order of the hops matters"]),
    ("L - 1 hops", chains_with_hops(lambda w: range(w), lambda L: L - 1), ["mistake: one hop per layer"]),
    ("L + 1 hops", chains_with_hops(lambda w: range(w), lambda L: L + 1), ["mistake: one hop per layer"]),
    ("exists", lambda d, L, W: int(d <= L * (W - 1)), ["mistake: that says whether a chain exists"]),
    ("the other entry", lambda d, L, W: int(d == 0), ["mistake: that entry is the other direction"]),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in HOP_WRONG], ids=[n for n, _, _ in HOP_WRONG])
def test_hop_chains_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_hop_chains, wrong, says, capsys)


# ---------------------------------------------------------------------------------------------------------
# wrong types: a message, never a traceback
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_copy_batch_padded, lambda x, n, d: copy_batch_padded(x, n, d)[1], "expected a pair (inputs, targets)"),
    (ex.check_copy_batch_padded, lambda x, n, d: (x, copy_batch_padded(x, n, d)[1].tolist()),
     "targets: expected a torch.Tensor of shape (3, 10), got a list"),
    (ex.check_copy_batch_padded, lambda x, n, d: (x, copy_batch_padded(x, n, d)[1].numpy()), "numpy.ndarray"),
    (ex.check_copy_batch_padded, lambda x, n, d: None, "expected a pair (inputs, targets) of tensors [B, T], got"),
    (ex.check_copy_batch_padded, 3, "expected a function"),
    (ex.check_accuracy, lambda lg, tg: lg.argmax(-1) == tg, "expected one number, got a torch.Tensor"),
    (ex.check_accuracy, lambda lg, tg: [accuracy(lg, tg)], "expected one number, got a list"),
    (ex.check_hop_chains, lambda d, L, W: d <= L * (W - 1), "expected a count (an int), got bool True"),
    (ex.check_hop_chains, lambda d, L, W: torch.tensor(True), "count the chains, not whether one exists"),
    (ex.check_hop_chains, lambda d, L, W: hop_chains(d, L, W) / 2, "expected a whole number"),
    (ex.check_hop_chains, lambda d, L, W: np.array([1, 2]), "expected one number"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)
