"""Notebooks 06-07: the rolling buffer (which slot holds which position) and prefill in chunks.

The rules drawn here live in ``mistral_mini.cache`` (``slot_of``, ``slot_positions_after``,
``chunk_key_positions``); these figures call them rather than work the slots out again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from mistral_mini.cache import slot_of, slot_positions_after

from .style import ACCENT, IN_COLOR, OUT_COLOR, bool_heatmap, new_figure, to_numpy

# ---------------------------------------------------------------------------------------------------------
# 06 rolling buffer cache
# ---------------------------------------------------------------------------------------------------------


def _draw_slots(ax, held: list[int], written: int) -> None:
    """One box per slot with the position it holds ("empty" for -1); slot ``written`` in the accent colour."""
    from matplotlib.patches import Rectangle

    for s, p in enumerate(held):
        color = ACCENT if s == written else (IN_COLOR if p >= 0 else OUT_COLOR)
        ax.add_patch(Rectangle((s, 0), 0.92, 0.92, facecolor=color, edgecolor="#555555"))
        ax.text(s + 0.46, 0.46, "empty" if p < 0 else str(p), ha="center", va="center",
                color="black" if p < 0 else "white", fontsize=9 if p < 0 else 11, fontweight="bold")
        ax.text(s + 0.46, 1.08, f"slot {s}", ha="center", va="bottom", fontsize=8)


def _draw_timeline(ax, position: int, window: int, held: list[int], max_timeline: int) -> None:
    """Positions up to ``position`` as boxes with their slot inside; those still held are coloured."""
    from matplotlib.patches import Rectangle

    first = max(0, position + 1 - max_timeline)
    for p in range(first, position + 1):
        in_cache = p in held
        color = ACCENT if p == position else (IN_COLOR if in_cache else OUT_COLOR)
        ax.add_patch(Rectangle((p, 0), 0.92, 0.92, facecolor=color, edgecolor="#999999"))
        ax.text(p + 0.46, 0.46, str(slot_of(p, window)), ha="center", va="center", fontsize=8,
                color="white" if in_cache else "#888888")
    ax.set_xlim(first - 0.2, position + 1.1)
    ax.set_ylim(-0.1, 1.0)
    step = max(1, int(np.ceil((position + 1 - first) / 16)))
    ax.set_xticks([p + 0.46 for p in range(first, position + 1, step)])
    ax.set_xticklabels([str(p) for p in range(first, position + 1, step)])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("position (the number inside is its slot)")


def rolling_buffer_figure(position: int, window: int, max_timeline: int = 48) -> Figure:
    """The rolling buffer right after the token at ``position`` is written into slot ``position % window``.

    Top: the W slots, each with the position it holds; the slot just written in the accent colour. Bottom:
    the positions seen so far; those still in a slot are the ones the query at ``position`` may attend to.
    """
    if window < 1 or position < 0:
        raise ValueError(f"need window >= 1 and position >= 0, got window={window}, position={position}")
    from matplotlib.patches import FancyArrowPatch

    slot = slot_of(position, window)
    evicted = int(slot_positions_after(position, window)[slot])  # what the slot held before: -1 if empty
    held = slot_positions_after(position + 1, window).tolist()  # [W] once ``position`` is written
    fig, (top, bottom) = new_figure(1, 2, width=9.0, height=2.0)

    _draw_slots(top, held, slot)
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

    _draw_timeline(bottom, position, window, held, max_timeline)
    visible = sum(p >= 0 for p in held)
    bottom.set_title(f"the query at position {position} attends to the {visible} position(s) still cached "
                     "(colored)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------------
# 07 pre-fill chunking
# ---------------------------------------------------------------------------------------------------------


def chunk_masks_figure(q_positions: Sequence, k_positions: Sequence, masks: Sequence,
                       titles: Sequence[str]) -> Figure:
    """Masks of prefill chunks: queries = the chunk; keys = the cached positions it sees, then the chunk itself.

    ``mistral_mini.cache.chunk_key_positions`` gives both: the cache hands a chunk starting at ``start`` the
    up-to-W-1 positions start - W + 1 .. start - 1 (none for the first chunk), the only cached ones its
    first query can still see. Each panel is labelled with absolute positions; a dashed line separates the
    cached keys (left, "cache") from the chunk's own keys (right, "chunk"). Keys before the first query count
    as cached, however many there are.
    """
    if not len(q_positions) == len(k_positions) == len(masks) == len(titles):
        raise ValueError("need as many query positions, key positions, masks and titles")
    widths = [max(1, to_numpy(k).shape[0]) for k in k_positions]
    fig = Figure(figsize=(min(16.0, 2.0 + 0.3 * sum(widths) + 0.6 * len(masks)), 3.9), layout="constrained")
    axes = fig.subplots(1, len(masks), squeeze=False, width_ratios=widths)[0]
    for ax, q_pos, k_pos, mask, title in zip(axes, q_positions, k_positions, masks, titles, strict=True):
        q_pos, k_pos = to_numpy(q_pos), to_numpy(k_pos)
        if to_numpy(mask).shape != (q_pos.shape[0], k_pos.shape[0]):
            raise ValueError(f"mask shape {to_numpy(mask).shape} does not match "
                             f"{q_pos.shape[0]} queries x {k_pos.shape[0]} keys")
        bool_heatmap(ax, mask, title, annotate_ticks=False)
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
    fig, (left, right) = new_figure(2, width=4.6, height=3.4)
    colors = [ACCENT, IN_COLOR, "#5cb85c", "#777777"]
    for ax, data, ylabel in ((left, seconds, "time (s)"), (right, peak_mib, "peak memory (MiB)")):
        for i, (label, values) in enumerate(data.items()):
            ax.plot(to_numpy(prompt_lens), to_numpy(values), "o-", label=label, color=colors[i % len(colors)])
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_title("time")
    right.set_title("peak memory")
    return fig
