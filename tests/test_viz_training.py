"""Figures of notebook 11: what each draws agrees with its data and with the reach L * (W - 1)."""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from mistral_mini.lessons import viz

ACCURACIES = {1: {3: 1.0, 4: 0.06}, 2: {6: 0.97, 7: 0.07}, 3: {7: 1.0, 9: 0.06, 10: 0.05}}


def _points(ax, label):
    (collection,) = [c for c in ax.collections if c.get_label() == label]
    return [tuple(p) for p in collection.get_offsets().tolist()]


def test_copy_accuracy_figure_shades_the_reach_of_each_layer_count():
    fig = viz.copy_accuracy_figure(ACCURACIES, window=4, vocab_size=16)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for L, ax in zip((1, 2, 3), fig.axes, strict=True):
        assert ax.get_title() == f"{L} layer{'s' if L > 1 else ''}, W = 4"
        (shade,) = ax.patches
        assert (shade.get_x(), shade.get_x() + shade.get_width()) == (-0.5, L * 3 + 0.5)  # distances 0..L(W-1)
        reach_line, chance_line = ax.lines
        assert list(reach_line.get_xdata()) == [L * 3 + 0.5] * 2
        assert list(chance_line.get_ydata()) == [1 / 16] * 2
        assert any(t.get_text() == f"reach {L} x (4 - 1) = {L * 3}" for t in ax.texts)


def test_copy_accuracy_figure_marks_learned_and_labels_reachable_but_not_learned():
    one, two, three = viz.copy_accuracy_figure(ACCURACIES, window=4, vocab_size=16).axes
    assert _points(one, "learned") == [(3, 1.0)] and _points(one, "not learned") == [(4, 0.06)]
    assert _points(two, "learned") == [(6, 0.97)]  # 0.97 >= the threshold 0.9
    assert _points(three, "not learned") == [(9, 0.06), (10, 0.05)]
    # Only d = 9 with 3 layers is inside its reach and not learned; d = 4, 7 and 10 lie past their reach.
    labelled = [(ax, t) for ax in (one, two, three) for t in ax.texts if "not learned" in t.get_text()]
    assert len(labelled) == 1 and labelled[0][0] is three and labelled[0][1].xy == (9, 0.06)
    assert [t.get_text() for t in one.get_legend().get_texts()] == ["learned", "not learned"]


@pytest.mark.parametrize("results, window, vocab_size, message", [
    ({}, 4, 16, "at least one layer count"),
    ({1: {}}, 4, 16, "at least one distance"),
    (ACCURACIES, 1, 16, "window >= 2"),
])
def test_copy_accuracy_figure_refuses_bad_input(results, window, vocab_size, message):
    with pytest.raises(ValueError, match=message):
        viz.copy_accuracy_figure(results, window, vocab_size)


def test_loss_curves_figure_draws_a_running_mean_per_run_and_the_chance_loss():
    losses = {"flat": [2.0] * 30, "ramp": list(range(30))}
    ax = viz.loss_curves_figure(losses, chance_loss=math.log(16), smooth=10).axes[0]
    flat, ramp, chance = ax.lines
    assert list(flat.get_xdata()) == list(range(9, 30)) and np.allclose(flat.get_ydata(), 2.0)
    assert np.allclose(ramp.get_ydata(), np.arange(21) + 4.5)  # the mean of 0..9 is 4.5, then one more a step
    assert list(chance.get_ydata()) == [math.log(16)] * 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["flat", "ramp"]
    assert any("ln V = 2.77" in t.get_text() for t in ax.texts)


def test_loss_curves_figure_shorter_than_the_smoothing_and_refusals():
    (line, _) = viz.loss_curves_figure({"short": [3.0, 1.0]}, chance_loss=1.0, smooth=10).axes[0].lines
    assert list(line.get_ydata()) == [2.0]  # the mean of what there is
    with pytest.raises(ValueError, match="at least one step"):
        viz.loss_curves_figure({"empty": []}, chance_loss=1.0)
    with pytest.raises(ValueError, match="smooth must be >= 1"):
        viz.loss_curves_figure({"a": [1.0]}, chance_loss=1.0, smooth=0)


def test_dependence_figure_puts_exact_zeros_on_the_bottom_edge():
    profiles = {"random": [1.0, 0.1, 0.01, 0.0], "trained": [0.5, 0.5, 2.0, 0.0]}
    ax = viz.dependence_figure(profiles, reach=2).axes[0]
    assert ax.get_yscale() == "log"
    (shade,) = ax.patches
    assert (shade.get_x(), shade.get_x() + shade.get_width()) == (-0.5, 2.5)
    random_line, random_zeros, trained_line, trained_zeros, _legend_only = ax.lines
    assert list(random_line.get_xdata()) == [0, 1, 2] and list(trained_line.get_ydata()) == [0.5, 0.5, 2.0]
    assert list(random_zeros.get_xdata()) == [3] and list(trained_zeros.get_xdata()) == [3]
    assert random_zeros.get_ydata()[0] < 0.01  # below every non-zero value
    assert "exactly 0" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_dependence_figure_refuses_profiles_of_different_lengths():
    with pytest.raises(ValueError, match="one value per distance"):
        viz.dependence_figure({"a": [1.0, 0.0], "b": [1.0]}, reach=1)
    with pytest.raises(ValueError, match="at least one model"):
        viz.dependence_figure({}, reach=1)
