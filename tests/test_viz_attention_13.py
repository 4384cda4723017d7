"""Figures of notebooks 03-04 added for issue 13: one attention layer's data flow, the blocks of the banded
path, and the fold of grouped-query attention. Their words and boxes come from the data they are given."""

import matplotlib.colors as mcolors
import pytest
import torch
from matplotlib.patches import FancyBboxPatch, Rectangle

from mistral_mini.lessons import viz
from mistral_mini.masks import sliding_window_mask


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_attention_flow_shapes_come_from_the_sizes():
    fig = viz.attention_flow(dim=64, n_heads=8, n_kv_heads=2, head_dim=16, window=5)
    words = "\n".join(texts(fig.axes[0]))
    for fact in ("wq\n64 -> 8 x 16", "wk\n64 -> 2 x 16", "wv\n64 -> 2 x 16", "sqrt(16)", "[8, T, T]",
                 "0 <= i - j < 5", "wo\n8 x 16 -> 64", "4 query heads share each key/value head"):
        assert fact in words, fact
    seven_b = "\n".join(texts(viz.attention_flow(4096, 32, 8, 128, 4096).axes[0]))
    assert "0 <= i - j < 4,096" in seven_b and "wk\n4,096 -> 8 x 128" in seven_b and "64 ->" not in seven_b


def test_attention_flow_steps_in_the_order_the_data_meets_them():
    ax = viz.attention_flow(64, 8, 2, 16, 5).axes[0]
    x_of = {}
    for t in ax.texts:
        first = t.get_text().split("\n")[0]
        x_of.setdefault(first, t.get_position()[0])
    chain = ["x", "wq", "RoPE on q", "scores", "mask", "softmax", "weights @ v", "wo"]
    xs = [x_of[name] for name in chain]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), dict(zip(chain, xs, strict=True))


def test_attention_flow_highlights_only_what_it_is_told():
    accent = mcolors.to_rgba(viz.ACCENT)

    def n_on(fig):
        return sum(p.get_facecolor() == accent for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch))

    assert n_on(viz.attention_flow(64, 8, 2, 16, 5)) == 0
    assert n_on(viz.attention_flow(64, 8, 2, 16, 5, highlight=("scores", "mask", "softmax"))) == 3
    with pytest.raises(ValueError, match="unknown steps"):
        viz.attention_flow(64, 8, 2, 16, 5, highlight=("attention",))


def test_banded_blocks_draws_each_block_where_its_scores_are():
    T, W = 10, 3
    p = torch.arange(T)
    blocks = [(0, 3, 0), (3, 6, 1), (6, 9, 4), (9, 10, 7)]
    ax = viz.banded_blocks(sliding_window_mask(p, p, W), blocks, "t").axes[0]
    frames = [r for r in ax.patches if isinstance(r, Rectangle) and r.get_facecolor()[3] == 0]
    # Each frame spans rows s..e-1 and columns lo..e-1 (cells are centred on whole numbers).
    drawn = sorted((r.get_y() + 0.5, r.get_y() + 0.5 + r.get_height(), r.get_x() + 0.5, r.get_x() + 0.5 + r.get_width())
                   for r in frames)
    assert drawn == [(s, e, lo, e) for s, e, lo in blocks]
    assert "block 2: queries 6-8, keys 4-8" in texts(ax)


def test_gqa_fold_stacks_the_neighbouring_heads_of_each_group():
    H, Hkv, T = 8, 2, 5
    fig = viz.gqa_fold(H, Hkv, T)
    left, right = fig.axes
    assert [t for t in texts(left) if t.startswith("q")] == [f"q{h}" for h in range(H)]
    # Right panel: each key/value head's row holds its group's query heads end to end, left to right.
    labels = [(t.get_position(), t.get_text()) for t in right.texts if t.get_text()[:1] in ("q", "k")]
    rows = {}
    for (x, y), text in labels:
        rows.setdefault(round(y, 6), []).append((x, text))
    by_row = [[text for _, text in sorted(row)] for _, row in sorted(rows.items(), reverse=True)]
    assert by_row == [["q0", "q1", "q2", "q3", "kv0"], ["q4", "q5", "q6", "q7", "kv1"]]
    # One cell per (query head, token) in each panel.
    n_cells = H * T
    assert sum(isinstance(p, Rectangle) and p.get_width() == 1 for p in left.patches) == n_cells
    assert sum(isinstance(p, Rectangle) and p.get_width() == 1 for p in right.patches) == n_cells
    assert f"n_rep * T = 4 x {T}" in right.get_title()
    with pytest.raises(ValueError, match="multiple"):
        viz.gqa_fold(8, 3, 4)


@pytest.mark.parametrize("make", [
    lambda: viz.attention_flow(4096, 32, 8, 128, 4096, highlight=("scores",)),
    lambda: viz.banded_blocks(sliding_window_mask(torch.arange(12), torch.arange(12), 4), [(0, 4, 0), (4, 8, 1)]),
    lambda: viz.gqa_fold(32, 8, 3),
])
def test_renders_without_warnings_outside_pyplot(make):
    import io
    import warnings

    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = make()
    assert plt.get_fignums() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png", dpi=40)
