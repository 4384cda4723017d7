"""Checks of notebook 07 (pre-fill in chunks): a chunk's mask over the rolling buffer as it sits, a chunked
prefill that attends before it writes, and a prompt fed in pieces of uneven size.

Shapes: T prompt tokens, C tokens in a chunk, W window (= slots), D head_dim, V vocab_size.

The expected answers come from the package's own rules: which position each slot holds
(``cache.slot_positions_after``), the window over positions (``masks.sliding_window_mask``), attention
(``attention.attention_reference``) and one full pass of the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...attention import attention_reference
from ...cache import RollingBufferCache, slot_positions_after
from ...masks import causal_mask, sliding_window_mask
from ...transformer import Transformer
from .checking import check_cases
from .compare import tensor_difference
from .models import small_args

__all__ = ["check_buffer_chunk_mask", "check_prefill_attention", "check_uneven_chunks"]


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: the chunk's queries against the W slots as they sit, then against the chunk's own keys
# ---------------------------------------------------------------------------------------------------------


def _buffer_mask(start: int, end: int, window: int, held: torch.Tensor | None = None, width: int | None = None,
                 rule: Callable = sliding_window_mask) -> torch.Tensor:
    """[C, W + C]: the slots hold positions ``held`` (default: the truth after ``start`` tokens), then the chunk."""
    held = slot_positions_after(start, window) if held is None else held  # [W], -1 for an empty slot
    q_pos = torch.arange(start, end)  # [C]
    k_pos = torch.cat((held, q_pos))  # [W + C]: slots in slot order, then the chunk in position order
    return rule(q_pos, k_pos, window if width is None else width)


def _empty_slots_seen(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    offset = q_pos[:, None] - k_pos[None, :]  # [C, W + C]; an empty slot (-1) looks like position -1
    return (offset >= 0) & (offset < window)


def _fresh_buffer(start: int, end: int, window: int) -> torch.Tensor:
    mask = _buffer_mask(start, end, window)
    mask[:, :window] = False  # [C, W + C]: the slots hold nothing
    return mask


BUFFER_MASK_MISTAKES = [
    ("a column's slot number was taken for a position: slot s holds whichever position p < start has "
     "p % W == s (notebook 06), and the mask must be built from that position.",
     lambda s, e, w: _buffer_mask(s, e, w, held=torch.arange(w))),
    ("the slots were read as if they were in position order (slot 0 the oldest): after the buffer wraps "
     "around, slot s holds the latest position p < start with p % W == s.",
     lambda s, e, w: _buffer_mask(s, e, w, held=torch.arange(s - w, s))),
    ("these are the slots after the chunk has been written: the mask is for the buffer as it sits when the "
     "chunk arrives, before any of the chunk is written.",
     lambda s, e, w: _buffer_mask(s, e, w, held=slot_positions_after(e, w))),
    ("every filled slot is visible to every query (the cache plus the chunk under a causal mask): the window "
     "applies to the cached keys too, so later queries of the chunk see fewer of them.",
     lambda s, e, w: _buffer_mask(s, e, w, rule=lambda q, k, _w: causal_mask(q, k))),
    ("off by one: the slot holding position start - W is visible to the chunk's first query; a query at p "
     "sees back to p - W + 1 only (0 <= p - j < W).",
     lambda s, e, w: _buffer_mask(s, e, w, width=w + 1)),
    ("the slots are all hidden, as if each chunk started with a new, empty cache: the chunk forgets the "
     "tokens before it.", _fresh_buffer),
    ("empty slots (no position written yet, -1) count as keys: a slot is a key only once a position has "
     "been written to it.", lambda s, e, w: _buffer_mask(s, e, w, rule=_empty_slots_seen)),
]


def check_buffer_chunk_mask(fn: Callable[[int, int, int], torch.Tensor]) -> None:
    """``fn(start, end, window)`` -> bool [end - start, window + end - start]: the chunk's queries against the
    W slots of the buffer as they sit after ``start`` tokens (column s = slot s), then the chunk's own keys."""
    # Typical first: a wrapped buffer, a partly filled one, a chunk longer than W; then the degenerate ones.
    cases = [(f"start={s}, end={e}, window={w}", (s, e, w), _buffer_mask(s, e, w))
             for s, e, w in [(11, 15, 8), (21, 24, 8), (5, 9, 8), (8, 20, 8), (0, 4, 8), (13, 14, 4), (6, 9, 1)]]
    check_cases("buffer_chunk_mask(start, end, window)", fn, cases, mistakes=BUFFER_MASK_MISTAKES,
                hint="give every column the position it holds (a slot: the position written there last, or "
                     "none; a chunk key: its own position), then apply the window rule to positions.")


