"""Checks of notebook 06 (the rolling-buffer cache): slots and positions, masks over slots, rotated keys, bytes,
and a buffer with attention sinks.

The expected answers come from the rules in ``mistral_mini.cache`` (``slot_of``, ``slot_positions_after``),
``masks`` and ``rope``, the same functions the model and the figures use. The mistakes they name are the
cache's classic ones: a slot number taken for a position, ``p // W`` for ``p % W``, an eviction one position
off, empty slots (-1) let through, keys rotated by their slot instead of their position.

Shapes: Hkv key/value heads, W window (= slots), D head_dim, Tq queries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...cache import RollingBufferCache, slot_of, slot_positions_after
from ...masks import sliding_window_mask
from ...rope import apply_rope, rope_angles
from .checking import check_cases
from .compare import int_difference, loose_difference, tensor_difference, value_difference
from .models import MODELS, small_args

__all__ = ["check_slot_and_evicted", "check_slot_positions", "check_slot_mask", "check_rotate_cached_keys",
           "check_kv_cache_bytes", "check_sink_slot"]


def _evicted(position: int, window: int) -> int | None:
    """The position that ``position`` overwrites in its slot, or None while that slot is still empty."""
    held = int(slot_positions_after(position, window)[slot_of(position, window)])  # before writing position
    return None if held < 0 else held


def _slot_and(evicted: Callable[[int, int], int | None]) -> Callable:
    return lambda p, W: (p % W, evicted(p, W))


SLOT_AND_EVICTED_MISTAKES = [
    ("p // W is which lap of the buffer the position is on, not where in the buffer it goes.",
     lambda p, W: (p // W, _evicted(p, W))),
    ("the evicted position is one too new: the query at p still sees p - W + 1 (the window holds W keys, "
     "its own included); what it overwrites is the position that has just left the window.",
     _slot_and(lambda p, W: p - W + 1 if p >= W else None)),
    ("the evicted position is one too old: one lap of the buffer is exactly W positions.",
     _slot_and(lambda p, W: p - W - 1 if p >= W else None)),
    ("a negative position on the first lap: while p < W the slot is still empty, so nothing is "
     "overwritten (None).", _slot_and(lambda p, W: p - W)),
    ("-1 for 'nothing overwritten': the exercise asks for None there (-1 is how the buffer marks an empty "
     "slot's position, not an answer to 'which position was overwritten').",
     _slot_and(lambda p, W: p - W if p >= W else -1)),
    ("the first lap ends one position late: position W already overwrites position 0.",
     _slot_and(lambda p, W: p - W if p > W else None)),
    ("that is the slot's number, not the position it held: a slot is reused, a position is where the "
     "token sits in the text.", _slot_and(lambda p, W: p % W if p >= W else None)),
]


def check_slot_and_evicted(fn: Callable[[int, int], tuple[int, int | None]]) -> None:
    """``fn(position, window)`` -> (the slot it is written to, the position it overwrites or None)."""
    cases = []
    for window in (4, 8, 1):  # wrapped positions first, the first lap after, W = 1 last
        for position in dict.fromkeys([4 * window + 1, window + 3, 4 * window, window, window - 1, 1, 0]):
            cases.append((f"position={position}, window={window}", (position, window),
                          (slot_of(position, window), _evicted(position, window))))
    check_cases("slot_and_evicted(position, window)", fn, cases, compare=value_difference,
                mistakes=SLOT_AND_EVICTED_MISTAKES,
                hint="replay the table of step 1 for your failing case: which slot, and which position did "
                     "that slot hold just before?")


def _in_time_order(n_seen: int, window: int) -> list[int]:
    held = sorted(p for p in slot_positions_after(n_seen, window).tolist() if p >= 0)
    return held + [-1] * (window - len(held))


SLOT_POSITIONS_MISTAKES = [
    ("those are the positions in time order: slot s holds the position with p % W == s, so after the "
     "buffer wraps the slots hold them out of order (after 6 tokens with W = 4: [4, 5, 2, 3]).", _in_time_order),
    ("each slot keeps the first position written to it: a later position with the same p % W overwrites it.",
     lambda n, W: [s if s < n else -1 for s in range(W)]),
    ("one position too many: after n_seen tokens the positions written are 0 .. n_seen - 1.",
     lambda n, W: slot_positions_after(n + 1, W).tolist()),
    ("one position short: position n_seen - 1, the latest, is written too.",
     lambda n, W: slot_positions_after(max(n - 1, 0), W).tolist()),
    ("an empty slot shows 0: 0 is a real position (the first token); empty slots are -1.",
     lambda n, W: slot_positions_after(n, W).clamp(min=0).tolist()),
]


def check_slot_positions(fn: Callable[[int, int], list[int]]) -> None:
    """``fn(n_seen, window)`` -> the position each of the W slots holds after n_seen tokens (-1: empty)."""
    cases = [(f"n_seen={n}, window={W}", (n, W), slot_positions_after(n, W).tolist())
             for W in (8, 3, 1) for n in dict.fromkeys([3 * W + 2, W + 1, W - 1, W, 1, 0])]
    check_cases("slot_positions(n_seen, window)", fn, cases, compare=value_difference,
                mistakes=SLOT_POSITIONS_MISTAKES,
                hint="for one slot s, list the positions below n_seen that land in it; which of them is "
                     "still there? Try it by hand for n_seen = 6, W = 4.")


def _offset_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int, causal: bool = True,
                 own: bool = True, empty: bool = False, extra: int = 0) -> torch.Tensor:
    """[Tq, S] the window rule written out, with the switches that the classic mistakes flip."""
    offset = q_pos[:, None] - k_pos[None, :]  # [Tq, S]: how far back each slot's position lies
    mask = offset < window + extra
    if causal:
        mask &= (offset >= 0) if own else (offset > 0)
    if not empty:
        mask &= k_pos[None, :] >= 0
    return mask


SLOT_MASK_MISTAKES = [
    ("that is buggy_slot_mask's answer: slot numbers used as positions. Once the buffer wraps, slot s no "
     "longer holds position s; the positions it holds are in slot_positions.",
     lambda q, s, W: _offset_mask(q, torch.arange(len(s)), W, empty=True)),
    ("empty slots let through: -1 marks a slot that holds nothing yet, and for the first W - 1 queries it "
     "looks like a position inside their window.", lambda q, s, W: _offset_mask(q, s, W, empty=True)),
    ("off by one: W + 1 keys per query (i - j <= W). The window holds W keys, the query's own included.",
     lambda q, s, W: _offset_mask(q, s, W, extra=1)),
    ("a query sees a later position: when a chunk's keys are written before it attends, the buffer holds "
     "positions after some of its queries, and causal attention hides them.",
     lambda q, s, W: _offset_mask(q, s, W, causal=False)),
    ("the query's own key is hidden (0 < i - j): a token always sees itself.",
     lambda q, s, W: _offset_mask(q, s, W, own=False)),
    ("rows and columns swapped: the mask is [queries, slots], one row per query.",
     lambda q, s, W: _offset_mask(q, s, W).T),
]

# The exercise asks for the rule written out: these raise while the learner's code runs.
MASK_FUNCTIONS = ["mistral_mini.masks.sliding_window_mask", "mistral_mini.masks.causal_mask"]


def check_slot_mask(fn: Callable) -> None:
    """``fn(q_pos [Tq], slot_positions [W], window) -> bool Tensor [Tq, W]``: which slots each query may read."""
    situations = [  # (what it is, query positions, tokens written so far, window)
        ("a decode step far past the window", [21], 22, 8),
        ("a chunk of 5 queries before its keys are written", [14, 15, 16, 17, 18], 14, 8),
        ("a chunk of 3 queries after its keys are written", [9, 10, 11], 12, 4),
        ("a decode step while the buffer is filling", [2], 3, 8),
        ("W = 1", [5], 6, 1),
    ]
    cases = []
    for label, q, n_seen, W in situations:
        q_pos, held = torch.tensor(q), slot_positions_after(n_seen, W)
        cases.append((f"{label} (q_pos={q}, slot_positions={held.tolist()}, window={W})", (q_pos, held, W),
                      sliding_window_mask(q_pos, held, W)))
    check_cases("slot_mask(q_pos, slot_positions, window)", fn, cases, compare=tensor_difference,
                mistakes=SLOT_MASK_MISTAKES, forbidden=MASK_FUNCTIONS,
                hint="for your failing case, write next to each slot the position it holds, and decide for "
                     "each query which of those positions its window contains.")


def _rotate(raw_keys: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """raw_keys [Hkv, W, D], each slot rotated by ``positions[slot]`` -> [Hkv, W, D]."""
    cos, sin = rope_angles(positions, raw_keys.shape[-1], theta)  # [W, D/2] each
    return apply_rope(raw_keys.transpose(0, 1)[None], cos, sin)[0].transpose(0, 1)  # [1, W, Hkv, D] -> [Hkv, W, D]


ROTATE_MISTAKES = [
    ("that is buggy_rotate_cached_keys's answer: each key rotated by its slot number. It is right until the "
     "buffer wraps; after that slot s holds another position than s.",
     lambda k, s, theta: _rotate(k, torch.arange(len(s)), theta)),
    ("each slot rotated by the positions of the window in time order: after the wrap the slots hold "
     "positions out of order, and a key must be rotated by the position its own slot holds.",
     lambda k, s, theta: _rotate(k, torch.tensor(_in_time_order(int(s.max()) + 1, len(s))), theta)),
    ("every key rotated by the newest position (the query's): each key must carry its own position, so "
     "that q . k depends on the offset between the two.",
     lambda k, s, theta: _rotate(k, s.max().expand(len(s)), theta)),
    ("the keys are not rotated at all: then q . k would depend on the query's position alone, not on how far "
     "back the key is.",
     lambda k, s, theta: k.clone()),
    ("rotated the wrong way: by minus the position.", lambda k, s, theta: _rotate(k, -s, theta)),
]


def check_rotate_cached_keys(fn: Callable) -> None:
    """``fn(raw_keys [Hkv, W, D], slot_positions [W], theta) -> [Hkv, W, D]``: the keys as attention needs them."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for Hkv, W, D, n_seen, theta in [(2, 8, 16, 21, 10000.0), (1, 5, 8, 13, 1e6), (2, 4, 8, 4, 10000.0),
                                     (2, 8, 16, 3, 10000.0)]:  # wrapped first; unwrapped and filling last
        held = slot_positions_after(n_seen, W)
        raw = torch.randn(Hkv, W, D, generator=g) * (held >= 0)[:, None]  # [Hkv, W, D]; empty slots hold 0
        cases.append((f"Hkv={Hkv}, W={W}, D={D} after {n_seen} tokens (slot_positions={held.tolist()}), "
                      f"theta={theta:g}", (raw, held, theta), _rotate(raw, held, theta)))
    check_cases("rotate_cached_keys(raw_keys, slot_positions, theta)", fn, cases, compare=loose_difference,
                mistakes=ROTATE_MISTAKES,
                hint="which position did the key in slot s come from? RoPE rotates a key by that position, "
                     "and by nothing else.")


