"""Figures and widgets of notebooks 06-10: each returns what it promises, and refuses bad input."""

import pytest
import torch
from matplotlib.figure import Figure

from mistral_mini import RollingBufferCache
from mistral_mini.cache import chunk_key_positions
from mistral_mini.generation import top_p_filter
from mistral_mini.lessons import viz, widgets
from mistral_mini.lessons.viz.generation import _sampling_probs
from mistral_mini.masks import sliding_window_mask
from tests.helpers import small_args


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


# 06 rolling buffer cache

@pytest.mark.parametrize("window", [1, 3, 8])
def test_rolling_buffer_figure_slots_match_the_cache(window):
    cache = RollingBufferCache(small_args(sliding_window=window, n_layers=1))
    # Before the buffer is full, just full, the first overwrite, the second lap, and far on.
    for position in sorted({0, 1, window - 1, window, 2 * window - 1, 2 * window, 4 * window + 1}):
        cache.reset()
        cache.advance(position + 1)  # positions 0..position are written
        top = viz.rolling_buffer_figure(position, window).axes[0]
        drawn = [-1 if t == "empty" else int(t) for t in texts(top) if t == "empty" or t.isdigit()]
        assert drawn == cache.slot_positions.tolist(), position


def test_rolling_buffer_figure_shows_slot_overwrite_and_wraparound():
    fig = viz.rolling_buffer_figure(11, window=8)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    top, bottom = fig.axes
    assert top.get_title() == "position 11 -> slot 11 % 8 = 3: overwrites position 3"
    held = [t for t in texts(top) if t.isdigit()]
    assert held == ["8", "9", "10", "11", "4", "5", "6", "7"]
    assert any("back to slot 0" in t for t in texts(top))
    assert "attends to the 8 position(s)" in bottom.get_title()


def test_rolling_buffer_figure_before_the_buffer_is_full():
    top, bottom = viz.rolling_buffer_figure(2, window=8).axes
    assert top.get_title().endswith("the slot was empty")
    assert texts(top).count("empty") == 5
    assert not any("back to slot 0" in t for t in texts(top))
    assert "attends to the 3 position(s)" in bottom.get_title()


@pytest.mark.parametrize("position, window", [(-1, 4), (3, 0)])
def test_rolling_buffer_figure_refuses_bad_input(position, window):
    with pytest.raises(ValueError, match="window >= 1 and position >= 0"):
        viz.rolling_buffer_figure(position, window)


def test_cache_memory_figure_draws_each_curve_and_labels_its_end():
    seq_lens = torch.arange(0, 32_769, 4096)
    per_token = 128 * 1024
    fig = viz.cache_memory_figure(seq_lens, {"full": seq_lens * per_token,
                                             "rolling": torch.full_like(seq_lens, 512 * 2**20)}, title="t")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["full", "rolling"]
    assert ax.lines[0].get_ydata()[-1] == pytest.approx(4.0)  # GiB
    assert texts(ax) == ["4 GiB", "512 MiB"]
    assert ax.get_ylim()[1] > 4.0


def test_cache_memory_figure_refuses_bad_input():
    with pytest.raises(ValueError, match="unit must be one of"):
        viz.cache_memory_figure([1, 2], {"a": [1, 2]}, unit="GB")
    with pytest.raises(ValueError, match="3 values for 2 sequence lengths"):
        viz.cache_memory_figure([1, 2], {"a": [1, 2, 3]})


# 07 pre-fill chunking

def chunk_panel(start, end, window):
    q_pos, k_pos = chunk_key_positions(start, end, window)
    return q_pos, k_pos, sliding_window_mask(q_pos, k_pos, window)


def test_chunk_key_positions_are_the_cache_then_the_chunk():
    q_pos, k_pos = chunk_key_positions(10, 15, 8)
    # The cached part is the W - 1 = 7 positions the first query (10) still sees: 3..9, not 2..9.
    assert q_pos.tolist() == list(range(10, 15)) and k_pos.tolist() == list(range(3, 15))
    assert chunk_key_positions(0, 5, 8)[1].tolist() == list(range(5))
    cache = RollingBufferCache(small_args(sliding_window=8, n_layers=1))
    cache.advance(10)
    assert cache.prefill(5).past_start == 3  # the figure draws what the cache hands over


def test_chunk_masks_figure_separates_cache_from_chunk():
    panels = [chunk_panel(0, 5, 8), chunk_panel(10, 15, 8)]
    fig = viz.chunk_masks_figure([p[0] for p in panels], [p[1] for p in panels], [p[2] for p in panels],
                                 ["first", "middle"])
    first, middle = fig.axes
    assert [first.get_title(), middle.get_title()] == ["first", "middle"]
    assert texts(first) == ["chunk"] and not first.lines  # no cache before the first chunk
    assert texts(middle) == ["cache", "chunk"]
    (divider,) = middle.lines
    assert divider.get_xdata()[0] == pytest.approx(6.5)  # after the W - 1 = 7 cached keys
    cache_label, chunk_label = middle.texts
    assert cache_label.get_position()[0] == pytest.approx(3.0)  # centred over keys 0..6
    assert chunk_label.get_position()[0] == pytest.approx(9.0)  # centred over keys 7..11
    assert first.texts[0].get_position()[0] == pytest.approx(2.0)  # all 5 keys of the first chunk are its own
    assert [t.get_text() for t in middle.get_xticklabels()] == [str(p) for p in range(3, 15)]


