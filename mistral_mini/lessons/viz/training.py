"""Notebook 11: tiny models trained to copy the token d positions back, against the reach L * (W - 1).

The reach is ``mistral_mini.receptive_field.reach``; these figures call it rather than work it out again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from mistral_mini import receptive_field

from .style import ACCENT, IN_COLOR, new_figure, to_numpy

REACHABLE_COLOR = "#dce8f5"  # the distances a stack can see: 0 .. L * (W - 1)
CHANCE_COLOR = "#777777"


def copy_accuracy_figure(results: Mapping[int, Mapping[int, float]], window: int, vocab_size: int,
                         learned: float = 0.9) -> Figure:
    """One panel per layer count L: the accuracy of a model trained to copy the token d back, against d.

    ``results[L][d]`` is the accuracy of the L-layer model trained at distance d. The reachable distances
    0 .. L * (W - 1) are shaded and the reach is drawn as a dashed line; the dotted line is chance, 1 /
    vocab_size. A filled dot reached ``learned``; a hollow one did not, and one inside the reach is labelled
    "reachable, not learned".
    """
    if not results or any(not by_distance for by_distance in results.values()):
        raise ValueError("results needs at least one layer count, each with at least one distance")
    if window < 2 or vocab_size < 2:
        raise ValueError(f"need window >= 2 and vocab_size >= 2, got window={window}, vocab_size={vocab_size}")
    layer_counts = sorted(results)
    longest = max(max(by_distance) for by_distance in results.values())
    farthest = max(longest, receptive_field.reach(layer_counts[-1], window)) + 1
    fig, axes = new_figure(len(layer_counts), width=3.4, height=3.3, sharey=True)
    for ax, L in zip(axes, layer_counts, strict=True):
        r = receptive_field.reach(L, window)
        ax.axvspan(-0.5, r + 0.5, color=REACHABLE_COLOR, zorder=0)
        ax.axvline(r + 0.5, color=IN_COLOR, linestyle="--", linewidth=1.2)
        ax.text(r + 0.7, 0.5, f"reach {L} x ({window} - 1) = {r}", rotation=90, ha="left", va="center",
                color=IN_COLOR, fontsize=8)
        ax.axhline(1 / vocab_size, color=CHANCE_COLOR, linestyle=":", linewidth=1.2)
        distances = sorted(results[L])
        accuracy = np.array([float(results[L][d]) for d in distances])
        done = accuracy >= learned
        ax.scatter(np.array(distances)[done], accuracy[done], s=60, color=IN_COLOR, zorder=2, label="learned")
        ax.scatter(np.array(distances)[~done], accuracy[~done], s=60, facecolor="white", edgecolor=ACCENT,
                   linewidth=1.8, zorder=2, label="not learned")
        for d, a, ok in zip(distances, accuracy, done, strict=True):
            if not ok and d <= r:  # the interesting case: a path exists, and training did not find it
                ax.annotate("reachable,\nnot learned", (d, a), xytext=(d + 0.2, a + 0.3), ha="right", fontsize=8,
                            color=ACCENT, arrowprops=dict(arrowstyle="->", color=ACCENT))
        ax.set_xlim(-0.5, farthest + 0.5)
        ax.set_ylim(-0.04, 1.08)
        ax.set_xticks(range(0, farthest + 1, 1 if farthest <= 12 else 2))
        ax.set_xlabel("distance d (copy the token d back)")
        ax.set_title(f"{L} layer{'s' if L != 1 else ''}, W = {window}")
    axes[0].set_ylabel("accuracy on fresh sequences")
    axes[0].text(farthest + 0.4, 1 / vocab_size + 0.02, f"chance 1/{vocab_size}", ha="right", va="bottom",
                 color=CHANCE_COLOR, fontsize=8)
    handles, labels = [], []
    for ax in axes:  # one legend entry per kind of dot, whichever panel has it
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    axes[0].legend(handles, labels, fontsize=8, loc="upper right")
    return fig


def loss_curves_figure(losses: Mapping[str, Sequence[float]], chance_loss: float, smooth: int = 10,
                       title: str = "") -> Figure:
    """The training loss of each run against the step, averaged over ``smooth`` steps; chance dotted.

    ``chance_loss`` is the loss of a uniform guess, ln(vocab_size): a run that cannot see its answer stays
    there."""
    if not losses or any(len(curve) == 0 for curve in losses.values()):
        raise ValueError("losses needs at least one run, each with at least one step")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    fig, (ax,) = new_figure(1, width=7.5, height=3.6)
    for label, curve in losses.items():
        y = to_numpy(curve).astype(float)
        k = min(smooth, y.size)
        y = np.convolve(y, np.ones(k) / k, mode="valid")  # running mean: step k-1 onwards
        ax.plot(np.arange(k - 1, k - 1 + y.size), y, label=label, linewidth=1.5)
    ax.axhline(chance_loss, color=CHANCE_COLOR, linestyle=":", linewidth=1.2)
    longest = max(len(curve) for curve in losses.values())
    ax.text(longest - 1, chance_loss - 0.05, f"a uniform guess: ln V = {chance_loss:.2f}", ha="right", va="top",
            fontsize=8, color=CHANCE_COLOR)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"loss (running mean of {smooth})" if smooth > 1 else "loss")
    ax.set_title(title or "training loss")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def dependence_figure(profiles: Mapping[str, Sequence[float]], reach: int, title: str = "") -> Figure:
    """How strongly output i depends on input i - d, against d (log scale), one line per model.

    ``profiles[label][d]`` is the mean |d output[i] / d embedding[i - d]|. Distances where it is exactly 0
    get an x on the bottom edge (a log axis has no 0); the reach 0 .. ``reach`` is shaded.
    """
    if not profiles:
        raise ValueError("profiles needs at least one model")
    curves = {label: to_numpy(values).astype(float).ravel() for label, values in profiles.items()}
    if len({c.size for c in curves.values()}) != 1:
        raise ValueError(f"every profile needs one value per distance, got lengths {[c.size for c in curves.values()]}")
    positive = np.concatenate([c[c > 0] for c in curves.values()])
    floor = positive.min() / 4 if positive.size else 1e-6
    fig, (ax,) = new_figure(1, width=7.5, height=3.6)
    ax.axvspan(-0.5, reach + 0.5, color=REACHABLE_COLOR, zorder=0, label=f"reach: 0 .. {reach}")
    for label, c in curves.items():
        d = np.arange(c.size)
        line, = ax.plot(d[c > 0], c[c > 0], "o-", label=label, linewidth=1.5, markersize=4)
        ax.plot(d[c == 0], np.full((c == 0).sum(), floor), "x", color=line.get_color(), markersize=9, mew=2)
    if any((c == 0).any() for c in curves.values()):
        ax.plot([], [], "x", color="#555555", label="exactly 0")
    ax.set_yscale("log")
    ax.set_xticks(range(next(iter(curves.values())).size))
    ax.set_xlabel("distance d = i - j")
    ax.set_ylabel("mean |d out[i] / d emb[i - d]|")
    ax.set_title(title or "how much output i depends on the input d positions back")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
