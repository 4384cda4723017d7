"""Notebook 08: the activation inside the feed-forward (SiLU, as SwiGLU uses it) against its neighbours."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from .style import ACCENT, IN_COLOR, new_figure, to_numpy


def activation_figure(x, curves: dict[str, Sequence[float]], title: str = "") -> Figure:
    """Activation functions (or any curves) over the same x."""
    fig, (ax,) = new_figure(1, width=5.0, height=3.4)
    colors = [IN_COLOR, ACCENT, "#5cb85c", "#777777"]
    for i, (label, y) in enumerate(curves.items()):
        ax.plot(to_numpy(x), to_numpy(y), label=label, color=colors[i % len(colors)], linewidth=2)
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_xlabel("input")
    ax.set_title(title)
    return fig
