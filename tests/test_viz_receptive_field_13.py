"""05's growth figure draws both readings of the paper's window: W keys (the bars) and W + 1 keys (the line)."""

from mistral_mini.lessons import viz
from mistral_mini.receptive_field import reach


def test_the_dashed_line_is_the_w_plus_1_reading_and_says_so():
    layers, window = 6, 5
    fig = viz.receptive_field_growth([reach(n, window) for n in range(1, layers + 1)], window,
                                     paper_span=reach(layers, window + 1))
    (ax,) = fig.axes
    (line,) = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert list(line.get_xdata()) == [-layers * window] * 2  # 6 x 5 = 30 back, the W + 1 reading
    (label,) = [t.get_text() for t in ax.texts if "W + 1 keys" in t.get_text()]
    assert f"{layers * window:,} back" in label and "i - W .. i" in label
    assert f"W = {window:,} keys per query" in ax.get_title()
    widths = [-p.get_width() for p in ax.patches]
    assert widths[-1] == layers * (window - 1) == 24  # the bars: W keys, W - 1 back per layer


def test_without_paper_span_only_the_bars():
    fig = viz.receptive_field_growth([reach(n, 4) for n in range(1, 4)], 4)
    (ax,) = fig.axes
    assert not [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert not [t for t in ax.texts if "W + 1" in t.get_text()]
