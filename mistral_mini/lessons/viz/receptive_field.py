"""Notebook 05: how far back the last token sees after L layers of a W-window, analytically and by gradient."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import ACCENT, IN_COLOR, new_figure, to_numpy


def receptive_field_growth(reaches: Sequence[int], window: int, paper_span: int | None = None,
                           label_every: int = 8) -> Figure:
    """One horizontal bar per layer count L: the positions that can reach the last token after L layers.

    ``reaches[L - 1]`` is how far back L layers see with W keys per query, the token's own included.
    ``paper_span`` draws the other reading of the paper's window for comparison: "positions between i - W and
    i" read with both ends included is W + 1 keys, W back per layer, so L * W after L layers.
    """
    L = len(reaches)
    fig, (ax,) = new_figure(1, width=8.0, height=0.16 * L + 1.8)
    layers = np.arange(1, L + 1)
    ax.barh(layers, [-r for r in reaches], left=0, height=0.8, color=IN_COLOR)
    for layer, r in zip(layers, reaches, strict=True):
        if layer == 1 or layer % label_every == 0 or layer == L:
            ax.text(-r, layer, f"{r:,} back  ", ha="right", va="center", fontsize=8)
    if paper_span is not None:
        ax.axvline(-paper_span, color=ACCENT, linestyle="--")
        ax.text(-paper_span, 0.2, f" the paper's window read as W + 1 keys\n (i - W .. i): {paper_span:,} back",
                color=ACCENT, va="top", fontsize=9)
    ax.set_xlim(-max(list(reaches) + [paper_span or 0]) * 1.3, max(reaches) * 0.03)
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    ax.set_ylim(L + 1, 0)
    ax.set_xlabel("position relative to the last token (0 = the token itself)")
    ax.set_ylabel("layers L")
    ax.set_title(f"receptive field of the last token, W = {window:,} keys per query: L * (W - 1) back")
    return fig


def gradient_profile(grad_norms, position: int, reach: int, title: str = "") -> Figure:
    """|d output[position] / d input[j]| over j (log scale), the analytic field shaded.

    The shading is [position - reach, position]: if the analysis is right, bars appear exactly inside it."""
    g = to_numpy(grad_norms).ravel()
    fig, (ax,) = new_figure(1, width=7.0, height=3.2)
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

