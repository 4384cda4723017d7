"""Checks of notebook 11 (does the window stack?): a padded copy batch, its accuracy, the chains of hops.

The expected values are worked out here with plain loops, independently of the notebook's own code; the one
thing shared is ``IGNORE`` (-100), the target that ``mistral_mini.train`` leaves out of the loss.

Shapes: B sequences, T positions, V vocabulary.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from ...train import IGNORE
from .checking import check_cases
from .compare import describe, int_difference, number_difference, tensor_difference

__all__ = ["check_copy_batch_padded", "check_accuracy", "check_hop_chains"]

PAD = 0  # the token id that fills a sequence after its end (any id would do: its targets are IGNORE)


# ---------------------------------------------------------------------------------------------------------
# A learner's exception as a result, so that a mistake that raises (x[:-0]) can be recognised too
# ---------------------------------------------------------------------------------------------------------


class _Raised:
    """What a function raised, kept as its result: two are equal when the exception's type is."""

    def __init__(self, error: Exception):
        self.kind, self.text = type(error).__name__, str(error).splitlines()[0] if str(error) else ""


def _catching(fn: Callable) -> Callable:
    """``fn`` returning a _Raised instead of raising; NotImplementedError (not done yet) still raises."""

    def run(*args):
        try:
            return fn(*args)
        except NotImplementedError:
            raise
        except Exception as error:  # the learner's bug: reported by the comparison, matched to a mistake
            return _Raised(error)

    return run


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: the copy task, for sequences of different lengths
# ---------------------------------------------------------------------------------------------------------


def _padded_tokens(lengths: list[int], length: int, seed: int) -> torch.Tensor:
    tokens = torch.randint(1, 16, (len(lengths), length), generator=torch.Generator().manual_seed(seed))
    for b, n in enumerate(lengths):
        tokens[b, n:] = PAD
    return tokens  # [B, T]


