"""The checks of notebook 07 (pre-fill chunking): right answers pass, each usual mistake is named, wrong types
get a message instead of a traceback, and the wrong answers that used to pass now fail."""

import pytest
import torch

from mistral_mini import RollingBufferCache
from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes, verdict
from tests.helpers import assert_mistake_named as named

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package's rules
# ---------------------------------------------------------------------------------------------------------


def held_after(n_seen, window):
    """The position each slot holds after n_seen tokens, -1 for an empty slot (a simulation)."""
    held = [-1] * window
    for p in range(n_seen):
        held[p % window] = p
    return held


def sees(q, k, window, extra=0, empty_ok=False, causal=True):
    return (empty_ok or k >= 0) and (not causal or q - k >= 0) and q - k < window + extra


def buffer_chunk_mask(start, end, window, held=None, **rule):
    held = held_after(start, window) if held is None else held
    keys = list(held) + list(range(start, end))  # the slots in slot order, then the chunk
    return torch.tensor([[sees(q, k, window, **rule) for k in keys] for q in range(start, end)])


def one_head(q, k, v, mask):
    scores = (q @ k.T / q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf"))
    weights = scores.exp() / scores.exp().sum(-1, keepdim=True)  # NaN where a query sees nothing
    return weights @ v


def prefill_attention(q, k, v, window, chunk_size, write_first=False, use_buffer=True, use_chunk=True, **rule):
    """A learner's chunked prefill through W slots; the keyword switches reproduce the usual mistakes."""
    T, D = q.shape
    slot_k, slot_v, slot_pos = torch.zeros(window, D), torch.zeros(window, D), [-1] * window
    out = []
    for s in range(0, T, chunk_size):
        e = min(s + chunk_size, T)

        def write(s=s, e=e):
            for p in range(max(s, e - window), e):
                slot_k[p % window], slot_v[p % window], slot_pos[p % window] = k[p], v[p], p

        if write_first:
            write()
        keys, values, k_pos = [], [], []
        if use_buffer:
            keys, values, k_pos = [slot_k], [slot_v], list(slot_pos)
        if use_chunk:
            keys, values, k_pos = keys + [k[s:e]], values + [v[s:e]], k_pos + list(range(s, e))
        mask = torch.tensor([[sees(p, j, window, **rule) for j in k_pos] for p in range(s, e)])
        out.append(one_head(q[s:e], torch.cat(keys), torch.cat(values), mask))
        if not write_first:
            write()
    return torch.cat(out)


def uneven_chunks(model, tokens, sizes):
    cache = RollingBufferCache(model.args)
    logits, start = [], 0
    for n in sizes:
        logits.append(model(tokens[None, start:start + n], cache=cache)[0])
        start += n
    return torch.cat(logits)




@pytest.mark.parametrize("check, right", [
    (ex.check_buffer_chunk_mask, buffer_chunk_mask),
    (ex.check_buffer_chunk_mask, lambda s, e, W: buffer_chunk_mask(s, e, W).int()),
    (ex.check_prefill_attention, prefill_attention),
    (ex.check_uneven_chunks, uneven_chunks),
    (ex.check_uneven_chunks, lambda m, t, sizes: torch.cat(  # the pieces cut first, with the sizes' sums
        [m(piece[None], cache=c)[0] for c in [RollingBufferCache(m.args)] for piece in t.split(sizes)])),
], ids=lambda x: getattr(x, "__name__", ""))
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


def in_position_order(start, window):
    return [start - window + s for s in range(window)]


def chunk_forgets_the_past(start, end, window):
    mask = buffer_chunk_mask(start, end, window)
    mask[:, :window] = False
    return mask


@pytest.mark.parametrize("wrong, says", [
    (lambda s, e, W: buffer_chunk_mask(s, e, W, held=list(range(W))), "a column's slot number was taken"),
    (lambda s, e, W: buffer_chunk_mask(s, e, W, held=in_position_order(s, W)),
     "the slots were read as if they were in position order"),
    (lambda s, e, W: buffer_chunk_mask(s, e, W, held=held_after(e, W)),
     "these are the slots after the chunk has been written"),
    (lambda s, e, W: buffer_chunk_mask(s, e, W, extra=e), "every filled slot is visible to every query"),
    (lambda s, e, W: buffer_chunk_mask(s, e, W, extra=1), "off by one: the slot holding position start - W"),
    (chunk_forgets_the_past, "the slots are all hidden, as if each chunk started with a new, empty cache"),
    (lambda s, e, W: buffer_chunk_mask(s, e, W, empty_ok=True), "empty slots (no position written yet, -1)"),
])
def test_buffer_chunk_mask_names_the_mistake(wrong, says, capsys):
    named(ex.check_buffer_chunk_mask, wrong, says, capsys)


@pytest.mark.parametrize("wrong, says", [
    (lambda q, k, v, W, C: prefill_attention(q, k, v, W, C, write_first=True, use_chunk=False),
     "the bug is still there"),
    (lambda q, k, v, W, C: prefill_attention(q, k, v, W, C, write_first=True), "the chunk's keys count twice"),
    (lambda q, k, v, W, C: prefill_attention(q, k, v, W, C, use_buffer=False),
     "each chunk attends to its own keys only, as with a new cache per chunk"),
    (lambda q, k, v, W, C: prefill_attention(q, k, v, W, C, extra=len(q)), "no window"),
])
def test_prefill_attention_names_the_mistake(wrong, says, capsys):
    named(ex.check_prefill_attention, wrong, says, capsys)


def prefill_with_index_mask(q, k, v, window, chunk_size):
    """The keys as a list (slots in slot order, then the chunk), the mask from indices into that list."""
    T, D = q.shape
    slot_k, slot_v = torch.zeros(window, D), torch.zeros(window, D)
    out = []
    for s in range(0, T, chunk_size):
        e = min(s + chunk_size, T)
        keys, values = torch.cat((slot_k, k[s:e])), torch.cat((slot_v, v[s:e]))
        n = len(keys)
        mask = torch.tensor([[sees(i, j, window) for j in range(n)] for i in range(n - (e - s), n)])
        out.append(one_head(q[s:e], keys, values, mask))
        for p in range(max(s, e - window), e):
            slot_k[p % window], slot_v[p % window] = k[p], v[p]
    return torch.cat(out)


def test_prefill_attention_names_a_mask_from_indices(capsys):
    named(ex.check_prefill_attention, prefill_with_index_mask, "the mask was built from indices", capsys)


def new_cache_per_piece(model, tokens, sizes):
    logits, start = [], 0
    for n in sizes:
        logits.append(model(tokens[None, start:start + n], cache=RollingBufferCache(model.args))[0])
        start += n
    return torch.cat(logits)


def pieces_of_the_first_size(model, tokens, sizes):
    cache = RollingBufferCache(model.args)
    return torch.cat([model(tokens[None, s:s + sizes[0]], cache=cache)[0]
                      for s in range(0, len(tokens), sizes[0])])


def last_of_each_piece(model, tokens, sizes):
    cache = RollingBufferCache(model.args)
    return torch.cat([model(piece[None], cache=cache, last_only=True)[0] for piece in tokens.split(sizes)])


@pytest.mark.parametrize("wrong, says", [
    (lambda m, t, sizes: m(t[None])[0], "one pass over the whole prompt"),
    (new_cache_per_piece, "a new cache for every piece"),
    (lambda m, t, sizes: torch.cat([m(piece[None])[0] for piece in t.split(sizes)]), "no cache"),
    (pieces_of_the_first_size, "every piece was cut to the first size"),
    (last_of_each_piece, "only the last position of each piece"),
])
def test_uneven_chunks_names_the_mistake(wrong, says, capsys):
    named(ex.check_uneven_chunks, wrong, says, capsys)


# ---------------------------------------------------------------------------------------------------------
# the wrong answers the issue pointed at, and those that used to pass
# ---------------------------------------------------------------------------------------------------------


def test_the_notebooks_buggy_prefill_is_right_only_for_chunks_of_one(capsys):
    """Writing before attending is harmless for one token (decode does it), wrong for any longer chunk: the
    check must not be fooled by the degenerate cases it also runs."""
    status, out = verdict(ex.check_prefill_attention,
                          lambda q, k, v, W, C: prefill_attention(q, k, v, W, C, write_first=True, use_chunk=False),
                          capsys)
    assert status == "fail" and "4 of 6 cases differ" in out and "on T=20, D=4, window=6, chunk_size=4" in out, out


def test_one_full_pass_no_longer_passes_for_chunks(capsys):
    """The old check compared logits only, so one pass over the whole prompt passed as 'chunked'."""
    assert_check_fails(ex.check_uneven_chunks, lambda m, t, sizes: m(t[None])[0],
                       ["model calls: 1 call(s), of [23] tokens, without a cache",
                        "expected:    chunks of [3, 9, 1, 10] tokens, at positions [0, 3, 12, 13]"], capsys)


def test_the_old_chunk_mask_rule_fails(capsys):
    """Keys from start - W with a window of W + 1 (the paper's wording): one key too many for the first query."""
    assert_check_fails(ex.check_buffer_chunk_mask, lambda s, e, W: buffer_chunk_mask(s, e, W, extra=1),
                       ["on start=11, end=15, window=8", "first wrong position [0, 3]: got True, expected False"],
                       capsys)


# ---------------------------------------------------------------------------------------------------------
# wrong types: a message, never a traceback
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_buffer_chunk_mask, lambda s, e, W: buffer_chunk_mask(s, e, W).tolist(),
     "expected a torch.Tensor of shape (4, 12)"),
    (ex.check_buffer_chunk_mask, lambda s, e, W: buffer_chunk_mask(s, e, W)[:, W:],
     "shape: got (4, 4), expected (4, 12)"),
    (ex.check_prefill_attention, lambda q, k, v, W, C: prefill_attention(q, k, v, W, C).numpy(), "got a numpy.ndarray"),
    (ex.check_prefill_attention, lambda q, k, v, W, C: q @ k, "your code raised RuntimeError"),
    (ex.check_uneven_chunks, lambda m, t, sizes: uneven_chunks(m, t, sizes)[None], "shape: got (1, 23, 97)"),
    (ex.check_uneven_chunks, lambda m, t, sizes: [m(t[None])], "expected a torch.Tensor of shape (23, 97), got a list"),
    (ex.check_uneven_chunks, lambda m, t, sizes: m(t, cache=RollingBufferCache(m.args)),
     "your code raised ValueError: tokens must be 2-D"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)


def test_a_result_instead_of_a_function_gets_a_message(capsys):
    assert_check_fails(ex.check_uneven_chunks, 3, ["expected a function, got int 3"], capsys)


def test_the_sizes_list_is_the_learners_to_consume(capsys):
    """A learner who pops the sizes off the list must not spoil the check's later cases."""
    def popping(model, tokens, sizes):
        cache, logits, start = RollingBufferCache(model.args), [], 0
        while sizes:
            n = sizes.pop(0)
            logits.append(model(tokens[None, start:start + n], cache=cache)[0])
            start += n
        return torch.cat(logits)

    assert_check_passes(ex.check_uneven_chunks, popping, capsys)


def test_the_check_leaves_the_notebooks_random_state_alone(capsys):
    state = torch.random.get_rng_state()
    assert_check_passes(ex.check_uneven_chunks, uneven_chunks, capsys)
    assert torch.equal(torch.random.get_rng_state(), state)
