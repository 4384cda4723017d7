"""viz: pure functions, data in, Figure out, never registered with pyplot (so a notebook shows each once)."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mistral_mini.lessons import viz
from mistral_mini.masks import causal_mask, sliding_window_mask
from mistral_mini.receptive_field import reach, receptive_field_mask
from mistral_mini.rope import rope_angles, rope_frequencies

POS = torch.arange(8)


def render(fig: Figure) -> None:
    """Draw to PNG bytes; fails on any warning, e.g. a glyph missing from the font."""
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png", dpi=40)


FIGURES = {
    "bytes_bars": lambda: viz.bytes_bars({"weights": 14.48e9, "cache": 2**29}, reference={"RAM": 16e9}),
    "parameter_breakdown": lambda: viz.parameter_breakdown({"embeddings": 131e6, "blocks": 6979e6}),
    "token_pieces": lambda: viz.token_pieces(["<s>", "▁Hello", "<0xF0>", "🙂"], [1, 22557, 243, 29000]),
    "norm_comparison": lambda: viz.norm_comparison(torch.randn(6), {"a": torch.randn(6), "b": torch.randn(6)}),
    "embedding_vectors": lambda: viz.embedding_vectors(torch.randn(3, 8), ["▁a", "▁b", "<0xF0>"]),
    "rope_rotation": lambda: viz.rope_rotation(rope_frequencies(8, 10000.0), 12, position=3),
    "rope_waves": lambda: viz.rope_waves(rope_angles(torch.arange(20), 8, 10000.0)[0]),
    "offset_scores": lambda: viz.offset_scores(torch.randn(10, 10)),
    "rope_layouts": lambda: viz.rope_layouts(8),
    "mask_pair": lambda: viz.mask_pair(causal_mask(POS, POS), sliding_window_mask(POS, POS, 3), 3),
    "masks_figure": lambda: viz.masks_figure([causal_mask(POS, POS)] * 3, ["a", "b", "c"]),
    "window_grid": lambda: viz.window_grid(POS[:, None] - POS[None], sliding_window_mask(POS, POS, 3), 3),
    "attention_weights": lambda: viz.attention_weights(torch.softmax(torch.randn(5, 5), -1), list("abcde")),
    "cost_curves": lambda: viz.cost_curves([64, 128], {"dense": [1.0, 4.0], "banded": [1.0, 2.0]}, "s"),
    "kv_head_sharing": lambda: viz.kv_head_sharing(8, [8, 2, 1]),
    "bytes_per_item": lambda: viz.bytes_per_item({"MHA": 2**19, "GQA": 2**17}),
    "receptive_field_growth": lambda: viz.receptive_field_growth([reach(n, 4096) for n in range(1, 33)], 4096,
                                                                 paper_span=131072),
    "gradient_profile": lambda: viz.gradient_profile(torch.tensor([0, 0, 1e-3, 0.5, 2.0, 0]), 4, 2),
}


@pytest.mark.parametrize("name", FIGURES)
def test_returns_a_figure_outside_pyplot_that_renders(name):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = FIGURES[name]()
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before, "a viz function must not create pyplot figures (shown twice)"
    render(fig)


def test_importing_viz_does_not_import_pyplot():
    code = ("import sys, mistral_mini.lessons.viz, mistral_mini.lessons.widgets; "
            "print('matplotlib.pyplot' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_model_never_imports_the_lessons():
    # The lessons sit on top of the model; the model, its loading and its generation must stand without them.
    code = ("import sys, mistral_mini, mistral_mini.transformer, mistral_mini.generation, mistral_mini.checkpoint; "
            "print(sorted(m for m in sys.modules if m.startswith('mistral_mini.lessons')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_mask_pair_draws_the_masks_it_is_given():
    causal, window = causal_mask(POS, POS), sliding_window_mask(POS, POS, 3)
    fig = viz.mask_pair(causal, window, 3)
    left, right = fig.axes
    assert np.array_equal(left.images[0].get_array(), causal.numpy().astype(float))
    assert np.array_equal(right.images[0].get_array(), window.numpy().astype(float))
    assert right.get_title() == "sliding window, W = 3"


def test_window_grid_writes_every_offset():
    fig = viz.window_grid(POS[:, None] - POS[None], sliding_window_mask(POS, POS, 3), 3)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 64 and texts[8] == "1" and texts[1] == "-1"  # row 1, col 0: i - j = 1


def test_kv_head_sharing_draws_one_line_per_query_head_and_names_the_kind():
    fig = viz.kv_head_sharing(8, [8, 2, 1])
    assert [len(ax.lines) for ax in fig.axes] == [8, 8, 8]
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["MHA", "GQA", "MQA"]
    with pytest.raises(ValueError, match="multiple"):
        viz.kv_head_sharing(8, [3])


def test_receptive_field_growth_bar_lengths_are_the_reaches():
    reaches = [reach(n, 5) for n in range(1, 5)]
    fig = viz.receptive_field_growth(reaches, 5)
    widths = [-p.get_width() for p in fig.axes[0].patches]
    assert widths == reaches


def test_rope_rotation_one_panel_per_pair():
    fig = viz.rope_rotation(rope_frequencies(8, 10000.0), 10)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4 and titled[0].get_title().startswith("pair 0: 1 rad/pos")


def test_token_pieces_checks_lengths_and_draws_every_piece():
    fig = viz.token_pieces(["▁a", "▁b"], [1, 2])
    assert [t.get_text() for t in fig.axes[0].texts] == ["▁a", "1", "▁b", "2"]
    with pytest.raises(ValueError, match="2 pieces but 1 ids"):
        viz.token_pieces(["▁a", "▁b"], [1])


def test_masks_figure_needs_one_title_per_mask():
    with pytest.raises(ValueError, match="2 masks but 1 titles"):
        viz.masks_figure([receptive_field_mask(4, 1, 2)] * 2, ["x"])
