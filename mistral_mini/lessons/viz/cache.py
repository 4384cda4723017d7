"""Notebooks 06-07: the rolling buffer (which slot holds which position) and prefill in chunks.

The rules drawn here live in ``mistral_mini.cache`` (``slot_of``, ``slot_positions_after``,
``chunk_key_positions``); these figures call them rather than work the slots out again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from mistral_mini.cache import chunk_key_positions, slot_of, slot_positions_after

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
    from matplotlib.path import Path

    slot = slot_of(position, window)
    evicted = int(slot_positions_after(position, window)[slot])  # what the slot held before: -1 if empty
    held = slot_positions_after(position + 1, window).tolist()  # [W] once ``position`` is written
    fig, (top, bottom) = new_figure(1, 2, width=9.0, height=2.0)

    _draw_slots(top, held, slot)
    if position >= window - 1 and window > 1:
        # Slot W-1 is followed by slot 0 again: draw the wraparound as a U under the slots, in data
        # coordinates (an "arc3" curve bends in pixels, so its depth would change with the figure's size),
        # and its label under the U's floor, where the arrow cannot cross it.
        right, left, floor = window - 0.54, 0.46, -0.42
        u_turn = Path([(right, -0.04), (right, floor - 0.2), (left, floor - 0.2), (left, -0.04)],
                      [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])  # its lowest point: y = floor
        top.add_patch(FancyArrowPatch(path=u_turn, arrowstyle="-|>", mutation_scale=12, color="#555555"))
        top.text(window / 2, floor - 0.1, "after the last slot, back to slot 0", ha="center", va="top",
                 fontsize=8, color="#555555")
    top.set_xlim(-0.2, window + 0.1)
    top.set_ylim(-0.95, 1.4)
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


# The kinds of cell in the prefill timeline, in legend order: (key, colour, hatch, legend label).
_TIMELINE_KINDS = [
    ("evicted", OUT_COLOR, "", "evicted"),
    ("unseen", "#c9daf0", "", "held, but outside every window of the chunk"),
    ("cache", IN_COLOR, "", "cached key the chunk attends to"),
    ("chunk", ACCENT, "", "the chunk's own key (causal), then written"),
    ("dropped", ACCENT, "////", "own key, never written: a later one takes its slot"),
    ("future", "white", "", "not fed yet"),
]


def timeline_kinds(start: int, end: int, n_positions: int, window: int) -> list[str]:
    """The kind of each position 0..n_positions-1 for the chunk [start, end), as the timeline draws it.

    Everything comes from the cache's rules: what the buffer holds when the chunk arrives
    (``slot_positions_after(start)``), what the chunk sees (``chunk_key_positions``), and what the buffer
    holds once the chunk is written (``slot_positions_after(end)``).
    """
    held = set(slot_positions_after(start, window).tolist())
    _, k_pos = chunk_key_positions(start, end, window)
    seen = set(k_pos.tolist())
    kept = set(slot_positions_after(end, window).tolist())
    kinds = []
    for p in range(n_positions):
        if p >= end:
            kinds.append("future")
        elif p >= start:
            kinds.append("chunk" if p in kept else "dropped")
        elif p in seen:
            kinds.append("cache")
        elif p in held:
            kinds.append("unseen")
        else:
            kinds.append("evicted")
    return kinds


def prefill_timeline_figure(prompt_len: int, chunk_size: int, window: int, detail: int | None = None) -> Figure:
    """Prefill in chunks along the sequence, like Figure 3 of the Mistral 7B paper, with the window ``window``.

    Top: one row per chunk, one cell per position, coloured by what the chunk does with it when it arrives:
    the cached keys it attends to, the one the buffer still holds but no query of the chunk can see, its own
    keys (hatched where a chunk longer than W does not get to write them), evicted and future positions.
    Bottom: the mask of chunk number ``detail`` (the last full chunk by default) against every position
    before its end, split as in the paper's figure into past (evicted), cache (the W slots) and the chunk.
    """
    if prompt_len < 1 or chunk_size < 1 or window < 1:
        raise ValueError(f"need prompt_len, chunk_size and window >= 1, got {prompt_len}, {chunk_size}, {window}")
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    from mistral_mini.masks import sliding_window_mask

    chunks = [(s, min(s + chunk_size, prompt_len)) for s in range(0, prompt_len, chunk_size)]
    if detail is None:
        full = [i for i, (s, e) in enumerate(chunks) if e - s == chunk_size]
        detail = full[-1] if full else len(chunks) - 1
    if not 0 <= detail < len(chunks):
        raise ValueError(f"detail must name one of the {len(chunks)} chunks (0..{len(chunks) - 1}), got {detail}")
    style = {key: (color, hatch) for key, color, hatch, _ in _TIMELINE_KINDS}

    n_rows = len(chunks)
    start, end = chunks[detail]
    fig = Figure(figsize=(max(8.5, 0.36 * prompt_len + 2.2), 2.6 + 0.34 * n_rows + 0.3 * (end - start)),
                 layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[n_rows + 1.2, end - start + 2.0])

    used = set()
    for row, (s, e) in enumerate(chunks):
        y = n_rows - 1 - row  # the first chunk on top
        for p, kind in enumerate(timeline_kinds(s, e, prompt_len, window)):
            color, hatch = style[kind]
            cell = Rectangle((p, y), 0.94, 0.86, facecolor=color, hatch=hatch, edgecolor="#bbbbbb",
                             linewidth=0.6, gid=f"{row}:{p}:{kind}")
            top.add_patch(cell)
            used.add(kind)
    top.set_xlim(-0.2, prompt_len + 0.1)
    top.set_ylim(-0.2, n_rows)
    top.set_yticks([n_rows - 1 - row + 0.43 for row in range(n_rows)])
    top.set_yticklabels([f"chunk {row}: {s}..{e - 1}" for row, (s, e) in enumerate(chunks)], fontsize=8)
    step = max(1, int(np.ceil(prompt_len / 24)))
    top.set_xticks([p + 0.47 for p in range(0, prompt_len, step)])
    top.set_xticklabels([str(p) for p in range(0, prompt_len, step)], fontsize=8)
    top.set_xlabel("position")
    for side in ("right", "top"):
        top.spines[side].set_visible(False)
    top.set_title(f"{prompt_len} tokens in chunks of {chunk_size}, window W = {window}: what each chunk "
                  "attends to when it arrives", fontsize=10)
    handles = [Patch(facecolor=color, hatch=hatch, edgecolor="#888888", label=label)
               for key, color, hatch, label in _TIMELINE_KINDS if key in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7.5, frameon=False)

    # The paper's picture of one chunk: its queries against every key before its end, in three blocks.
    q_pos, k_pos = torch.arange(start, end), torch.arange(end)
    allowed = sliding_window_mask(q_pos, k_pos, window).numpy()  # [C, end]
    block = np.where(k_pos.numpy() >= start, 2, 1)  # 1 = a key before the chunk, 2 = the chunk's own
    grid = np.where(allowed, block[None, :], 0)  # 0 = masked
    bottom.imshow(grid, cmap=ListedColormap([OUT_COLOR, IN_COLOR, ACCENT]), vmin=0, vmax=2,
                  interpolation="nearest", aspect="auto")
    bottom.set_xticks(np.arange(-0.5, end, 1), minor=True)
    bottom.set_yticks(np.arange(-0.5, end - start, 1), minor=True)
    bottom.grid(which="minor", color="white", linewidth=0.8)
    bottom.tick_params(which="minor", length=0)
    bottom.set_xticks(range(0, end, step))
    bottom.set_xticklabels([str(p) for p in range(0, end, step)], fontsize=8)
    bottom.set_yticks(range(end - start))
    bottom.set_yticklabels([str(p) for p in range(start, end)], fontsize=8)
    bottom.set_xlabel("key position")
    bottom.set_ylabel("query")
    buffer_start = max(0, start - window)  # the buffer holds the W positions before the chunk
    above = bottom.get_xaxis_transform()
    blocks = [(0, buffer_start, "past (evicted)"), (buffer_start, start, f"cache ({start - buffer_start} slots)"),
              (start, end, "this chunk")]
    for lo, hi, label in blocks:
        if hi > lo:
            bottom.text((lo + hi) / 2 - 0.5, 1.02, label, transform=above, ha="center", va="bottom", fontsize=8,
                        color="#333333")
        if lo > 0:
            bottom.axvline(lo - 0.5, color="#333333", linestyle="--", linewidth=1.2)
    bottom.set_title(f"chunk {detail} ({start}..{end - 1}), drawn as in the paper's Figure 3", fontsize=10, pad=16)
    return fig
