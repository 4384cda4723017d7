"""The checks of notebook 06 (rolling-buffer cache): right answers pass, each classic mistake is named, wrong
types get a message instead of a traceback, and the wrong answers that used to pass now fail."""

import pytest
import torch

from mistral_mini.lessons import exercises as ex
from mistral_mini.masks import sliding_window_mask
from tests.helpers import assert_check_fails, assert_check_passes, verdict
from tests.helpers import assert_mistake_named as named

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package
# ---------------------------------------------------------------------------------------------------------


def slot_and_evicted(position, window):
    return position % window, (position - window if position >= window else None)


def slot_positions(n_seen, window):
    held = [-1] * window
    for p in range(n_seen):  # the simulation the exercise asks to avoid; the same answer
        held[p % window] = p
    return held


def slot_positions_formula(n_seen, window):
    return [n_seen - 1 - (n_seen - 1 - s) % window if s < n_seen else -1 for s in range(window)]


def slot_mask(q_pos, held, window, extra=0, empty_ok=False, causal=True):
    offset = q_pos[:, None] - held[None, :]  # [Tq, W]
    mask = offset < window + extra
    if causal:
        mask &= offset >= 0
    if not empty_ok:
        mask &= held[None, :] >= 0
    return mask


def rope(x, positions, theta):
    """x [Hkv, W, D], each slot rotated by its position, pairs (x[2k], x[2k+1])."""
    D = x.shape[-1]
    angle = positions.double()[:, None] * theta ** (-torch.arange(0, D, 2).double() / D)  # [W, D/2]
    cos, sin = angle.cos().float(), angle.sin().float()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def kv_cache_bytes(args, seq_len, itemsize, rolling, slots=None):
    slots = slots if slots is not None else (args.sliding_window if rolling else seq_len)
    return 2 * args.n_layers * slots * args.n_kv_heads * args.head_dim * itemsize


def sink_slot(position, n_sinks, n_slots):
    if position < n_sinks:
        return position  # a sink: its slot is never reused
    return n_sinks + (position - n_sinks) % (n_slots - n_sinks)




@pytest.mark.parametrize("check, right", [
    (ex.check_slot_and_evicted, slot_and_evicted),
    (ex.check_slot_and_evicted, lambda p, W: [torch.tensor(p) % W, p - W if p >= W else None]),
    (ex.check_slot_positions, slot_positions),
    (ex.check_slot_positions, slot_positions_formula),
    (ex.check_slot_positions, lambda n, W: torch.tensor(slot_positions_formula(n, W))),
    (ex.check_slot_mask, slot_mask),
    (ex.check_slot_mask, lambda q, s, W: slot_mask(q, s, W).int()),
    (ex.check_rotate_cached_keys, rope),
    (ex.check_kv_cache_bytes, kv_cache_bytes),
    (ex.check_kv_cache_bytes, lambda a, n, i, r: torch.tensor(kv_cache_bytes(a, n, i, r))),
    (ex.check_sink_slot, sink_slot),
    (ex.check_sink_slot, lambda p, S, n: torch.tensor(sink_slot(p, S, n))),
], ids=lambda x: getattr(x, "__name__", ""))
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong, says", [
    (lambda p, W: (p // W, p - W if p >= W else None), "p // W is which lap"),
    (lambda p, W: (p % W, p - W + 1 if p >= W else None), "the evicted position is one too new"),
    (lambda p, W: (p % W, p - W - 1 if p >= W else None), "the evicted position is one too old"),
    (lambda p, W: (p % W, p - W), "a negative position on the first lap"),
    (lambda p, W: (p % W, p - W if p >= W else -1), "-1 for 'nothing overwritten'"),
    (lambda p, W: (p % W, p - W if p > W else None), "the first lap ends one position late"),
    (lambda p, W: (p % W, p % W if p >= W else None), "that is the slot's number, not the position it held"),
])
def test_slot_and_evicted_names_the_mistake(wrong, says, capsys):
    named(ex.check_slot_and_evicted, wrong, says, capsys)


def in_time_order(n, W):
    held = sorted(p for p in slot_positions(n, W) if p >= 0)
    return held + [-1] * (W - len(held))


@pytest.mark.parametrize("wrong, says", [
    (in_time_order, "those are the positions in time order"),
    (lambda n, W: [s if s < n else -1 for s in range(W)], "each slot keeps the first position written"),
    (lambda n, W: slot_positions(n + 1, W), "one position too many"),
    (lambda n, W: slot_positions(n - 1, W), "one position short"),
    (lambda n, W: [max(p, 0) for p in slot_positions(n, W)], "an empty slot shows 0"),
])
def test_slot_positions_names_the_mistake(wrong, says, capsys):
    named(ex.check_slot_positions, wrong, says, capsys)


def buggy_slot_mask(q_pos, slot_positions, window):
    """The notebook's buggy version: slot numbers taken for positions."""
    slots = torch.arange(len(slot_positions))
    offset = q_pos[:, None] - slots[None, :]
    return (offset >= 0) & (offset < window)