def test_chunk_masks_figure_refuses_bad_input():
    q_pos, k_pos, mask = chunk_panel(10, 15, 8)
    with pytest.raises(ValueError, match="as many"):
        viz.chunk_masks_figure([q_pos], [k_pos], [mask], ["a", "b"])
    with pytest.raises(ValueError, match="does not match 5 queries x 12 keys"):
        viz.chunk_masks_figure([q_pos], [k_pos], [mask[:, :-1]], ["a"])


def test_prefill_cost_figure_has_time_and_memory():
    fig = viz.prefill_cost_figure([1, 2, 4], {"full": [1, 2, 4], "chunked": [1, 2, 4]},
                                  {"full": [1, 2, 4], "chunked": [1, 1, 1]})
    left, right = fig.axes
    assert [left.get_title(), right.get_title()] == ["time", "peak memory"]
    assert len(left.lines) == len(right.lines) == 2
    assert list(right.lines[1].get_ydata()) == [1, 1, 1]


# 08 the whole model

def test_activation_figure_draws_every_curve():
    x = torch.linspace(-3, 3, 7)
    (ax,) = viz.activation_figure(x, {"relu": x.relu(), "silu": torch.nn.functional.silu(x)}, "t").axes
    assert [line.get_label() for line in ax.lines[:2]] == ["relu", "silu"]
    assert ax.get_title() == "t"


# 09 generation

LABELS = ["a", "b", "c", "d"]
LOGITS = torch.tensor([2.0, 1.0, 0.5, -1.0])


def test_sampling_probs_follow_sample():
    torch.testing.assert_close(_sampling_probs(LOGITS, 0.0, 1.0), torch.tensor([1.0, 0, 0, 0]))
    torch.testing.assert_close(_sampling_probs(LOGITS, 0.5, 0.8),
                               top_p_filter(torch.softmax(LOGITS / 0.5, -1), 0.8))


def test_sampling_figure_has_one_panel_per_setting():
    fig = viz.sampling_figure(LABELS, LOGITS, [(0.0, 1.0), (0.5, 1.0), (1.0, 0.6), (2.0, 0.9), (1.0, 1.0)])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["softmax(logits)", "greedy (temperature 0)", "temperature 0.5", "top-p 0.6",
                      "temperature 2, top-p 0.9", "temperature 1 (plain softmax)"]
    greedy = fig.axes[1]
    kept = [p for p in greedy.patches if p.get_facecolor()[3] > 0]  # filled bars; dropped ones are outlines
    assert len(kept) == 1 and kept[0].get_height() == pytest.approx(1.0)


def test_sampling_figure_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="one label each"):
        viz.sampling_figure(LABELS[:3], LOGITS, [])


# widgets

def slider(box, index):
    return box.children[1].children[index]


def test_rolling_buffer_explorer_redraws_on_the_slider():
    box = widgets.rolling_buffer_explorer(window=4, position=1)
    assert slider(box, 0).max == 16
    slider(box, 0).value = 9
    assert box.figure.axes[0].get_title() == "position 9 -> slot 9 % 4 = 1: overwrites position 5"


def test_chunk_mask_explorer_chunk_range_follows_the_chunk_size():
    box = widgets.chunk_mask_explorer(prompt_len=23, window=8, chunk_size=5)
    size, chunk = slider(box, 0), slider(box, 1)
    assert chunk.max == 4  # five chunks of 5 cover 23 tokens
    chunk.value = 4
    assert box.figure.axes[0].get_title() == "chunk 5 of 5: positions 20..22, W = 8"
    size.value = 12  # two chunks: the last chunk is now 1, and the slider moves there
    assert (chunk.max, chunk.value) == (1, 1)
    assert box.figure.axes[0].get_title() == "chunk 2 of 2: positions 12..22, W = 8"
    size.value = 1
    assert chunk.max == 22 and box.figure.axes[0].get_title() == "chunk 2 of 23: positions 1..1, W = 8"


def test_sampling_explorer_sliders():
    box = widgets.sampling_explorer(LABELS, LOGITS, temperature=1.0, top_p=1.0)
    slider(box, 0).value = 0.0
    assert box.figure.axes[1].get_title() == "greedy (temperature 0)"
    slider(box, 0).value = 1.0
    slider(box, 1).value = 0.5
    assert box.figure.axes[1].get_title() == "top-p 0.5"
