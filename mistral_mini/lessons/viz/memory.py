"""How big things are: byte counts (weights, cache, bytes per token) and parameter counts.

Notebooks 00 (the 7B's budget), 04 (cache bytes per token), 06 and 09 (cache memory against length), 08 (where
the parameters are), 10 (what fits on the GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from mistral_mini.memory import format_bytes

from .style import ACCENT, IN_COLOR, new_figure, to_numpy


def bytes_bars(values: dict[str, float], title: str = "",
               reference: dict[str, float] | None = None) -> Figure:
    """Horizontal bars of byte counts, each labelled in GB / GiB; ``reference`` adds dashed vertical lines."""
    fig, (ax,) = new_figure(1, width=7.5, height=0.6 * len(values) + 1.4)
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
    fig, (ax,) = new_figure(1, width=7.5, height=0.5 * len(counts) + 1.4)
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


def bytes_per_item(values: dict[str, float], title: str = "", unit: str = "per token") -> Figure:
    """Vertical bars of byte counts, labelled in KiB / MiB / GiB: e.g. KV cache bytes per token."""
    from matplotlib.ticker import MultipleLocator

    fig, (ax,) = new_figure(1, width=1.6 * len(values) + 2.5, height=3.6)
    labels = list(values)
    ax.bar(labels, [float(values[k]) for k in labels], color=IN_COLOR)
    for x, label in enumerate(labels):
        ax.text(x, float(values[label]), format_bytes(values[label]), ha="center", va="bottom")
    top = max(float(v) for v in values.values()) * 1.2
    ax.set_ylim(0, top)
    ax.yaxis.set_major_locator(MultipleLocator(2 ** np.floor(np.log2(top / 4))))  # round binary steps
    ax.yaxis.set_major_formatter(lambda value, _: format_bytes(value))
    ax.set_ylabel(f"bytes {unit}")
    ax.set_title(title)
    return fig


def cache_memory_figure(seq_lens: Sequence[int], curves: dict[str, Sequence[float]], unit: str = "GiB",
                        title: str = "", xlabel: str = "sequence length (tokens)") -> Figure:
    """One line per curve of bytes against sequence length, drawn in ``unit``; each end value is labelled."""
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    if unit not in scale:
        raise ValueError(f"unit must be one of {sorted(scale)}, got {unit!r}")
    x = to_numpy(seq_lens)
    fig, (ax,) = new_figure(1, width=6.5, height=3.8)
    colors = [IN_COLOR, ACCENT, "#5cb85c", "#777777"]
    for i, (label, values) in enumerate(curves.items()):
        y = to_numpy(values).astype(float) / scale[unit]
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} has {y.shape[0]} values for {x.shape[0]} sequence lengths")
        color = colors[i % len(colors)]
        ax.plot(x, y, label=label, color=color, linewidth=2)
        end = format_bytes(float(to_numpy(values)[-1]))
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


def quantization_error_figure(errors: dict[str, Sequence[float]], title: str = "") -> Figure:
    """Relative weight error of int8 per layer: one line per matrix kind, x = layer index, y in percent.

    errors: ``quantize.weight_errors(model)``, {"wq": [one per layer], ..., "output": [one value]}. The
    output projection comes after the last block, so its single value is drawn there, as a star.
    """
    per_layer = {kind: to_numpy(values).astype(float) * 100 for kind, values in errors.items() if kind != "output"}
    if not per_layer or len({v.shape for v in per_layer.values()}) != 1:
        raise ValueError("errors needs at least one matrix kind, each with one value per layer, got lengths "
                         f"{ {kind: len(v) for kind, v in errors.items()} }")
    n_layers = len(next(iter(per_layer.values())))
    fig, (ax,) = new_figure(1, width=7.5, height=4.0)
    colors = ["#3b75af", "#5cb85c", "#f0ad4e", "#9467bd", "#17becf", "#8c564b", "#e377c2"]
    for i, (kind, y) in enumerate(per_layer.items()):
        # Attention's four matrices drawn solid, the feed-forward's three dashed: two families, seven lines.
        style = "--" if kind in ("w1", "w2", "w3") else "-"
        ax.plot(np.arange(n_layers), y, style, marker="o", markersize=4, color=colors[i % len(colors)],
                label=kind)
    step = max(1, int(np.ceil(n_layers / 16)))  # at most ~16 layer labels, so they never overlap
    ticks = list(range(0, n_layers, step))
    labels = [str(i) for i in ticks]
    if "output" in errors:
        (value,) = to_numpy(errors["output"]).astype(float).reshape(-1) * 100
        ax.plot([n_layers], [value], "*", markersize=14, color=ACCENT, label="output")
        ticks, labels = ticks + [n_layers], labels + ["output"]
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("layer")
    ax.set_ylabel("||W - dequant(quant(W))|| / ||W||  (%)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), title="matrix")
    ax.set_title(title or "int8 weight error per layer (one scale per output row)")
    return fig