KV_BYTES_MISTAKES = [
    ("the rolling buffer sized min(seq_len, W): it is allocated whole, W slots, before the first token "
     "(RollingBufferCache's nbytes never changes).",
     lambda a, n, i, r: _kv_bytes(a, min(n, a.sliding_window) if r else n, i)),
    ("the rolling flag is ignored: a full cache holds one slot per token, the rolling buffer W.",
     lambda a, n, i, r: _kv_bytes(a, a.sliding_window, i)),
    ("the rolling flag is ignored: the rolling buffer holds W slots whatever seq_len is.",
     lambda a, n, i, r: _kv_bytes(a, n, i)),
    ("half the bytes: the cache holds keys and values, two tensors.",
     lambda a, n, i, r: _kv_bytes(a, a.sliding_window if r else n, i) // 2),
    ("n_heads instead of n_kv_heads: with grouped-query attention only the key/value heads are cached.",
     lambda a, n, i, r: _kv_bytes(a, a.sliding_window if r else n, i) * a.n_heads // a.n_kv_heads),
    ("one layer's cache: every layer keeps its own keys and values.",
     lambda a, n, i, r: _kv_bytes(a, a.sliding_window if r else n, i) // a.n_layers),
    ("numbers, not bytes: multiply by itemsize.",
     lambda a, n, i, r: _kv_bytes(a, a.sliding_window if r else n, i) // i),
]


_DTYPES = {2: torch.bfloat16, 4: torch.float32}


def _kv_bytes(args, slots: int, itemsize: int) -> int:
    """Bytes of a cache of ``slots`` positions: the package's rolling buffer (W slots, on meta) scaled."""
    rolling = RollingBufferCache(args, device="meta", dtype=_DTYPES[itemsize]).nbytes
    return rolling * slots // args.sliding_window


def check_kv_cache_bytes(fn: Callable) -> None:
    """``fn(args, seq_len, itemsize, rolling)`` -> bytes of keys and values for one sequence.

    rolling=True: the rolling buffer, W slots per layer whatever seq_len is (it is allocated up front).
    rolling=False: a full cache, one slot per token seen. Lengths both above and below W, so that a rolling
    buffer sized min(seq_len, W) fails.
    """
    cases = []
    for label, args, itemsize, lengths in (("the 7B", MODELS["Mistral 7B"], 2, (32_768, 1_000)),
                                           ("a small model", small_args(n_layers=3, sliding_window=16), 4,
                                            (100, 10))):
        for seq_len in lengths:  # above W first, then below
            for rolling in (True, False):
                slots = args.sliding_window if rolling else seq_len
                cases.append((f"{label}, {'rolling' if rolling else 'full'}, itemsize {itemsize}, "
                              f"seq_len {seq_len:_}", (args, seq_len, itemsize, rolling),
                              _kv_bytes(args, slots, itemsize)))
    check_cases("kv_cache_bytes(args, seq_len, itemsize, rolling)", fn, cases, compare=int_difference,
                mistakes=KV_BYTES_MISTAKES,
                hint="count the numbers one token leaves in the cache across the whole model, then how many "
                     "tokens' worth each kind of cache holds, then the bytes.")


def _sink_slot(p: int, S: int, n_slots: int) -> int:
    return p if p < S else S + (p - S) % (n_slots - S)


SINK_MISTAKES = [
    ("the rolling slots count from position 0: the first position that rolls is n_sinks, and it belongs in "
     "the first rolling slot.", lambda p, S, n: p if p < S else S + p % (n - S)),
    ("the sinks get overwritten: that is the plain rolling buffer, where every slot rolls.",
     lambda p, S, n: p % n),
    ("the rolling part wraps after n_slots positions, not after the n_slots - n_sinks slots it has: past "
     "the last slot.", lambda p, S, n: p if p < S else S + (p - S) % n),
    ("the rolling part lands on the sinks' slots: it starts after them.",
     lambda p, S, n: p if p < S else (p - S) % (n - S)),
    ("the sinks are the first n_sinks positions: they keep slots 0 .. n_sinks - 1 for good.",
     lambda p, S, n: S + (p - S) % (n - S)),
]


def check_sink_slot(fn: Callable[[int, int, int], int]) -> None:
    """``fn(position, n_sinks, n_slots)`` -> the slot of a buffer whose first n_sinks slots never roll."""
    cases = [(f"position={p}, n_sinks={S}, n_slots={n}", (p, S, n), _sink_slot(p, S, n))
             for p, S, n in [(25, 4, 12), (13, 4, 12), (12, 4, 12), (11, 4, 12), (100, 2, 7), (6, 2, 7), (2, 4, 12),
                             (0, 4, 12), (9, 0, 4), (9, 3, 4)]]  # rolling first; sinks, no sink, one rolling slot last
    check_cases("sink_slot(position, n_sinks, n_slots)", fn, cases, compare=int_difference, mistakes=SINK_MISTAKES,
                hint="number the rolling slots 0, 1, 2, ... and the positions that roll 0, 1, 2, ... as well; "
                     "then it is the rolling buffer of step 1 again, shifted.")
