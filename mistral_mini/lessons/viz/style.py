"""What every figure shares: the colours, a Figure with its axes, and the heatmap and box helpers.

These helpers are for the figure modules of this package; a notebook calls the figures, not these.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

# A few named colours used across the series, so the same idea has the same colour in every notebook.
IN_COLOR = "#3b75af"  # visible / allowed / kept
OUT_COLOR = "#f0f0f0"  # masked / not reachable
ACCENT = "#d9534f"  # the thing to look at


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.0, height: float = 3.5,
               **kw) -> tuple[Figure, list]:
    """A Figure and a flat list of its axes; each panel is ``width`` x ``height`` inches.

    The Figure is built directly, never through pyplot, so a notebook shows it exactly once.
    """
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, list(axes.flat)


def to_numpy(x) -> np.ndarray:
    """Tensor, array or nested list -> numpy array, on the CPU, detached."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def printable(piece: str) -> str:
    """A piece as matplotlib's default font can draw it: characters beyond the BMP become U+XXXX."""
    return "".join(c if ord(c) <= 0xFFFF else f"U+{ord(c):X}" for c in piece)


def bool_heatmap(ax, mask, title: str = "", xlabel: str = "key position j", ylabel: str = "query position i",
                 color: str = IN_COLOR, annotate_ticks: bool = True) -> None:
    """Draw a [rows, cols] bool mask: ``color`` where True, light grey where False, with cell borders."""
    from matplotlib.colors import ListedColormap

    m = to_numpy(mask).astype(float)
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


def heatmap(ax, values, title: str = "", xlabel: str = "", ylabel: str = "", cmap: str = "viridis",
            colorbar: bool = True, **kw) -> None:
    """Draw a [rows, cols] float array with a colour bar."""
    image = ax.imshow(to_numpy(values), cmap=cmap, interpolation="nearest", aspect="auto", **kw)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.85)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def rectangle(xy: tuple[float, float], width: float, height: float, color, **kw):
    """A filled box (a matplotlib Rectangle patch) with a white edge unless ``edgecolor`` says otherwise."""
    from matplotlib.patches import Rectangle

    return Rectangle(xy, width, height, facecolor=color, edgecolor=kw.pop("edgecolor", "white"), **kw)
