"""06's rolling-buffer figure: the wraparound arrow runs from the last slot to slot 0 and never crosses its label."""

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyArrowPatch

from mistral_mini.lessons import viz

LABEL = "after the last slot, back to slot 0"


def arrow_and_label(position, window, size=None):
    fig = viz.rolling_buffer_figure(position, window)
    if size is not None:
        fig.set_size_inches(*size)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the figure's layout is "constrained": measure where things land once it is applied
    renderer = canvas.get_renderer()
    top = fig.axes[0]
    (arrow,) = [p for p in top.patches if isinstance(p, FancyArrowPatch)]
    (label,) = [t for t in top.texts if t.get_text() == LABEL]
    return top, arrow.get_window_extent(renderer), label.get_window_extent(renderer)


@pytest.mark.parametrize("window", [2, 8, 16])
@pytest.mark.parametrize("size", [None, (14.0, 3.0)])
def test_the_wraparound_arrow_does_not_cross_its_label(window, size):
    _, arrow, label = arrow_and_label(2 * window + 1, window, size)
    assert arrow.y0 > label.y1, (arrow, label)  # the whole arrow lies above the label's top edge


@pytest.mark.parametrize("window", [3, 8])
def test_the_wraparound_arrow_runs_from_the_last_slot_to_slot_0(window):
    top, arrow, _ = arrow_and_label(window + 2, window)
    to_pixels = top.transData.transform
    last_slot_centre, first_slot_centre = to_pixels((window - 0.54, 0))[0], to_pixels((0.46, 0))[0]
    assert abs(arrow.x1 - last_slot_centre) < 8 and abs(arrow.x0 - first_slot_centre) < 8
    slots_bottom = to_pixels((0, 0))[1]
    assert arrow.y1 <= slots_bottom + 1  # it hangs under the slots, not across them