@pytest.mark.parametrize("wrong, says", [
    (buggy_slot_mask, "that is buggy_slot_mask's answer: slot numbers used as positions"),
    (lambda q, s, W: slot_mask(q, s, W, empty_ok=True), "empty slots let through"),
    (lambda q, s, W: slot_mask(q, s, W, extra=1), "off by one: W + 1 keys per query"),
    (lambda q, s, W: slot_mask(q, s, W, causal=False), "a query sees a later position"),
    (lambda q, s, W: slot_mask(q, s, W) & (q[:, None] != s[None, :]), "the query's own key is hidden"),
    (lambda q, s, W: slot_mask(q, s, W).T, "rows and columns swapped"),
])
def test_slot_mask_names_the_mistake(wrong, says, capsys):
    named(ex.check_slot_mask, wrong, says, capsys)


def buggy_rotate_cached_keys(raw_keys, slot_positions, theta):
    """The notebook's buggy version: each key rotated by its slot number."""
    return rope(raw_keys, torch.arange(raw_keys.shape[1]), theta)


@pytest.mark.parametrize("wrong, says", [
    (buggy_rotate_cached_keys, "that is buggy_rotate_cached_keys's answer: each key rotated by its slot number"),
    (lambda k, s, theta: rope(k, torch.tensor(in_time_order(int(s.max()) + 1, len(s))), theta),
     "each slot rotated by the positions of the window in time order"),
    (lambda k, s, theta: rope(k, torch.full_like(s, int(s.max())), theta), "every key rotated by the newest position"),
    (lambda k, s, theta: k, "the keys are not rotated at all"),
    (lambda k, s, theta: rope(k, -s, theta), "rotated the wrong way"),
])
def test_rotate_cached_keys_names_the_mistake(wrong, says, capsys):
    named(ex.check_rotate_cached_keys, wrong, says, capsys)


@pytest.mark.parametrize("wrong, says", [
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, r, slots=min(n, a.sliding_window) if r else n),
     "the rolling buffer sized min(seq_len, W)"),
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, True), "the rolling flag is ignored: a full cache holds one slot"),
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, False), "the rolling flag is ignored: the rolling buffer holds W"),
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, r) // 2, "half the bytes"),
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, r) * a.n_heads // a.n_kv_heads, "n_heads instead of n_kv_heads"),
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, r) // a.n_layers, "one layer's cache"),
    (lambda a, n, i, r: kv_cache_bytes(a, n, i, r) // i, "numbers, not bytes"),
])
def test_kv_cache_bytes_names_the_mistake(wrong, says, capsys):
    named(ex.check_kv_cache_bytes, wrong, says, capsys)


@pytest.mark.parametrize("wrong, says", [
    (lambda p, S, n: p if p < S else S + p % (n - S), "the rolling slots count from position 0"),
    (lambda p, S, n: p % n, "the sinks get overwritten"),
    (lambda p, S, n: p if p < S else S + (p - S) % n, "the rolling part wraps after n_slots positions"),
    (lambda p, S, n: p if p < S else (p - S) % (n - S), "the rolling part lands on the sinks' slots"),
    (lambda p, S, n: S + (p - S) % (n - S), "the sinks are the first n_sinks positions"),
])
def test_sink_slot_names_the_mistake(wrong, says, capsys):
    named(ex.check_sink_slot, wrong, says, capsys)


def test_a_rolling_buffer_sized_to_the_text_fails(capsys):
    """The issue: min(seq_len, W) slots passed, because every rolling case was longer than W. The cache is
    allocated whole, so a text shorter than W still costs W slots."""
    status, out = verdict(ex.check_kv_cache_bytes,
                          lambda a, n, i, r: kv_cache_bytes(a, n, i, r, slots=min(n, a.sliding_window) if r else n),
                          capsys)
    assert status == "fail" and "rolling, itemsize 2, seq_len 1_000" in out, out


# ---------------------------------------------------------------------------------------------------------
# forbidden functions, wrong types: a message, never a traceback
# ---------------------------------------------------------------------------------------------------------


def test_slot_mask_must_be_written_out(capsys):
    assert_check_fails(ex.check_slot_mask, lambda q, s, W: sliding_window_mask(q, s, W),
                       ["mistral_mini.masks.sliding_window_mask is switched off"], capsys)


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_slot_and_evicted, lambda p, W: p % W, "expected a list or tuple"),
    (ex.check_slot_positions, lambda n, W: {n: W}, "expected a list or tuple"),
    (ex.check_slot_mask, lambda q, s, W: slot_mask(q, s, W).tolist(), "expected a torch.Tensor of shape (1, 8)"),
    (ex.check_slot_mask, lambda q, s, W: slot_mask(q, s, W)[0], "shape: got (8,), expected (1, 8)"),
    (ex.check_rotate_cached_keys, lambda k, s, theta: rope(k, s, theta).transpose(0, 1),
     "shape: got (8, 2, 16), expected (2, 8, 16)"),
    (ex.check_rotate_cached_keys, lambda k, s, theta: rope(k, s, theta).numpy(), "got a numpy.ndarray"),
    (ex.check_kv_cache_bytes, lambda a, n, i, r: kv_cache_bytes(a, n, i, r) + 0.5, "expected a whole number"),
    (ex.check_kv_cache_bytes, lambda a, n, i, r: torch.tensor([1, 2]), "expected one number"),
    (ex.check_kv_cache_bytes, lambda a, n, i, r: a.n_kv_head, "your code raised AttributeError"),
    (ex.check_sink_slot, lambda p, S, n: [sink_slot(p, S, n)], "expected one number, got a list"),
    (ex.check_sink_slot, lambda p, S, n: sink_slot(p, S, n) + 0.5, "expected a whole number"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)
