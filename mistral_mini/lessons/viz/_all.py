"""Figures for the notebooks: pure functions, data in, ``matplotlib.figure.Figure`` out.

Nothing here touches pyplot: a ``Figure`` built directly is not registered with pyplot's figure manager, so a
notebook shows it exactly once (as the value of the cell, or through ``display``) and never a second time when
the cell ends. In a notebook, run ``%matplotlib inline`` once so that Jupyter knows how to draw a Figure.

Layout of this module: shared private helpers first, then one public function per figure, grouped by notebook.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .checkpoint import format_bytes

# A few named colours used across the series, so the same idea has the same colour in every notebook.
IN_COLOR = "#3b75af"  # visible / allowed / kept
OUT_COLOR = "#f0f0f0"  # masked / not reachable
ACCENT = "#d9534f"  # the thing to look at


def _figure(ncols: int = 1, nrows: int = 1, width: float = 4.0, height: float = 3.5,
            **kw) -> tuple[Figure, list]:
    """A Figure and a flat list of its axes; each panel is ``width`` x ``height`` inches."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, list(axes.flat)


def _to_numpy(x) -> np.ndarray:
    """Tensor, array or nested list -> numpy array, on the CPU, detached."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _bool_heatmap(ax, mask, title: str = "", xlabel: str = "key position j", ylabel: str = "query position i",
                  color: str = IN_COLOR, annotate_ticks: bool = True) -> None:
    """Draw a [rows, cols] bool mask: ``color`` where True, light grey where False, with cell borders."""
    from matplotlib.colors import ListedColormap

    m = _to_numpy(mask).astype(float)
    rows, cols = m.shape
    ax.imshow(m, cmap=ListedColormap([OUT_COLOR, color]), vmin=0, vmax=1, interpolation="nearest")
    if max(rows, cols) <= 40:
        # Thin white lines between cells make single positions countable.
        ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.8)
        ax.tick_params(which="minor", length=0)
    if annotate_ticks:
        step = max(1, int(np.ceil(max(rows, cols) / 12)))  # at most ~12 labels, so they never overlap
        ax.set_xticks(np.arange(0, cols, step))
        ax.set_yticks(np.arange(0, rows, step))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _rectangle(xy: tuple[float, float], width: float, height: float, color, **kw):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, width, height, facecolor=color, edgecolor=kw.pop("edgecolor", "white"), **kw)


def _heatmap(ax, values, title: str = "", xlabel: str = "", ylabel: str = "", cmap: str = "viridis",
             colorbar: bool = True, **kw) -> None:
    """Draw a [rows, cols] float array with a colour bar."""
    image = ax.imshow(_to_numpy(values), cmap=cmap, interpolation="nearest", aspect="auto", **kw)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.85)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


# ---------------------------------------------------------------------------------------------------------
# 00 welcome
# ---------------------------------------------------------------------------------------------------------


def bytes_bars(values: dict[str, float], title: str = "",
               reference: dict[str, float] | None = None) -> Figure:
    """Horizontal bars of byte counts, each labelled in GB / GiB; ``reference`` adds dashed vertical lines."""
    fig, (ax,) = _figure(1, width=7.5, height=0.6 * len(values) + 1.4)
    labels = list(values)
    sizes = [float(values[k]) / 1e9 for k in labels]
    ax.barh(labels, sizes, color=IN_COLOR)
    for y, (label, size) in enumerate(zip(labels, sizes, strict=True)):
        ax.text(size, y, f"  {size:,.2f} GB = {format_bytes(values[label])}", va="center")
    for name, value in (reference or {}).items():
        ax.axvline(float(value) / 1e9, color=ACCENT, linestyle="--")
        ax.text(float(value) / 1e9, len(labels) - 0.4, f" {name}", color=ACCENT, va="bottom")
    ax.invert_yaxis()
    ax.set_xlabel("GB (10^9 bytes)")
    ax.set_xlim(0, max(sizes + [float(v) / 1e9 for v in (reference or {}).values()]) * 1.35)
    ax.set_title(title)
    return fig


def parameter_breakdown(counts: dict[str, int], title: str = "") -> Figure:
    """Horizontal bars of parameter counts per part of the model, labelled in millions and percent."""
    fig, (ax,) = _figure(1, width=7.5, height=0.5 * len(counts) + 1.4)
    labels = list(counts)
    total = sum(counts.values())
    ax.barh(labels, [counts[k] / 1e9 for k in labels], color=IN_COLOR)
    for y, label in enumerate(labels):
        share = 100 * counts[label] / total
        amount = f"{counts[label] / 1e6:,.0f} M" if counts[label] >= 1e6 else f"{counts[label]:,}"
        ax.text(counts[label] / 1e9, y, f"  {amount} ({share:.2g}%)", va="center")
    ax.invert_yaxis()
    ax.set_xlim(0, max(counts.values()) / 1e9 * 1.45)
    ax.set_xlabel("billions of parameters")
    ax.set_title(title or f"{total:,} parameters")
    return fig


# ---------------------------------------------------------------------------------------------------------
# 01 tokens, embeddings, RMSNorm
# ---------------------------------------------------------------------------------------------------------


def _printable(piece: str) -> str:
    """A piece as matplotlib's default font can draw it: characters beyond the BMP become U+XXXX."""
    return "".join(c if ord(c) <= 0xFFFF else f"U+{ord(c):X}" for c in piece)


