"""Notebooks 03-04: masks (causal, sliding window), attention weights, the cost of attention, and which query
heads share a key/value head under grouped-query attention."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import IN_COLOR, OUT_COLOR, bool_heatmap, heatmap, new_figure, printable, rectangle, to_numpy

# ---------------------------------------------------------------------------------------------------------
# 03 attention and masks
# ---------------------------------------------------------------------------------------------------------


def mask_pair(causal, window, window_size: int | None = None) -> Figure:
    """Causal mask and sliding-window mask, [T, T] bool each, side by side."""
    fig, (left, right) = new_figure(2)
    T = to_numpy(causal).shape[0]
    bool_heatmap(left, causal, f"causal, T = {T}")
    label = f"sliding window, W = {window_size}" if window_size is not None else "sliding window"
    bool_heatmap(right, window, label)
    return fig


def masks_figure(masks: Sequence, titles: Sequence[str], xlabel: str = "key position j",
                 ylabel: str = "query position i") -> Figure:
    """Any number of [rows, cols] bool masks side by side, one title each."""
    if len(masks) != len(titles):
        raise ValueError(f"got {len(masks)} masks but {len(titles)} titles")
    fig, axes = new_figure(len(masks))
    for ax, mask, title in zip(axes, masks, titles, strict=True):
        bool_heatmap(ax, mask, title, xlabel=xlabel, ylabel=ylabel)
    return fig


def window_grid(offsets, mask, window: int) -> Figure:
    """A small T x T grid: every cell shows i - j; cells inside the window ``0 <= i - j < W`` are coloured.

    Darker blue: inside the window. Light: in the past but too far back (i - j >= W). Grey: the future.
    """
    from matplotlib.colors import ListedColormap

    off, m = to_numpy(offsets), to_numpy(mask).astype(bool)
    T = off.shape[0]
    state = np.where(m, 2, np.where(off >= 0, 1, 0))  # 0 future, 1 too far back, 2 inside the window
    fig, (ax,) = new_figure(1, width=0.45 * T + 1.5, height=0.45 * T + 1.0)
    ax.imshow(state, cmap=ListedColormap([OUT_COLOR, "#c9daf0", IN_COLOR]), vmin=0, vmax=2)
    for i in range(T):
        for j in range(T):
            ax.text(j, i, str(int(off[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if state[i, j] == 2 else "#666666")
    ax.set_xticks(np.arange(T))
    ax.set_yticks(np.arange(T))
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    ax.set_title(f"i - j in every cell; blue: 0 <= i - j < W = {window}")
    return fig


def attention_weights(weights, labels: Sequence[str] | None = None,
                      title: str = "attention weights") -> Figure:
    """A [Tq, Tk] matrix of attention weights (rows sum to 1), numbers written in the cells when small."""
    w = to_numpy(weights)
    fig, (ax,) = new_figure(1, width=0.5 * w.shape[1] + 2.2, height=0.5 * w.shape[0] + 1.2)
    heatmap(ax, w, title, xlabel="key j", ylabel="query i", cmap="Blues", vmin=0, vmax=1, colorbar=False)
    ax.set_aspect("equal")
    if max(w.shape) <= 12:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if w[i, j] > 0.5 else "black")
    if labels is not None:
        ticks = [printable(s) for s in labels]
        ax.set_xticks(np.arange(len(labels)), ticks, rotation=90)
        ax.set_yticks(np.arange(len(labels)), ticks)
    return fig


def cost_curves(seq_lens: Sequence[int], series: dict[str, Sequence[float]], ylabel: str, title: str = "",
                log: bool = True) -> Figure:
    """One line per method of a cost (time, scores, bytes) against the sequence length T."""
    fig, (ax,) = new_figure(1, width=6.0, height=4.0)
    for name, values in series.items():
        ax.plot(list(seq_lens), list(values), marker="o", label=name)
    if log:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return fig


# ---------------------------------------------------------------------------------------------------------
# 04 grouped-query attention
# ---------------------------------------------------------------------------------------------------------


def _head_sharing_panel(ax, n_heads: int, n_kv_heads: int) -> None:
    from matplotlib import cm

    n_rep = n_heads // n_kv_heads
    colors = cm.tab10(np.arange(10))
    width = n_heads
    kv_x = [(g + 0.5) * width / n_kv_heads for g in range(n_kv_heads)]  # centre each KV head under its group
    for h in range(n_heads):
        g = h // n_rep
        ax.plot([h + 0.5, kv_x[g]], [1.55, 0.45], color=colors[g % 10], alpha=0.6, linewidth=1.2)
        ax.add_patch(rectangle((h + 0.1, 1.55), 0.8, 0.5, colors[g % 10], alpha=0.85))
        ax.text(h + 0.5, 1.8, f"q{h}", ha="center", va="center", fontsize=8)
    for g, x in enumerate(kv_x):
        ax.add_patch(rectangle((x - 0.4, -0.05), 0.8, 0.5, colors[g % 10], edgecolor="black"))
        ax.text(x, 0.2, f"kv{g}", ha="center", va="center", fontsize=8)
    ax.set_xlim(0, width)
    ax.set_ylim(-0.3, 2.3)
    ax.set_axis_off()


def kv_head_sharing(n_heads: int, kv_head_counts: Sequence[int]) -> Figure:
    """One panel per n_kv_heads: query heads on top, key/value heads below, a line for 'reads from'.

    n_kv_heads = n_heads is multi-head attention (MHA), 1 is multi-query (MQA), anything between is GQA.
    """
    fig, axes = new_figure(len(kv_head_counts), width=max(3.5, 0.45 * n_heads), height=2.4)
    for ax, n_kv in zip(axes, kv_head_counts, strict=True):
        if n_heads % n_kv:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of every n_kv_heads, got {n_kv}")
        kind = "MHA" if n_kv == n_heads else "MQA" if n_kv == 1 else "GQA"
        _head_sharing_panel(ax, n_heads, n_kv)
        ax.set_title(f"{kind}: {n_heads} query heads, {n_kv} KV head{'s' if n_kv > 1 else ''}", fontsize=10)
    return fig
