"""viz.sampling_figure (notebook 09): the panels in rows of three, at a notebook's width, with a legend."""

import pytest
import torch

from mistral_mini.generation import top_p_filter
from mistral_mini.lessons import viz

LABELS = ["mat", "floor", "sofa", "roof", "bed", "table", "moon", "idea"]
LOGITS = torch.tensor([4.0, 3.1, 2.7, 2.0, 1.8, 1.5, -0.5, -2.0])
FIVE = [(0.0, 1.0), (0.5, 1.0), (1.5, 1.0), (1.0, 0.8)]  # notebook 09's strip: softmax + these four


def grid_cells(fig):
    """(row, column) of each panel in its grid, in the order of fig.axes."""
    return [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes]


def test_five_panels_go_in_two_rows_of_three_at_most():
    fig = viz.sampling_figure(LABELS, LOGITS, FIVE)
    assert grid_cells(fig) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # the sixth slot is removed
    assert [ax.get_title() for ax in fig.axes] == [
        "softmax(logits)", "greedy (temperature 0)", "temperature 0.5", "temperature 1.5", "top-p 0.8"]
    width, _ = fig.get_size_inches()
    assert width <= 9.5  # a notebook shows about 9 inches at 100 dpi without shrinking the text
    assert [ax.get_ylabel() for ax in fig.axes] == ["probability", "", "", "probability", ""]


def test_few_panels_stay_in_one_row():
    fig = viz.sampling_figure(LABELS, LOGITS, [(0.7, 0.9)])  # what the widget draws
    assert grid_cells(fig) == [(0, 0), (0, 1)]


def test_bar_heights_are_the_distribution_sample_draws_from():
    fig = viz.sampling_figure(LABELS, LOGITS, FIVE)
    top_p = fig.axes[4]
    filled = sorted((p.get_x() + p.get_width() / 2, p.get_height()) for p in top_p.patches
                    if p.get_facecolor()[3] > 0)
    expected = top_p_filter(torch.softmax(LOGITS, -1), 0.8)
    assert [round(x) for x, _ in filled] == expected.nonzero().flatten().tolist()  # mat, floor, sofa
    assert [h for _, h in filled] == pytest.approx(expected[expected > 0].tolist())
    hot = fig.axes[3]  # temperature 1.5: every token can still be drawn
    heights = [p.get_height() for p in hot.patches]
    assert heights == pytest.approx(torch.softmax(LOGITS / 1.5, -1).tolist())


def test_legend_names_only_the_kinds_of_bar_drawn():
    legend_texts = [t.get_text() for t in viz.sampling_figure(LABELS, LOGITS, FIVE).legends[0].get_texts()]
    assert legend_texts == ["probability it is drawn", "can no longer be drawn (at its softmax height)"]
    plain = viz.sampling_figure(LABELS, LOGITS, [(1.0, 1.0)])  # nothing is ever dropped
    assert [t.get_text() for t in plain.legends[0].get_texts()] == ["probability it is drawn"]
