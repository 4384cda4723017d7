"""Notebook 01: what a tokenizer makes of text, the rows of the embedding table, and what a norm does."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import ACCENT, IN_COLOR, heatmap, new_figure, printable, rectangle, to_numpy


def token_pieces(pieces: Sequence[str], ids: Sequence[int], title: str = "", per_row: int = 8) -> Figure:
    """Each token as a box: its piece on top, its id below; ``per_row`` boxes per line.

    Byte-fallback pieces (``<0xF0>``) are orange, control tokens (``<s>``) grey, ordinary pieces blue."""
    if len(pieces) != len(ids):
        raise ValueError(f"got {len(pieces)} pieces but {len(ids)} ids")
    rows = max(1, -(-len(pieces) // per_row))
    fig, (ax,) = new_figure(1, width=1.2 * per_row, height=0.95 * rows + 0.5)
    for n, (piece, token_id) in enumerate(zip(pieces, ids, strict=True)):
        x, y = n % per_row, -(n // per_row)
        byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")  # byte fallback, <0xF0>
        control = not byte and piece.startswith("<") and piece.endswith(">")  # <s>, </s>, <unk>
        color = "#fbd3b8" if byte else "#e4e4e4" if control else "#dde8f3"
        ax.add_patch(rectangle((x + 0.04, y - 0.42), 0.92, 0.84, color))
        ax.text(x + 0.5, y + 0.12, printable(piece), ha="center", va="center", fontsize=10,
                family="monospace")
        ax.text(x + 0.5, y - 0.22, str(token_id), ha="center", va="center", fontsize=8, color="#555555")
    ax.set_xlim(0, per_row)
    ax.set_ylim(-rows + 0.5, 0.5)
    ax.set_axis_off()
    ax.set_title(title or f"{len(pieces)} tokens")
    return fig


def norm_comparison(x, outputs: dict[str, object], title: str = "") -> Figure:
    """The features of one vector before and after each normalization, as bars, with mean and RMS noted.

    The panels share one y axis, so that a change of scale (input RMS 2 -> output RMS 1) shows as bars that
    shrink, and a removed mean as bars that move down."""
    vectors = {"input": to_numpy(x).ravel(), **{k: to_numpy(v).ravel() for k, v in outputs.items()}}
    fig, axes = new_figure(len(vectors), width=3.4, height=3.0, sharey=True)
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
    v = to_numpy(vectors)
    fig, (ax,) = new_figure(1, width=7.0, height=0.35 * len(labels) + 1.5)
    limit = float(np.abs(v).max()) or 1.0
    heatmap(ax, v, title, xlabel="feature", cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_yticks(np.arange(len(labels)), [printable(s) for s in labels], family="monospace")
    return fig
