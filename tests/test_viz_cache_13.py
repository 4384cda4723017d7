"""The prefill timeline (notebook 07): every cell's kind comes from the cache's rules, the detail is the mask."""

import numpy as np
import pytest

from mistral_mini.lessons import viz
from mistral_mini.lessons.viz.cache import timeline_kinds


def cells(fig):
    """{(row, position): kind} from the timeline's cells."""
    out = {}
    for patch in fig.axes[0].patches:
        row, position, kind = patch.get_gid().split(":")
        out[int(row), int(position)] = kind
    return out


def positions(kinds, kind):
    return [p for p, k in enumerate(kinds) if k == kind]


def test_a_middle_chunk_sees_the_last_w_minus_1_cached_keys():
    # 23 tokens in chunks of 5, W = 8: chunk 2 is 10..14; the buffer holds 2..9, the chunk sees 3..9.
    kinds = timeline_kinds(10, 15, 23, 8)
    assert positions(kinds, "evicted") == [0, 1]
    assert positions(kinds, "unseen") == [2]
    assert positions(kinds, "cache") == list(range(3, 10))
    assert positions(kinds, "chunk") == list(range(10, 15))
    assert positions(kinds, "future") == list(range(15, 23))
    assert "dropped" not in kinds


def test_a_chunk_longer_than_w_writes_only_its_last_w_keys():
    kinds = timeline_kinds(10, 20, 23, 8)  # chunks of 10 with W = 8
    assert positions(kinds, "dropped") == [10, 11]
    assert positions(kinds, "chunk") == list(range(12, 20))
    assert positions(timeline_kinds(0, 10, 23, 8), "dropped") == [0, 1]


def test_the_first_chunk_has_no_cache():
    kinds = timeline_kinds(0, 5, 23, 8)
    assert set(kinds[:5]) == {"chunk"} and set(kinds[5:]) == {"future"}


def test_the_figure_draws_one_row_per_chunk_with_those_kinds():
    fig = viz.prefill_timeline_figure(23, 5, 8)
    drawn = cells(fig)
    assert len(drawn) == 5 * 23  # five chunks: 0..4, 5..9, 10..14, 15..19, 20..22
    for row, start in enumerate(range(0, 23, 5)):
        expected = timeline_kinds(start, min(start + 5, 23), 23, 8)
        assert [drawn[row, p] for p in range(23)] == expected
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "chunk 0: 0..4" and labels[-1] == "chunk 4: 20..22"


def test_the_detail_is_the_window_mask_of_one_chunk():
    fig = viz.prefill_timeline_figure(23, 5, 8)  # the last full chunk: 15..19
    grid = np.asarray(fig.axes[1].images[0].get_array())
    assert grid.shape == (5, 20)  # its 5 queries against keys 0..19
    for row, q in enumerate(range(15, 20)):
        seen = [k for k in range(20) if grid[row, k]]
        assert seen == list(range(q - 7, q + 1))  # W = 8 keys, itself included
        assert all(grid[row, k] == (2 if k >= 15 else 1) for k in seen)  # own keys apart from cached ones
    assert "chunk 3 (15..19)" in fig.axes[1].get_title()
    block_labels = [t.get_text() for t in fig.axes[1].texts]
    assert block_labels == ["past (evicted)", "cache (8 slots)", "this chunk"]


def test_bad_input():
    with pytest.raises(ValueError, match="detail"):
        viz.prefill_timeline_figure(23, 5, 8, detail=5)
    with pytest.raises(ValueError, match=">= 1"):
        viz.prefill_timeline_figure(23, 0, 8)