# ---------------------------------------------------------------------------------------------------------
# Exercise 2: a chunked prefill through a rolling buffer, one head
# ---------------------------------------------------------------------------------------------------------


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One head: q [Tq, D], k and v [Tk, D], mask [Tq, Tk] -> [Tq, D] (NaN for a query that sees no key)."""
    return attention_reference(q[None, None], k[None, None], v[None, None], mask)[0, 0]


def _write(buffer: tuple[torch.Tensor, torch.Tensor, torch.Tensor], k: torch.Tensor, v: torch.Tensor,
           positions: torch.Tensor) -> None:
    """Write the keys and values of ``positions`` into their slots, p % W; the buffer is (keys, values, positions)."""
    slot_k, slot_v, slot_pos = buffer
    slots = positions % len(slot_pos)
    slot_k[slots], slot_v[slots], slot_pos[slots] = k[positions], v[positions], positions


def _prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, chunk_size: int,
             write_first: bool = False, buffer: bool = True, chunk: bool = True, rule: str = "window"
             ) -> torch.Tensor:
    """Chunk by chunk through a buffer of W slots, with the switches that the usual mistakes flip."""
    T, D = q.shape
    slots = (torch.zeros(window, D), torch.zeros(window, D), torch.full((window,), -1))  # [W, D], [W, D], [W]
    outputs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        pos = torch.arange(start, end)  # [C]
        last = pos[-window:]  # a chunk longer than W leaves only its last W tokens in the buffer
        if write_first:
            _write(slots, k, v, last)
        parts = []  # (keys, values, their positions) to attend to
        if buffer:
            parts.append(slots)
        if chunk:
            parts.append((k[start:end], v[start:end], pos))
        keys, values, k_pos = (torch.cat(x) for x in zip(*parts, strict=True))  # [Tk, D], [Tk, D], [Tk]
        q_pos = pos
        if rule == "indices":  # list indices stand in for positions: the chunk is the list's tail
            q_pos, k_pos = torch.arange(len(k_pos) - len(pos), len(k_pos)), torch.arange(len(k_pos))
        mask = causal_mask(q_pos, k_pos) if rule == "causal" else sliding_window_mask(q_pos, k_pos, window)
        outputs.append(_attention(q[start:end], keys, values, mask))
        if not write_first:
            _write(slots, k, v, last)
    return torch.cat(outputs)  # [T, D]


PREFILL_MISTAKES = [
    ("the bug is still there: the chunk is written into the buffer before its queries attend, so its writes "
     "evict keys that the chunk's earlier queries still need.",
     lambda q, k, v, w, c: _prefill(q, k, v, w, c, write_first=True, chunk=False)),
    ("the chunk's keys count twice: the chunk is still written before attending, and then attends to the "
     "buffer (now holding part of the chunk) plus the chunk again. Evicted keys are still missing too.",
     lambda q, k, v, w, c: _prefill(q, k, v, w, c, write_first=True)),
    ("each chunk attends to its own keys only, as with a new cache per chunk: the cached keys of the "
     "positions before the chunk are never used.",
     lambda q, k, v, w, c: _prefill(q, k, v, w, c, buffer=False)),
    ("no window: every cached key and every earlier key of the chunk is visible. The window rule applies "
     "to the cached keys too, by their positions.",
     lambda q, k, v, w, c: _prefill(q, k, v, w, c, rule="causal")),
    ("the mask was built from indices into the list of keys, not from the positions the keys hold: the "
     "slots sit in slot order, and an empty slot holds no position at all.",
     lambda q, k, v, w, c: _prefill(q, k, v, w, c, rule="indices")),
]


def check_prefill_attention(fn: Callable) -> None:
    """``fn(q, k, v, window, chunk_size)`` -> [T, D]: one head's attention over a prompt, computed chunk by
    chunk through a rolling buffer of W slots; it must equal one full pass with the sliding window."""
    g = torch.Generator().manual_seed(7)
    cases = []
    # Typical first (W < T, chunks of 2 .. W and longer than W); then W > T and chunks of 1, where
    # writing first happens to be harmless.
    for T, D, W, C in [(20, 4, 6, 4), (23, 8, 5, 7), (18, 4, 8, 3), (16, 4, 4, 2), (9, 4, 16, 4), (12, 4, 4, 1)]:
        q, k, v = (torch.randn(T, D, generator=g) for _ in range(3))
        full = _attention(q, k, v, sliding_window_mask(torch.arange(T), torch.arange(T), W))  # [T, D]
        cases.append((f"T={T}, D={D}, window={W}, chunk_size={C}", (q, k, v, W, C), full))
    check_cases("prefill_attention(q, k, v, window, chunk_size)", fn, cases, mistakes=PREFILL_MISTAKES,
                hint="for each query of the chunk, list the positions it must see (0 <= p - j < W), and check "
                     "where each of those keys is at the moment the query attends.")


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: a prompt in pieces of uneven size, through the model
# ---------------------------------------------------------------------------------------------------------


class _LoggedTransformer(Transformer):
    """The model, noting each call: (tokens in the call, the position it continued at; None without a cache)."""

    calls: list[tuple[int | None, int | None]]

    def forward(self, tokens, cache=None, last_only=False):
        n = int(tokens.shape[-1]) if isinstance(tokens, torch.Tensor) and tokens.dim() > 0 else None
        self.calls.append((n, cache.position if isinstance(cache, RollingBufferCache) else None))
        return super().forward(tokens, cache, last_only)


def _logged(fn: Callable) -> Callable:
    """``fn(model, tokens, sizes)`` -> (its logits, the model's calls), on a fresh copy of ``sizes``."""
    def run(model: _LoggedTransformer, tokens: torch.Tensor, sizes: list[int]):
        model.calls = []
        return fn(model, tokens, list(sizes)), list(model.calls)
    return run


def _calls(calls: list) -> str:
    if not calls:
        return "the model was never called"
    without = sum(p is None for _n, p in calls)
    if without:
        which = "without a cache" if without == len(calls) else f"{without} of them without a cache"
        return f"{len(calls)} call(s), of {[n for n, _p in calls]} tokens, {which}"
    return f"chunks of {[n for n, _p in calls]} tokens, at positions {[p for _n, p in calls]}"


def _logits_and_calls(got: tuple, expected: tuple) -> str | None:
    (logits, calls), (want, want_calls) = got, expected
    problems = [tensor_difference(logits, want, atol=1e-4),
                None if calls == want_calls else f"model calls: {_calls(calls)}\nexpected:    {_calls(want_calls)}"]
    problems = [p for p in problems if p is not None]
    return "\n".join(problems) if problems else None


def _pieces(model, tokens, sizes, cache: str = "one", last_only: bool = False) -> torch.Tensor:
    """The pieces through the model with ``cache`` "one" (right), "each" (a new one per piece) or "none"."""
    shared = RollingBufferCache(model.args) if cache == "one" else None
    out, start = [], 0
    for n in sizes:
        c = RollingBufferCache(model.args) if cache == "each" else shared
        out.append(model(tokens[None, start:start + n], cache=c, last_only=last_only)[0])  # [n or 1, V]
        start += n
    return torch.cat(out)


UNEVEN_MISTAKES = [(says, _logged(wrong)) for says, wrong in [
    ("one pass over the whole prompt: the logits are right, but the exercise is to feed the pieces as they "
     "come, in these sizes.", lambda m, t, s: m(t[None])[0]),
    ("a new cache for every piece: each piece starts again at position 0 and forgets the pieces before it.",
     lambda m, t, s: _pieces(m, t, s, cache="each")),
    ("no cache: each piece runs alone at positions 0.., without the pieces before it.",
     lambda m, t, s: _pieces(m, t, s, cache="none")),
    ("every piece was cut to the first size: the sizes differ from piece to piece.",
     lambda m, t, s: _pieces(m, t, [min(s[0], len(t) - i) for i in range(0, len(t), s[0])])),
    ("only the last position of each piece (last_only=True): the exercise asks for every position's logits.",
     lambda m, t, s: _pieces(m, t, s, last_only=True)),
]]


def check_uneven_chunks(fn: Callable) -> None:
    """``fn(model, tokens, sizes)`` -> logits [T, V] of every position, the prompt fed through one cache in
    pieces of ``sizes`` tokens (they add up to T); they must equal one full pass."""
    args = small_args(sliding_window=6)
    with torch.random.fork_rng(devices=[]):  # seeded here without moving the notebook's own random state
        torch.manual_seed(0)
        model = _LoggedTransformer(args).eval()
    model.calls = []
    tokens = torch.randint(0, args.vocab_size, (23,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens[None])[0]  # [T, V]
        cases = []
        # Typical first: pieces shorter and longer than the window, one of a single token; then equal pieces
        # and the whole prompt at once, where cutting every piece to the first size is right.
        for sizes in ([3, 9, 1, 10], [10, 1, 9, 3], [6, 6, 6, 5], [23]):
            calls = [(n, sum(sizes[:i])) for i, n in enumerate(sizes)]  # (tokens, position it continues at)
            cases.append((f"sizes {sizes}, window 6", (model, tokens, sizes), (full, calls)))
        check_cases("uneven_chunks(model, tokens, sizes)", _logged(fn) if callable(fn) else fn, cases,
                    compare=_logits_and_calls, mistakes=UNEVEN_MISTAKES,
                    hint="the logits at a position depend on the tokens before it, within the window: whatever "
                         "one piece leaves behind, the next piece must find it.")
