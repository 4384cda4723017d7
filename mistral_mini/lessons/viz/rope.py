"""Notebook 02: rotary embeddings, each pair a rotation whose speed falls with k, and why scores see only i - j."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .style import ACCENT, heatmap, new_figure, rectangle, to_numpy


def rope_rotation(freqs, n_positions: int = 16, position: int | None = None, per_row: int = 4) -> Figure:
    """One unit circle per pair k: where a pair starting at (1, 0) lands at positions 0..n-1.

    Fast pairs (small k) sweep the circle in a few positions; slow ones barely move. ``position`` draws the
    arrow of that position in every panel.
    """
    from matplotlib import cm

    f = to_numpy(freqs).ravel()
    rows = -(-f.size // per_row)
    fig, axes = new_figure(per_row, rows, width=2.3, height=2.5)
    p = np.arange(n_positions)
    colors = cm.viridis(np.linspace(0, 1, n_positions))
    circle = np.linspace(0, 2 * np.pi, 200)
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k >= f.size:
            continue
        ax.plot(np.cos(circle), np.sin(circle), color="#cccccc", linewidth=1)
        ax.scatter(np.cos(p * f[k]), np.sin(p * f[k]), c=colors, s=18, zorder=3)
        if position is not None:
            angle = position * f[k]
            ax.annotate("", xy=(np.cos(angle), np.sin(angle)), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="->", color=ACCENT, linewidth=2))
        ax.set_xlim(-1.25, 1.25)
        ax.set_ylim(-1.25, 1.25)
        ax.set_aspect("equal")
        ax.set_title(f"pair {k}: {f[k]:.3g} rad/pos", fontsize=9)
    head = f"where each pair points at positions 0..{n_positions - 1} (dark = early, yellow = late)"
    fig.suptitle(head + (f"; arrow: position {position}" if position is not None else ""))
    return fig


def rope_waves(cos, title: str = "") -> Figure:
    """cos(position * freq_k) as a heatmap [positions, pairs]: one column per pair, one row per position."""
    fig, (ax,) = new_figure(1, width=6.0, height=4.0)
    heatmap(ax, cos, title or "cos of each pair's angle", xlabel="pair k (fast -> slow)", ylabel="position",
            cmap="RdBu_r", vmin=-1, vmax=1)
    return fig


def offset_scores(scores) -> Figure:
    """Left: the score q_i . k_j of one fixed q and k placed at every (i, j). Right: scores along offsets.

    If the score depends only on i - j, every diagonal of the left panel is one colour and the right panel's
    lines (one per starting position) lie on top of each other.
    """
    s = to_numpy(scores)
    T = s.shape[0]
    fig, (left, right) = new_figure(2, width=4.3, height=3.6)
    heatmap(left, s, "q at position i, k at position j", xlabel="key position j", ylabel="query position i")
    left.set_aspect("equal")
    for n, j in enumerate(range(0, T, max(1, T // 4))):
        offsets = np.arange(0, T - j)
        # Thick first, thinner after, so that lines lying on top of each other stay visible.
        right.plot(offsets, s[j + offsets, j], marker="o", markersize=7 - 1.5 * n, linewidth=6 - 1.5 * n,
                   alpha=0.8, label=f"key at {j}")
    right.set_xlabel("offset i - j")
    right.set_ylabel("score")
    right.set_title("score against the offset")
    right.legend(fontsize=8)
    return fig


def rope_layouts(head_dim: int) -> Figure:
    """Which features form a rotating pair: Mistral's interleaved layout vs Hugging Face's half-split."""
    from matplotlib import cm

    half = head_dim // 2
    layouts = {"Mistral: interleaved (x[2k], x[2k+1])": [i // 2 for i in range(head_dim)],
               "Hugging Face: half-split (x[k], x[k + D/2])": [i % half for i in range(head_dim)]}
    fig, axes = new_figure(1, 2, width=0.55 * head_dim + 1, height=1.3)
    colors = cm.tab20(np.linspace(0, 1, 20))
    for ax, (name, pairs) in zip(axes, layouts.items(), strict=True):
        for i, k in enumerate(pairs):
            ax.add_patch(rectangle((i + 0.05, 0.05), 0.9, 0.9, colors[k % 20]))
            ax.text(i + 0.5, 0.5, str(k), ha="center", va="center", fontsize=9)
            ax.text(i + 0.5, -0.25, str(i), ha="center", va="center", fontsize=7, color="#777777")
        ax.set_xlim(0, head_dim)
        ax.set_ylim(-0.5, 1)
        ax.set_axis_off()
        ax.set_title(name + ": box = feature index below, number = its pair k", fontsize=10)
    return fig