def _copy(tokens: torch.Tensor, lengths: list[int], distance: int, source: Callable = lambda t, d: t - d,
          first: Callable = lambda d: d, end: Callable = lambda n: n, before: int = IGNORE,
          wrap: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Position by position: targets[b, t] = tokens[b, source(t, d)] for first(d) <= t < end(n_b), else IGNORE;
    the switches are the classic mistakes."""
    B, T = tokens.shape
    targets = torch.full_like(tokens, IGNORE)
    for b in range(B):
        for t in range(min(end(lengths[b]), T)):
            s = source(t, distance)
            if t >= first(distance) and 0 <= s < T:
                targets[b, t] = tokens[b, s]
            elif t < distance:
                targets[b, t] = tokens[b, s % T] if wrap else before
    return tokens, targets


def _slice_minus_d(tokens: torch.Tensor, lengths: list[int], distance: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``targets[:, d:] = tokens[:, :-d]``: for d = 0 the right-hand side is empty (-0 == 0) and this raises."""
    targets = torch.full_like(tokens, IGNORE)
    targets[:, distance:] = tokens[:, :-distance]  # [B, T - d]
    for b, n in enumerate(lengths):
        targets[b, n:] = IGNORE
    return tokens, targets


COPY_MISTAKES = [
    ("the padding has targets: the positions from a sequence's length on are not part of it, so their "
     f"targets must be {IGNORE} (IGNORE) too.", lambda x, n, d: _copy(x, [x.shape[1]] * len(n), d)),
    ("off by one at the end: a sequence of length n has its tokens at positions 0 .. n - 1, so position n "
     "is already padding.", lambda x, n, d: _copy(x, n, d, end=lambda n: n + 1)),
    ("off by one at the end: a sequence of length n has its tokens at positions 0 .. n - 1, and position "
     "n - 1 (its last token) still has a target.", lambda x, n, d: _copy(x, n, d, end=lambda n: n - 1)),
    ("torch.roll wraps the last tokens around to the front: the first `distance` positions have no token "
     f"that far back, so their target must be {IGNORE} (IGNORE).", lambda x, n, d: _copy(x, n, d, wrap=True)),
    (f"the first `distance` targets are 0: there is nothing to copy there, so they must be {IGNORE} "
     "(IGNORE), which the loss leaves out; 0 is a token the model would be trained to predict.",
     lambda x, n, d: _copy(x, n, d, before=0)),
    ("off by one: that copies the token distance - 1 back (shifted one short).",
     lambda x, n, d: _copy(x, n, max(d - 1, 0))),
    ("off by one: that copies the token distance + 1 back.", lambda x, n, d: _copy(x, n, d + 1)),
    ("that copies the token `distance` *ahead*: the target at t is the token at t - distance, before it.",
     lambda x, n, d: _copy(x, n, d, source=lambda t, d: t + d, first=lambda d: 0)),
    ("x[:, :-d] for d = 0 is x[:, :0], which is empty (-0 == 0): end the slice in a way that is right for "
     "d = 0 too.",
     _catching(_slice_minus_d)),
    ("at distance 0 every target is the token itself (up to the sequence's end), not IGNORE: did a guard "
     "against x[:, :-0] skip that case?", lambda x, n, d: _copy(x, n, d, first=lambda d: d if d else len(x[0]))),
    ("the pair is (inputs, targets): the inputs first.", lambda x, n, d: _copy(x, n, d)[::-1]),
]


def _pair_difference(got, expected: tuple[torch.Tensor, torch.Tensor]) -> str | None:
    if isinstance(got, _Raised) or isinstance(expected, _Raised):
        if isinstance(got, _Raised) and isinstance(expected, _Raised) and got.kind == expected.kind:
            return None  # the learner raised as the mistake does
        return f"your code raised {got.kind}: {got.text}" if isinstance(got, _Raised) else "no exception"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (inputs, targets) of tensors [B, T], got {describe(got)}"
    for name, g, e in zip(("inputs", "targets"), got, expected, strict=True):
        difference = tensor_difference(g, e)
        if difference is not None:
            return f"{name}: {difference}"
    return None


def check_copy_batch_padded(fn: Callable) -> None:
    """``fn(tokens [B, T], lengths, distance) -> (inputs, targets)``: inputs are the tokens; sequence b has
    lengths[b] tokens, then padding; targets[b, t] is tokens[b, t - distance] for distance <= t < lengths[b],
    IGNORE (-100) everywhere else."""
    cases = []
    for lengths, T, distance, seed in (([10, 7, 4], 10, 3, 0), ([8, 5], 8, 1, 1), ([6, 9, 3], 9, 0, 2),
                                       ([12, 6], 12, 6, 3), ([5, 5], 5, 5, 4)):
        tokens = _padded_tokens(lengths, T, seed)
        cases.append((f"tokens of shape {(len(lengths), T)}, lengths={lengths}, distance={distance}",
                      (tokens, lengths, distance), _copy(tokens, lengths, distance)))
    learner = _catching(fn) if callable(fn) else fn  # a non-function still gets check_cases' own message
    check_cases("copy_batch_padded(tokens, lengths, distance)", learner, cases, compare=_pair_difference,
                mistakes=COPY_MISTAKES,
                hint="write the targets of the first case by hand, one row at a time (which positions have "
                     "a token `distance` back, and which positions are real tokens?), and compare.")


# ---------------------------------------------------------------------------------------------------------
# Exercise 2: accuracy over the positions that count
# ---------------------------------------------------------------------------------------------------------


def _accuracy(logits: torch.Tensor, targets: torch.Tensor, count: str = "kept", per_row: bool = False,
              scale: float = 1.0) -> float:
    """Plain loops; count: which positions the fraction is over ("kept", "all", or "none": the number right)."""
    rows = []
    for b in range(targets.shape[0]):
        right = counted = 0
        for t in range(targets.shape[1]):
            counted += int(targets[b, t] != IGNORE) if count == "kept" else 1
            right += int(targets[b, t] != IGNORE and int(logits[b, t].argmax()) == int(targets[b, t]))
        rows.append((right, counted))
    if count == "none":
        return float(sum(r for r, _c in rows))
    if per_row:
        return scale * sum(r / c for r, c in rows) / len(rows)
    return scale * sum(r for r, _c in rows) / sum(c for _r, c in rows)


def _accuracy_case(lengths: list[int], T: int, distance: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits, and targets of which about half are the logits' argmax; IGNORE before ``distance`` and
    after each sequence's length."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(lengths), T, 16, generator=generator)
    guess = torch.randint(0, 16, (len(lengths), T), generator=generator)
    targets = torch.where(torch.rand(len(lengths), T, generator=generator) < 0.5, logits.argmax(-1), guess)
    targets[:, :distance] = IGNORE
    for b, n in enumerate(lengths):
        targets[b, n:] = IGNORE
    return logits, targets


ACCURACY_MISTAKES = [
    ("the ignored positions were counted (as wrong answers): they have no answer to get right, so the "
     "fraction is over the positions whose target is not -100 only.", lambda lg, tg: _accuracy(lg, tg, "all")),
    ("that is the number of right answers: divide by the number of positions that count.",
     lambda lg, tg: _accuracy(lg, tg, "none")),
    ("that is a percentage: return a fraction between 0 and 1.", lambda lg, tg: _accuracy(lg, tg, scale=100.0)),
    ("that is the mean of each sequence's accuracy: sequences with more positions that count must weigh "
     "more; count the right answers over the whole batch, then divide once.",
     lambda lg, tg: _accuracy(lg, tg, per_row=True)),
]


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """``fn(logits [B, T, V], targets [B, T]) -> float``: the fraction of the positions whose target is not
    IGNORE where the most likely token (argmax) is the target."""
    cases = []
    for lengths, T, distance, seed in (([10, 7, 4, 10], 10, 3, 1), ([16, 12, 16], 16, 9, 2), ([6, 6], 6, 0, 0),
                                       ([5], 5, 4, 3)):
        logits, targets = _accuracy_case(lengths, T, distance, seed)
        ignored = int((targets == IGNORE).sum())
        cases.append((f"logits of shape {tuple(logits.shape)}, {ignored} of {targets.numel()} targets ignored",
                      (logits, targets), _accuracy(logits, targets)))
    check_cases("accuracy(logits, targets)", fn, cases, compare=lambda g, e: number_difference(g, e, rel=1e-6),
                mistakes=ACCURACY_MISTAKES,
                hint="which positions count, and what is the model's answer at each of them?")


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: chains of hops
# ---------------------------------------------------------------------------------------------------------


def _chains(distance: int, n_layers: int, hops: range) -> int:
    """Ways to write ``distance`` as a sum of ``n_layers`` hops, each hop a length in ``hops``, in order."""
    ways = {0: 1}  # sum so far -> number of ways
    for _ in range(n_layers):
        after: dict[int, int] = {}
        for total, count in ways.items():
            for hop in hops:
                after[total + hop] = after.get(total + hop, 0) + count
        ways = after
    return ways.get(distance, 0)


def _unordered(distance: int, n_layers: int, window: int) -> int:
    """The multisets of hops: (3, 0) and (0, 3) counted once."""
    return sum(1 for hops in itertools.combinations_with_replacement(range(window), n_layers)
               if sum(hops) == distance)


HOP_MISTAKES = [
    ("a hop reaches at most W - 1 back (0 <= i - j < W): hop lengths 0 .. W - 1, not 0 .. W.",
     lambda d, L, W: _chains(d, L, range(W + 1))),
    ("a hop may have length 0: a token's window includes the token itself, so information can stay in place "
     "for a layer.", lambda d, L, W: _chains(d, L, range(1, W))),
    ("the order of the hops matters: 3 then 0 and 0 then 3 are two chains through different positions.",
     _unordered),
    ("one hop per layer: n_layers hops, not n_layers - 1.", lambda d, L, W: _chains(d, L - 1, range(W))),
    ("one hop per layer: n_layers hops, not n_layers + 1.", lambda d, L, W: _chains(d, L + 1, range(W))),
    ("that says whether a chain exists (1 or 0): count them.",
     lambda d, L, W: int(_chains(d, L, range(W)) > 0)),
    ("that entry is the other direction (from output i to input i - d, which no mask allows unless d = 0): "
     "rows are the later positions, columns the earlier ones.", lambda d, L, W: int(d == 0)),
]


def _count_difference(got, expected: int) -> str | None:
    if isinstance(got, bool) or (isinstance(got, torch.Tensor) and got.dtype == torch.bool):
        return f"expected a count (an int), got {describe(got)}: count the chains, not whether one exists"
    return int_difference(got, expected)


def check_hop_chains(fn: Callable[[int, int, int], int]) -> None:
    """``fn(distance, n_layers, window) -> int``: the chains i = p_0 >= p_1 >= ... >= p_L = i - distance with
    every hop p_k - p_(k+1) in 0 .. window - 1, that is, the paths from input i - distance to output i."""
    # Typical first; the edge of the reach, past it, one layer and distance 0 last.
    cases = [(f"distance={d}, n_layers={L}, window={W}", (d, L, W), _chains(d, L, range(W)))
             for d, L, W in ((6, 2, 4), (8, 3, 4), (3, 2, 4), (30, 5, 8), (9, 3, 4), (10, 3, 4), (3, 1, 4),
                             (4, 1, 4), (0, 3, 4))]
    check_cases("hop_chains(distance, n_layers, window)", fn, cases, compare=_count_difference, mistakes=HOP_MISTAKES,
                hint="list the chains of the second case (8 back, 3 layers, W = 4) by hand, and compare with "
                     "what your function counts.")