def token_pieces(pieces: Sequence[str], ids: Sequence[int], title: str = "", per_row: int = 8) -> Figure:
    """Each token as a box: its piece on top, its id below; ``per_row`` boxes per line.

    Byte-fallback pieces (``<0xF0>``) are orange, control tokens (``<s>``) grey, ordinary pieces blue."""
    if len(pieces) != len(ids):
        raise ValueError(f"got {len(pieces)} pieces but {len(ids)} ids")
    rows = max(1, -(-len(pieces) // per_row))
    fig, (ax,) = _figure(1, width=1.2 * per_row, height=0.95 * rows + 0.5)
    for n, (piece, token_id) in enumerate(zip(pieces, ids, strict=True)):
        x, y = n % per_row, -(n // per_row)
        byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")  # byte fallback, <0xF0>
        control = not byte and piece.startswith("<") and piece.endswith(">")  # <s>, </s>, <unk>
        color = "#fbd3b8" if byte else "#e4e4e4" if control else "#dde8f3"
        ax.add_patch(_rectangle((x + 0.04, y - 0.42), 0.92, 0.84, color))
        ax.text(x + 0.5, y + 0.12, _printable(piece), ha="center", va="center", fontsize=10,
                family="monospace")
        ax.text(x + 0.5, y - 0.22, str(token_id), ha="center", va="center", fontsize=8, color="#555555")
    ax.set_xlim(0, per_row)
    ax.set_ylim(-rows + 0.5, 0.5)
    ax.set_axis_off()
    ax.set_title(title or f"{len(pieces)} tokens")
    return fig


def norm_comparison(x, outputs: dict[str, object], title: str = "") -> Figure:
    """The features of one vector before and after each normalization, as bars, with mean and RMS noted."""
    vectors = {"input": _to_numpy(x).ravel(), **{k: _to_numpy(v).ravel() for k, v in outputs.items()}}
    fig, axes = _figure(len(vectors), width=3.4, height=3.0, sharey=False)
    for ax, (name, v) in zip(axes, vectors.items(), strict=True):
        ax.bar(np.arange(v.size), v, color=[IN_COLOR if e >= 0 else ACCENT for e in v])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axhline(v.mean(), color="#777777", linestyle="--", linewidth=1)
        mean = round(float(v.mean()), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
        ax.set_title(f"{name}\nmean {mean:+.2f}, RMS {np.sqrt((v ** 2).mean()):.2f}", fontsize=10)
        ax.set_xlabel("feature")
    if title:
        fig.suptitle(title)
    return fig


def embedding_vectors(vectors, labels: Sequence[str], title: str = "") -> Figure:
    """Rows of an embedding table as a heatmap: one row per token, one column per feature."""
    v = _to_numpy(vectors)
    fig, (ax,) = _figure(1, width=7.0, height=0.35 * len(labels) + 1.5)
    limit = float(np.abs(v).max()) or 1.0
    _heatmap(ax, v, title, xlabel="feature", cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_yticks(np.arange(len(labels)), [_printable(s) for s in labels], family="monospace")
    return fig


# ---------------------------------------------------------------------------------------------------------
# 02 rotary embeddings
# ---------------------------------------------------------------------------------------------------------


def rope_rotation(freqs, n_positions: int = 16, position: int | None = None, per_row: int = 4) -> Figure:
    """One unit circle per pair k: where a pair starting at (1, 0) lands at positions 0..n-1.

    Fast pairs (small k) sweep the circle in a few positions; slow ones barely move. ``position`` draws the
    arrow of that position in every panel.
    """
    from matplotlib import cm

    f = _to_numpy(freqs).ravel()
    rows = -(-f.size // per_row)
    fig, axes = _figure(per_row, rows, width=2.3, height=2.5)
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
    fig, (ax,) = _figure(1, width=6.0, height=4.0)
    _heatmap(ax, cos, title or "cos of each pair's angle", xlabel="pair k (fast -> slow)", ylabel="position",
             cmap="RdBu_r", vmin=-1, vmax=1)
    return fig


def offset_scores(scores) -> Figure:
    """Left: the score q_i . k_j of one fixed q and k placed at every (i, j). Right: scores along offsets.

    If the score depends only on i - j, every diagonal of the left panel is one colour and the right panel's
    lines (one per starting position) lie on top of each other.
    """
    s = _to_numpy(scores)
    T = s.shape[0]
    fig, (left, right) = _figure(2, width=4.3, height=3.6)
    _heatmap(left, s, "q at position i, k at position j", xlabel="key position j", ylabel="query position i")
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
    fig, axes = _figure(1, 2, width=0.55 * head_dim + 1, height=1.3)
    colors = cm.tab20(np.linspace(0, 1, 20))
    for ax, (name, pairs) in zip(axes, layouts.items(), strict=True):
        for i, k in enumerate(pairs):
            ax.add_patch(_rectangle((i + 0.05, 0.05), 0.9, 0.9, colors[k % 20]))
            ax.text(i + 0.5, 0.5, str(k), ha="center", va="center", fontsize=9)
            ax.text(i + 0.5, -0.25, str(i), ha="center", va="center", fontsize=7, color="#777777")
        ax.set_xlim(0, head_dim)
        ax.set_ylim(-0.5, 1)
        ax.set_axis_off()
        ax.set_title(name + ": box = feature index below, number = its pair k", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------------
# 03 attention and masks
# ---------------------------------------------------------------------------------------------------------


def mask_pair(causal, window, window_size: int | None = None) -> Figure:
    """Causal mask and sliding-window mask, [T, T] bool each, side by side."""
    fig, (left, right) = _figure(2)
    T = _to_numpy(causal).shape[0]
    _bool_heatmap(left, causal, f"causal, T = {T}")
    label = f"sliding window, W = {window_size}" if window_size is not None else "sliding window"
    _bool_heatmap(right, window, label)
    return fig


def masks_figure(masks: Sequence, titles: Sequence[str], xlabel: str = "key position j",
                 ylabel: str = "query position i") -> Figure:
    """Any number of [rows, cols] bool masks side by side, one title each."""
    if len(masks) != len(titles):
        raise ValueError(f"got {len(masks)} masks but {len(titles)} titles")
    fig, axes = _figure(len(masks))
    for ax, mask, title in zip(axes, masks, titles, strict=True):
        _bool_heatmap(ax, mask, title, xlabel=xlabel, ylabel=ylabel)
    return fig


def window_grid(offsets, mask, window: int) -> Figure:
    """A small T x T grid: every cell shows i - j; cells inside the window ``0 <= i - j < W`` are coloured.

    Darker blue: inside the window. Light: in the past but too far back (i - j >= W). Grey: the future.
    """
    from matplotlib.colors import ListedColormap

    off, m = _to_numpy(offsets), _to_numpy(mask).astype(bool)
    T = off.shape[0]
    state = np.where(m, 2, np.where(off >= 0, 1, 0))  # 0 future, 1 too far back, 2 inside the window
    fig, (ax,) = _figure(1, width=0.45 * T + 1.5, height=0.45 * T + 1.0)
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
    w = _to_numpy(weights)
    fig, (ax,) = _figure(1, width=0.5 * w.shape[1] + 2.2, height=0.5 * w.shape[0] + 1.2)
    _heatmap(ax, w, title, xlabel="key j", ylabel="query i", cmap="Blues", vmin=0, vmax=1, colorbar=False)
    ax.set_aspect("equal")
    if max(w.shape) <= 12:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if w[i, j] > 0.5 else "black")
    if labels is not None:
        ticks = [_printable(s) for s in labels]
        ax.set_xticks(np.arange(len(labels)), ticks, rotation=90)
        ax.set_yticks(np.arange(len(labels)), ticks)
    return fig


def cost_curves(seq_lens: Sequence[int], series: dict[str, Sequence[float]], ylabel: str, title: str = "",
                log: bool = True) -> Figure:
    """One line per method of a cost (time, scores, bytes) against the sequence length T."""
    fig, (ax,) = _figure(1, width=6.0, height=4.0)
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
        ax.add_patch(_rectangle((h + 0.1, 1.55), 0.8, 0.5, colors[g % 10], alpha=0.85))
        ax.text(h + 0.5, 1.8, f"q{h}", ha="center", va="center", fontsize=8)
    for g, x in enumerate(kv_x):
        ax.add_patch(_rectangle((x - 0.4, -0.05), 0.8, 0.5, colors[g % 10], edgecolor="black"))
        ax.text(x, 0.2, f"kv{g}", ha="center", va="center", fontsize=8)
    ax.set_xlim(0, width)
    ax.set_ylim(-0.3, 2.3)
    ax.set_axis_off()


def kv_head_sharing(n_heads: int, kv_head_counts: Sequence[int]) -> Figure:
    """One panel per n_kv_heads: query heads on top, key/value heads below, a line for 'reads from'.

    n_kv_heads = n_heads is multi-head attention (MHA), 1 is multi-query (MQA), anything between is GQA.
    """
    fig, axes = _figure(len(kv_head_counts), width=max(3.5, 0.45 * n_heads), height=2.4)
    for ax, n_kv in zip(axes, kv_head_counts, strict=True):
        if n_heads % n_kv:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of every n_kv_heads, got {n_kv}")
        kind = "MHA" if n_kv == n_heads else "MQA" if n_kv == 1 else "GQA"
        _head_sharing_panel(ax, n_heads, n_kv)
        ax.set_title(f"{kind}: {n_heads} query heads, {n_kv} KV head{'s' if n_kv > 1 else ''}", fontsize=10)
    return fig


def bytes_per_item(values: dict[str, float], title: str = "", unit: str = "per token") -> Figure:
    """Vertical bars of byte counts, labelled in KiB / MiB / GiB: e.g. KV cache bytes per token."""
    fig, (ax,) = _figure(1, width=1.6 * len(values) + 2.5, height=3.6)
    labels = list(values)
    ax.bar(labels, [float(values[k]) for k in labels], color=IN_COLOR)
    for x, label in enumerate(labels):
        ax.text(x, float(values[label]), format_bytes(values[label]), ha="center", va="bottom")
    top = max(float(v) for v in values.values()) * 1.2
    ax.set_ylim(0, top)
    from matplotlib.ticker import MultipleLocator

    ax.yaxis.set_major_locator(MultipleLocator(2 ** np.floor(np.log2(top / 4))))  # round binary steps
    ax.yaxis.set_major_formatter(lambda value, _: format_bytes(value))
    ax.set_ylabel(f"bytes {unit}")
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------------------------------------
# 05 receptive field
# ---------------------------------------------------------------------------------------------------------


def receptive_field_growth(reaches: Sequence[int], window: int, paper_span: int | None = None,
                           label_every: int = 8) -> Figure:
    """One horizontal bar per layer count L: the positions that can reach the last token after L layers.

    ``reaches[L - 1]`` is how far back L layers see. ``paper_span`` draws the paper's L * W for comparison.
    """
    L = len(reaches)
    fig, (ax,) = _figure(1, width=8.0, height=0.16 * L + 1.8)
    layers = np.arange(1, L + 1)
    ax.barh(layers, [-r for r in reaches], left=0, height=0.8, color=IN_COLOR)
    for layer, r in zip(layers, reaches, strict=True):
        if layer == 1 or layer % label_every == 0 or layer == L:
            ax.text(-r, layer, f"{r:,} back  ", ha="right", va="center", fontsize=8)
    if paper_span is not None:
        ax.axvline(-paper_span, color=ACCENT, linestyle="--")
        ax.text(-paper_span, 0.2, f" paper: {paper_span:,}", color=ACCENT, va="top", fontsize=9)
    ax.set_xlim(-max(list(reaches) + [paper_span or 0]) * 1.3, max(reaches) * 0.03)
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    ax.set_ylim(L + 1, 0)
    ax.set_xlabel("position relative to the last token (0 = the token itself)")
    ax.set_ylabel("layers L")
    ax.set_title(f"receptive field of the last token, W = {window:,}: L * (W - 1) positions back")
    return fig


def gradient_profile(grad_norms, position: int, reach: int, title: str = "") -> Figure:
    """|d output[position] / d input[j]| over j (log scale), the analytic field shaded.

    The shading is [position - reach, position]: if the analysis is right, bars appear exactly inside it."""
    g = _to_numpy(grad_norms).ravel()
    fig, (ax,) = _figure(1, width=7.0, height=3.2)
    ax.axvspan(max(position - reach, 0) - 0.5, position + 0.5, color="#c9daf0", label="analytic field")
    nonzero = g > 0
    ax.bar(np.arange(g.size)[nonzero], g[nonzero], color=IN_COLOR, label="gradient non-zero")
    ax.plot(np.arange(g.size)[~nonzero], np.full((~nonzero).sum(), g[nonzero].min() if nonzero.any() else 1),
            "x", color=ACCENT, label="gradient exactly 0")
    ax.set_yscale("log")
    ax.set_xlabel("input position j")
    ax.set_ylabel(f"|d out[{position}] / d emb[j]|")
    ax.set_title(title or f"which inputs move output {position}")
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ---------------------------------------------------------------------------------------------------------
# Notebooks 06-10
# ---------------------------------------------------------------------------------------------------------


def _slot_positions(position: int, window: int) -> list[int]:
    """The position each of the W slots holds once positions 0..position are written (-1: still empty)."""
    held = []
    for slot in range(window):
        # The latest p <= position with p % window == slot.
        latest = position - ((position - slot) % window)
        held.append(latest if latest >= 0 else -1)
    return held


def rolling_buffer_figure(position: int, window: int, max_timeline: int = 48) -> Figure:
    """The rolling buffer right after the token at ``position`` is written into slot ``position % window``.

    Top: the W slots, each with the position it holds; the slot just written in the accent colour. Bottom:
    the positions seen so far; those still in a slot are the ones the query at ``position`` may attend to.
    """
    if window < 1 or position < 0:
        raise ValueError(f"need window >= 1 and position >= 0, got window={window}, position={position}")
    from matplotlib.patches import FancyArrowPatch, Rectangle

    held = _slot_positions(position, window)
    slot = position % window
    evicted = position - window
    fig, (top, bottom) = _figure(1, 2, width=9.0, height=2.0)

    # The slots.
    for s, p in enumerate(held):
        color = ACCENT if s == slot else (IN_COLOR if p >= 0 else OUT_COLOR)
        top.add_patch(Rectangle((s, 0), 0.92, 0.92, facecolor=color, edgecolor="#555555"))
        top.text(s + 0.46, 0.46, "empty" if p < 0 else str(p), ha="center", va="center",
                 color="black" if p < 0 else "white", fontsize=9 if p < 0 else 11, fontweight="bold")
        top.text(s + 0.46, 1.08, f"slot {s}", ha="center", va="bottom", fontsize=8)
    if position >= window - 1 and window > 1:
        # Slot W-1 is followed by slot 0 again: draw the wraparound.
        top.add_patch(FancyArrowPatch((window - 0.54, -0.05), (0.46, -0.05), connectionstyle="arc3,rad=-0.12",
                                      arrowstyle="-|>", mutation_scale=12, color="#555555"))
        top.text(window / 2, -0.8, "after the last slot, back to slot 0", ha="center", va="center",
                 fontsize=8, color="#555555")
    top.set_xlim(-0.2, window + 0.1)
    top.set_ylim(-1.0, 1.4)
    top.set_axis_off()
    what = f"overwrites position {evicted}" if evicted >= 0 else "the slot was empty"
    top.set_title(f"position {position} -> slot {position} % {window} = {slot}: {what}")

    # The timeline.
    first = max(0, position + 1 - max_timeline)
    for p in range(first, position + 1):
        in_cache = p > position - window
        color = ACCENT if p == position else (IN_COLOR if in_cache else OUT_COLOR)
        bottom.add_patch(Rectangle((p, 0), 0.92, 0.92, facecolor=color, edgecolor="#999999"))
        bottom.text(p + 0.46, 0.46, str(p % window), ha="center", va="center", fontsize=8,
                    color="white" if in_cache else "#888888")
    bottom.set_xlim(first - 0.2, position + 1.1)
    bottom.set_ylim(-0.1, 1.0)
    step = max(1, int(np.ceil((position + 1 - first) / 16)))
    bottom.set_xticks([p + 0.46 for p in range(first, position + 1, step)])
    bottom.set_xticklabels([str(p) for p in range(first, position + 1, step)])
    bottom.set_yticks([])
    for side in ("left", "right", "top"):
        bottom.spines[side].set_visible(False)
    bottom.set_xlabel("position (the number inside is its slot)")
    visible = min(window, position + 1)
    bottom.set_title(f"the query at position {position} attends to the {visible} position(s) still cached "
                     "(colored)", fontsize=10)
    return fig


def cache_memory_figure(seq_lens: Sequence[int], curves: dict[str, Sequence[float]], unit: str = "GiB",
                        title: str = "", xlabel: str = "sequence length (tokens)") -> Figure:
    """One line per curve of bytes against sequence length, drawn in ``unit``; each end value is labelled."""
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    if unit not in scale:
        raise ValueError(f"unit must be one of {sorted(scale)}, got {unit!r}")
    x = _to_numpy(seq_lens)
    fig, (ax,) = _figure(1, width=6.5, height=3.8)
    colors = [IN_COLOR, ACCENT, "#5cb85c", "#777777"]
    for i, (label, values) in enumerate(curves.items()):
        y = _to_numpy(values).astype(float) / scale[unit]
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} has {y.shape[0]} values for {x.shape[0]} sequence lengths")
        color = colors[i % len(colors)]
        ax.plot(x, y, label=label, color=color, linewidth=2)
        end = format_bytes(float(_to_numpy(values)[-1]))
        ax.annotate(end, (x[-1], y[-1]), textcoords="offset points", xytext=(-6, 6), ha="right", color=color,
                    fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"cache memory ({unit})")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)  # headroom for the end labels
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    return fig


def chunk_masks_figure(q_positions: Sequence, k_positions: Sequence, masks: Sequence,
                       titles: Sequence[str]) -> Figure:
    """Masks of prefill chunks: queries = the chunk, keys = what the cache holds, then the chunk itself.

    Each panel is labelled with absolute positions; a dashed line separates the cached keys (left) from the
    chunk's own keys (right).
    """
    if not len(q_positions) == len(k_positions) == len(masks) == len(titles):
        raise ValueError("need as many query positions, key positions, masks and titles")
    widths = [max(1, _to_numpy(k).shape[0]) for k in k_positions]
    fig = Figure(figsize=(min(16.0, 2.0 + 0.3 * sum(widths) + 0.6 * len(masks)), 3.9), layout="constrained")
    axes = fig.subplots(1, len(masks), squeeze=False, width_ratios=widths)[0]
    for ax, q_pos, k_pos, mask, title in zip(axes, q_positions, k_positions, masks, titles, strict=True):
        q_pos, k_pos = _to_numpy(q_pos), _to_numpy(k_pos)
        if _to_numpy(mask).shape != (q_pos.shape[0], k_pos.shape[0]):
            raise ValueError(f"mask shape {_to_numpy(mask).shape} does not match "
                             f"{q_pos.shape[0]} queries x {k_pos.shape[0]} keys")
        _bool_heatmap(ax, mask, title, annotate_ticks=False)
        ax.set_xticks(range(k_pos.shape[0]))
        ax.set_xticklabels([str(p) for p in k_pos], rotation=90, fontsize=7)
        ax.set_yticks(range(q_pos.shape[0]))
        ax.set_yticklabels([str(p) for p in q_pos], fontsize=7)
        ax.set_aspect("auto")
        ax.set_title(title, pad=16)
        n_cached = int((k_pos < q_pos[0]).sum())
        above = ax.get_xaxis_transform()  # x in data, y in axes coordinates: 1.0 is the top edge
        if n_cached:
            ax.axvline(n_cached - 0.5, color=ACCENT, linestyle="--", linewidth=1.5)
            ax.text(n_cached / 2 - 0.5, 1.01, "cache", transform=above, ha="center", va="bottom",
                    color=ACCENT, fontsize=8)
        ax.text(n_cached + (k_pos.shape[0] - n_cached) / 2 - 0.5, 1.01, "chunk", transform=above,
                ha="center", va="bottom", color=ACCENT, fontsize=8)
    return fig


def prefill_cost_figure(prompt_lens: Sequence[int], seconds: dict[str, Sequence[float]],
                        peak_mib: dict[str, Sequence[float]]) -> Figure:
    """Time (left) and peak memory (right) against prompt length, one line per method."""
    fig, (left, right) = _figure(2, width=4.6, height=3.4)
    colors = [ACCENT, IN_COLOR, "#5cb85c", "#777777"]
    for ax, data, ylabel in ((left, seconds, "time (s)"), (right, peak_mib, "peak memory (MiB)")):
        for i, (label, values) in enumerate(data.items()):
            ax.plot(_to_numpy(prompt_lens), _to_numpy(values), "o-", label=label, color=colors[i % len(colors)])
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_title("time")
    right.set_title("peak memory")
    return fig


def activation_figure(x, curves: dict[str, Sequence[float]], title: str = "") -> Figure:
    """Activation functions (or any curves) over the same x."""
    fig, (ax,) = _figure(1, width=5.0, height=3.4)
    colors = [IN_COLOR, ACCENT, "#5cb85c", "#777777"]
    for i, (label, y) in enumerate(curves.items()):
        ax.plot(_to_numpy(x), _to_numpy(y), label=label, color=colors[i % len(colors)], linewidth=2)
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_xlabel("input")
    ax.set_title(title)
    return fig


def _sampling_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution ``generate.sample`` draws from; temperature 0 puts all the mass on the argmax."""
    from .generate import top_p_filter

    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
    return top_p_filter(torch.softmax(logits.float() / temperature, dim=-1), top_p)


def _setting_name(temperature: float, top_p: float) -> str:
    if temperature == 0:
        return "greedy (temperature 0)"
    parts = [f"temperature {temperature:g}"] if temperature != 1 else []
    if top_p < 1:
        parts.append(f"top-p {top_p:g}")
    return ", ".join(parts) or "temperature 1 (plain softmax)"


def sampling_figure(labels: Sequence[str], logits, settings: Sequence[tuple[float, float]]) -> Figure:
    """The next-token distribution: the plain softmax first, then one panel per (temperature, top_p).

    Bars of tokens that can no longer be drawn are left as grey outlines at their original height.
    """
    logits = torch.as_tensor(_to_numpy(logits), dtype=torch.float32)
    if logits.dim() != 1 or logits.numel() != len(labels):
        raise ValueError(f"need 1-D logits with one label each, got shape {tuple(logits.shape)} "
                         f"and {len(labels)} labels")
    before = torch.softmax(logits, dim=-1)
    panels = [("softmax(logits)", before)] + [(_setting_name(t, p), _sampling_probs(logits, t, p))
                                              for t, p in settings]
    fig, axes = _figure(len(panels), width=3.3, height=3.0, sharey=True)
    x = np.arange(len(labels))
    for ax, (title, probs) in zip(axes, panels, strict=True):
        probs = _to_numpy(probs)
        dropped = probs == 0
        ax.bar(x[dropped], _to_numpy(before)[dropped], facecolor="none", edgecolor="#bbbbbb")
        ax.bar(x[~dropped], probs[~dropped], color=IN_COLOR)
        for i in np.flatnonzero(~dropped):
            ax.text(i, probs[i], f"{probs[i]:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.08)
    axes[0].set_ylabel("probability")
    return fig
