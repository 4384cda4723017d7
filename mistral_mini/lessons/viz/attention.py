"""Notebooks 03-04: masks (causal, sliding window), attention weights, the cost of attention, the data flow of
one attention layer, the blocks of the banded path, and which query heads share a key/value head under
grouped-query attention (and how the package folds them onto it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import ACCENT, IN_COLOR, OUT_COLOR, bool_heatmap, heatmap, new_figure, printable, rectangle, to_numpy

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


# The steps of one attention layer, in the order the data meets them (keys for ``attention_flow``'s highlight).
FLOW_STEPS = ("x", "wq", "wk", "wv", "rope_q", "rope_k", "scores", "mask", "softmax", "weighted", "wo")


def _flow_box(ax, x: float, y: float, text: str, on: bool, w: float = 1.55, h: float = 0.9) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                facecolor=ACCENT if on else "#dfe8f2", edgecolor="#4a4a4a", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5, color="white" if on else "#1a1a1a")


def _flow_arrow(ax, start: tuple[float, float], end: tuple[float, float], label: str = "") -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color="#4a4a4a", lw=0.9, shrinkA=0, shrinkB=0))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, label, ha="center", va="bottom",
                fontsize=7, color="#44546a")


def attention_flow(dim: int, n_heads: int, n_kv_heads: int, head_dim: int, window: int,
                   highlight=()) -> Figure:
    """The data flow of one attention layer, left to right, with the shapes these sizes give it:

    x -> wq, wk, wv -> RoPE on q and k -> scores q k^T / sqrt(D) -> window mask -> softmax -> weights @ v -> wo.

    Steps named in ``highlight`` (from ``FLOW_STEPS``) are drawn in the accent colour.
    """
    on = set(highlight)
    unknown = on - set(FLOW_STEPS)
    if unknown:
        raise ValueError(f"unknown steps {sorted(unknown)}: choose from {list(FLOW_STEPS)}")
    H, Hkv, D = n_heads, n_kv_heads, head_dim
    fig, (ax,) = new_figure(1, width=11.5, height=3.6)
    ax.set_xlim(-0.9, 14.6)
    ax.set_ylim(-0.75, 3.05)
    ax.axis("off")
    col = dict(x=0.0, proj=1.95, rope=3.9, scores=5.85, mask=7.8, softmax=9.75, weighted=11.7, wo=13.7)
    yq, yk, yv, ymid = 2.4, 1.2, 0.0, 1.8
    boxes = {  # key: (x, y, text)
        "x": (col["x"], yk, f"x\n[T, {dim:,}]"),
        "wq": (col["proj"], yq, f"wq\n{dim:,} -> {H} x {D}"),
        "wk": (col["proj"], yk, f"wk\n{dim:,} -> {Hkv} x {D}"),
        "wv": (col["proj"], yv, f"wv\n{dim:,} -> {Hkv} x {D}"),
        "rope_q": (col["rope"], yq, f"RoPE on q\n[{H}, T, {D}]"),
        "rope_k": (col["rope"], yk, f"RoPE on k\n[{Hkv}, T, {D}]"),
        "scores": (col["scores"], ymid, f"scores\nq k^T / sqrt({D})\n[{H}, T, T]"),
        "mask": (col["mask"], ymid, f"mask\n0 <= i - j < {window:,}\nelse -inf"),
        "softmax": (col["softmax"], ymid, "softmax\nover keys j\nrows sum to 1"),
        "weighted": (col["weighted"], yk, f"weights @ v\n[{H}, T, {D}]"),
        "wo": (col["wo"], yk, f"wo\n{H} x {D} -> {dim:,}\n[T, {dim:,}]"),
    }
    for key in FLOW_STEPS:
        bx, by, text = boxes[key]
        _flow_box(ax, bx, by, text, key in on, w=1.3 if key == "x" else 1.55)
    half = 1.55 / 2
    for target in ("wq", "wk", "wv"):  # x feeds the three projections
        _flow_arrow(ax, (col["x"] + 0.65, yk), (col["proj"] - half, boxes[target][1]))
    _flow_arrow(ax, (col["proj"] + half, yq), (col["rope"] - half, yq), "q")
    _flow_arrow(ax, (col["proj"] + half, yk), (col["rope"] - half, yk), "k")
    _flow_arrow(ax, (col["rope"] + half, yq), (col["scores"] - half, ymid + 0.2))
    _flow_arrow(ax, (col["rope"] + half, yk), (col["scores"] - half, ymid - 0.2))
    _flow_arrow(ax, (col["scores"] + half, ymid), (col["mask"] - half, ymid))
    _flow_arrow(ax, (col["mask"] + half, ymid), (col["softmax"] - half, ymid))
    _flow_arrow(ax, (col["softmax"] + half, ymid), (col["weighted"] - 0.3, yk + 0.45), "weights")
    _flow_arrow(ax, (col["proj"] + half, yv), (col["weighted"] - 0.3, yk - 0.45), f"v  [{Hkv}, T, {D}]")
    _flow_arrow(ax, (col["weighted"] + half, yk), (col["wo"] - half, yk))
    n_rep = H // Hkv
    share = (f"{n_rep} query heads share each key/value head (GQA, notebook 04)" if n_rep > 1
             else "one key/value head per query head")
    ax.text(col["scores"] - half, -0.62, f"T tokens, {H} query heads, {Hkv} key/value heads of D = {D}; {share}",
            ha="left", va="center", fontsize=8, color="#44546a")
    ax.set_title("one attention layer: x -> q, k, v -> RoPE -> scores -> mask -> softmax -> weights @ v -> wo",
                 fontsize=10)
    return fig


def banded_blocks(mask, blocks: Sequence[tuple[int, int, int]], title: str = "") -> Figure:
    """The [T, T] mask with the rectangle of scores each block computes drawn over it.

    ``blocks``: (s, e, lo) per block: queries s..e-1 meet keys lo..e-1, so the block computes (e - s) x (e - lo)
    scores. Cells of the mask outside every rectangle are never computed.
    """
    from matplotlib.patches import Rectangle

    m = to_numpy(mask).astype(bool)
    T = m.shape[0]
    fig, (ax,) = new_figure(1, width=0.3 * (T + 9) + 1.0, height=0.3 * T + 1.2)
    bool_heatmap(ax, m, title)
    for n, (s, e, lo) in enumerate(blocks):
        ax.add_patch(Rectangle((lo - 0.5, s - 0.5), e - lo, e - s, facecolor="none", edgecolor=ACCENT,
                               linewidth=2.0, zorder=3))
        ax.text(e - 0.3, s - 0.3 + (e - s) / 2, f"block {n}: queries {s}-{e - 1}, keys {lo}-{e - 1}",
                ha="left", va="center", fontsize=8, color=ACCENT)
    ax.set_xlim(-0.5, T + 8.5)  # room on the right of the mask for the labels
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


def gqa_fold(n_heads: int, n_kv_heads: int, n_tokens: int) -> Figure:
    """The fold of grouped-query attention: q [B, H, T, D] -> q.reshape(B, Hkv, n_rep * T, D).

    Left: one row per query head, T token cells each. Right: one row per key/value head, the n_rep query heads
    of its group laid end to end along the token axis, all meeting that one key/value head.
    """
    from matplotlib import cm

    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
    H, Hkv, T = n_heads, n_kv_heads, n_tokens
    n_rep = H // Hkv
    colors = cm.tab10(np.arange(10))
    fig, (left, right) = new_figure(2, width=5.0, height=max(2.2, 0.36 * H + 1.3),
                                    gridspec_kw={"width_ratios": [T + 3, n_rep * T + 5]})
    for h in range(H):  # left: q as [H, T], row h = query head h
        g = h // n_rep
        for t in range(T):
            left.add_patch(rectangle((t, H - 1 - h), 1, 1, colors[g % 10], alpha=0.45 + 0.5 * (h % n_rep) / n_rep))
        left.text(-0.3, H - 0.5 - h, f"q{h}", ha="right", va="center", fontsize=8)
    left.set_xlim(-2.2, T + 0.5)
    left.set_ylim(-0.7, H + 0.2)
    left.set_axis_off()
    left.text(T / 2, -0.1, f"tokens 0 .. {T - 1}", ha="center", va="top", fontsize=8, color="#44546a")
    left.set_title(f"q [B, H = {H}, T = {T}, D]\none row per query head", fontsize=9)
    row_h = H / Hkv  # the right panel uses the same height, its Hkv rows spread over it
    for g in range(Hkv):
        y = H - (g + 1) * row_h + 0.15 * row_h
        for r in range(n_rep):
            h = g * n_rep + r  # the query heads of group g are neighbours: g * n_rep .. g * n_rep + n_rep - 1
            for t in range(T):  # row r * T + t of the stack: query head h, token t
                right.add_patch(rectangle((r * T + t, y), 1, 0.7 * row_h, colors[g % 10],
                                          alpha=0.45 + 0.5 * r / n_rep))
            right.text(r * T + T / 2, y + 0.35 * row_h, f"q{h}", ha="center", va="center", fontsize=8)
        right.add_patch(rectangle((n_rep * T + 1, y), 3, 0.7 * row_h, colors[g % 10], edgecolor="black"))
        right.text(n_rep * T + 2.5, y + 0.35 * row_h, f"kv{g}", ha="center", va="center", fontsize=8)
        right.annotate("", xy=(n_rep * T + 1, y + 0.35 * row_h), xytext=(n_rep * T, y + 0.35 * row_h),
                       arrowprops=dict(arrowstyle="<|-|>", color="#4a4a4a", lw=0.8, shrinkA=0, shrinkB=0))
    right.text(n_rep * T / 2, -0.1, f"rows 0 .. {n_rep * T - 1} of each stack", ha="center", va="top", fontsize=8,
               color="#44546a")
    right.set_xlim(-0.5, n_rep * T + 4.5)
    right.set_ylim(-0.7, H + 0.2)
    right.set_axis_off()
    right.set_title(f"q.reshape(B, Hkv = {Hkv}, n_rep * T = {n_rep} x {T}, D)\n"
                    f"one row per key/value head: its {n_rep} query heads end to end", fontsize=9)
    return fig
