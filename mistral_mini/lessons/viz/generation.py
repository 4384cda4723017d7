"""Notebook 09: what temperature and top-p do to the next-token distribution that ``sample`` draws from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from mistral_mini.generation import top_p_filter

from .style import IN_COLOR, new_figure, to_numpy


def _sampling_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution ``generation.sample`` draws from; temperature 0 puts all the mass on the argmax."""
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

    Bars of tokens that can no longer be drawn are left as grey outlines at their original height. Panels go in
    rows of at most three (five panels: two rows), so that the figure keeps to a notebook's width, about
    9 inches or 900 pixels, with labels that stay readable.
    """
    logits = torch.as_tensor(to_numpy(logits), dtype=torch.float32)
    if logits.dim() != 1 or logits.numel() != len(labels):
        raise ValueError(f"need 1-D logits with one label each, got shape {tuple(logits.shape)} "
                         f"and {len(labels)} labels")
    before = torch.softmax(logits, dim=-1)
    panels = [("softmax(logits)", before)] + [(_setting_name(t, p), _sampling_probs(logits, t, p))
                                              for t, p in settings]
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig, axes = new_figure(ncols, nrows, width=3.0, height=2.7, sharey=True)
    for ax in axes[len(panels):]:  # a last row that is not full leaves slots empty
        ax.remove()
    x = np.arange(len(labels))
    for ax, (title, probs) in zip(axes[:len(panels)], panels, strict=True):
        probs = to_numpy(probs)
        dropped = probs == 0
        ax.bar(x[dropped], to_numpy(before)[dropped], facecolor="none", edgecolor="#bbbbbb",
               label="can no longer be drawn (at its softmax height)")
        ax.bar(x[~dropped], probs[~dropped], color=IN_COLOR, label="probability it is drawn")
        for i in np.flatnonzero(~dropped):
            ax.text(i, probs[i], f"{probs[i]:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.08)
        ax.tick_params(axis="y", labelleft=True, labelsize=8)  # every row keeps its own scale in sight
    for ax in axes[:len(panels):ncols]:
        ax.set_ylabel("probability")
    handles = [h for ax in axes[:len(panels)] for h in ax.containers]
    kinds = {h.get_label(): h for h in handles if len(h)}  # one legend entry per kind of bar drawn
    fig.legend(kinds.values(), kinds.keys(), loc="outside lower center", ncols=len(kinds), fontsize=8,
               frameon=False)
    return fig
