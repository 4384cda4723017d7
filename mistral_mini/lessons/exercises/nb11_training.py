"""Checks of notebook 11 (does the window stack?): the copy task, its accuracy, the chains of hops.

The expected values are worked out here with plain loops, independently of the notebook's own code; the one
thing shared is ``IGNORE`` (-100), the target that ``mistral_mini.train`` leaves out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...train import IGNORE
from .checking import check_cases
from .compare import int_difference, matches, number_difference, tensor_difference

__all__ = ["check_copy_batch", "check_accuracy", "check_hop_chains"]


def _tokens(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 16, (batch, length), generator=torch.Generator().manual_seed(seed))


def _copy_targets(tokens: torch.Tensor, distance: int) -> torch.Tensor:
    """Position by position: the token ``distance`` back where there is one, IGNORE before that."""
    targets = torch.full_like(tokens, IGNORE)
    for b in range(tokens.shape[0]):
        for t in range(distance, tokens.shape[1]):
            targets[b, t] = tokens[b, t - distance]
    return targets


def _pair_difference(got, expected: tuple[torch.Tensor, torch.Tensor]) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (inputs, targets), got {type(got).__name__}"
    for name, g, e in zip(("inputs", "targets"), got, expected, strict=True):
        difference = tensor_difference(g, e)
        if difference is not None:
            return f"{name}: {difference}"
    return None


def check_copy_batch(fn: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``fn(tokens [B, T], distance) -> (inputs, targets)``: inputs are the tokens; the target at t is the token
    at t - distance, and IGNORE (-100) where t < distance."""
    cases = []
    for batch, length, distance, seed in ((2, 10, 3, 0), (3, 8, 1, 1), (2, 12, 11, 2), (2, 6, 0, 3), (3, 5, 5, 4)):
        tokens = _tokens(batch, length, seed)
        cases.append((f"tokens of shape {(batch, length)}, distance={distance}", (tokens, distance),
                      (tokens, _copy_targets(tokens, distance))))

    def diagnose(args, got):
        tokens, distance = args
        targets = got[1] if isinstance(got, (tuple, list)) and len(got) == 2 else None
        if not isinstance(targets, torch.Tensor) or targets.shape != tokens.shape:
            return None
        if distance == 0 and bool((targets == IGNORE).all()):
            return ("tokens[:, :-0] is empty in Python (-0 == 0), so distance 0 needs its own case: every "
                    "target is the token itself.")
        if distance > 0 and matches(targets, torch.roll(tokens, distance, dims=1)):
            return ("torch.roll wraps the last tokens around to the front: the first `distance` positions have "
                    f"no token that far back, so their target must be {IGNORE} (IGNORE).")
        for wrong in (distance - 1, distance + 1):
            if 0 <= wrong and matches(targets, _copy_targets(tokens, wrong)):
                return f"off by one: you copied the token {wrong} back; the target at t is the token at t - distance."
        expected = _copy_targets(tokens, distance)
        if matches(targets[:, distance:], expected[:, distance:]):
            return (f"the targets from position `distance` on are right; before it there is nothing to copy, "
                    f"so those targets must be {IGNORE} (IGNORE), which the loss leaves out.")
        return None

    check_cases("copy_batch(tokens, distance)", fn, cases, compare=_pair_difference, diagnose=diagnose,
                hint=f"inputs = tokens; targets = {IGNORE} everywhere, then targets[:, d:] = tokens[:, :T - d] "
                     "(not tokens[:, :-d]: -0 is 0, so for d = 0 that slice is empty).")


def _accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    right = counted = 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            if targets[b, t] != IGNORE:
                counted += 1
                right += int(int(logits[b, t].argmax()) == int(targets[b, t]))
    return right / counted


def _accuracy_case(batch: int, length: int, distance: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits, and targets of which about half are the logits' argmax; the first ``distance`` ignored."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, 16, generator=generator)
    guess = torch.randint(0, 16, (batch, length), generator=generator)
    targets = torch.where(torch.rand(batch, length, generator=generator) < 0.5, logits.argmax(-1), guess)
    targets[:, :distance] = IGNORE
    return logits, targets


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """``fn(logits [B, T, V], targets [B, T]) -> float``: the fraction of the positions whose target is not
    IGNORE where the most likely token (argmax) is the target."""
    cases = []
    for batch, length, distance, seed in ((2, 6, 0, 0), (4, 10, 3, 1), (3, 16, 9, 2), (1, 5, 4, 3)):
        logits, targets = _accuracy_case(batch, length, distance, seed)
        cases.append((f"logits of shape {(batch, length, 16)}, {batch * distance} targets ignored",
                      (logits, targets), _accuracy(logits, targets)))

    def diagnose(args, got):
        logits, targets = args
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)):
            return None
        kept = int((targets != IGNORE).sum())
        right = _accuracy(logits, targets) * kept
        if abs(got - right / targets.numel()) < 1e-6:
            return ("you divided by every position, the ignored ones included: they have no answer to get "
                    "right, so count only the positions whose target is not -100.")
        if abs(got - right) < 1e-6:
            return "that is the number of right answers; divide by the number of positions that count."
        return None

    check_cases("accuracy(logits, targets)", fn, cases, compare=lambda g, e: number_difference(g, e, rel=1e-6),
                diagnose=diagnose,
                hint="predictions = logits.argmax(-1); keep = targets != -100; "
                     "the mean of (predictions == targets) over the kept positions.")


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


def check_hop_chains(fn: Callable[[int, int, int], int]) -> None:
    """``fn(distance, n_layers, window) -> int``: the chains i = p_0 >= p_1 >= ... >= p_L = i - distance with
    every hop p_k - p_(k+1) in 0 .. window - 1, that is, the paths from input i - distance to output i."""
    cases = [(f"distance={d}, n_layers={L}, window={W}", (d, L, W), _chains(d, L, range(W)))
             for d, L, W in ((3, 1, 4), (4, 1, 4), (6, 2, 4), (3, 2, 4), (9, 3, 4), (8, 3, 4), (10, 3, 4),
                             (0, 3, 4), (30, 5, 8))]

    def diagnose(args, got):
        d, L, W = args
        if isinstance(got, bool) or (isinstance(got, torch.Tensor) and got.dtype == torch.bool):
            return "count the chains (an int), not whether one exists."
        if int_difference(got, _chains(d, L, range(W + 1))) is None:
            return "a hop reaches at most W - 1 back (0 <= i - j < W): hop lengths 0 .. W - 1, not 0 .. W."
        if int_difference(got, _chains(d, L, range(1, W))) is None:
            return ("a hop may have length 0: a token's window includes the token itself, so information can "
                    "stay in place for a layer.")
        return None

    check_cases("hop_chains(distance, n_layers, window)", fn, cases, compare=int_difference, diagnose=diagnose,
                hint="count with the integer matrix power of the one-layer window mask, or add up the ways "
                     "layer by layer.")
