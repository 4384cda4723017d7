"""The map of the model: real shapes from the config, the parameter count from a meta model, highlights."""

import matplotlib.colors as mcolors
import pytest
from matplotlib.patches import FancyBboxPatch

from mistral_mini import ModelArgs
from mistral_mini.lessons import viz


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def highlighted(fig):
    accent = mcolors.to_rgba(viz.ACCENT)
    return [p for ax in fig.axes for p in ax.patches
            if isinstance(p, FancyBboxPatch) and p.get_facecolor() == accent]


def test_the_7b_with_its_real_shapes():
    words = "\n".join(texts(viz.architecture_figure()))
    for fact in ("7,241,732,096 parameters", "32 layers", "[32,000 x 4,096]", "32 heads x 128", "8 heads x 128",
                 "4 query heads share", "0 <= i - j < 4,096", "w1, w3 4,096 -> 14,336", "theta 10,000",
                 "eps 1e-05", "4,096 slots"):
        assert fact in words, fact


def test_another_config_changes_every_figure():
    tiny = ModelArgs.from_name("tiny")
    words = "\n".join(texts(viz.architecture_figure(tiny)))
    assert f"{tiny.n_layers} layers" in words and f"0 <= i - j < {tiny.sliding_window:,}" in words
    assert "7,241,732,096" not in words


def test_highlights():
    assert highlighted(viz.architecture_figure()) == []
    assert len(highlighted(viz.architecture_figure(highlight=["attention", "cache"]))) == 2
    assert len(highlighted(viz.you_are_here(["feed_forward"], "08"))) == 1
    assert "08" in texts(viz.you_are_here(["feed_forward"], "08"))
    with pytest.raises(ValueError, match="unknown parts \\['mlp'\\]"):
        viz.you_are_here(["mlp"])
