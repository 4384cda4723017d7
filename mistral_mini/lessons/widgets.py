"""Interactive front-ends for the notebooks: ipywidgets sliders wired to the pure figures of ``viz``.

Every widget here is a thin shell: it reads its sliders, calls a ``viz`` function, and shows the Figure it
returns. All the drawing lives in ``viz``, so a notebook can also call the same function once with the
default values and the committed notebook shows that figure without a running kernel.

Layout of this module: the shared private helper ``_wire`` first, then one public function per widget.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from mistral_mini.cache import chunk_key_positions
from mistral_mini.masks import causal_mask, sliding_window_mask
from mistral_mini.receptive_field import reach, receptive_field_mask
from mistral_mini.rope import rope_frequencies

from . import viz


def _wire(plot: Callable[..., Figure], controls: dict[str, widgets.ValueWidget],
          title: str | None = None) -> widgets.VBox:
    """Sliders on top, the figure below; moving any slider calls ``plot(**values)`` and redraws.

    The returned box has a ``redraw()`` method (what a slider move triggers) and a ``figure`` attribute
    (the last Figure drawn), which makes the wiring testable without a browser.
    """
    out = widgets.Output()
    header = [widgets.HTML(f"<b>{title}</b>")] if title else []
    box = widgets.VBox([*header, widgets.HBox(list(controls.values())), out])

    def redraw(change=None) -> None:
        fig = plot(**{name: control.value for name, control in controls.items()})
        box.figure = fig
        out.clear_output(wait=True)
        with out:
            display(fig)

    for control in controls.values():
        control.observe(redraw, names="value")
    box.redraw = redraw
    redraw()
    return box


# Every slider: redraw on release, not on every pixel of a drag (each redraw is a new matplotlib figure), and a
# label as wide as its text (the default width cuts "temperature" to "temperat...").
_SLIDER_ARGS = {"continuous_update": False, "style": {"description_width": "initial"}}


def _slider(value: int, low: int, high: int, description: str, step: int = 1) -> widgets.IntSlider:
    return widgets.IntSlider(value=value, min=low, max=high, step=step, description=description, **_SLIDER_ARGS)


# ---------------------------------------------------------------------------------------------------------
# 02 rotary embeddings
# ---------------------------------------------------------------------------------------------------------


def rope_explorer(head_dim: int = 16, theta: float = 10000.0, n_positions: int = 16,
                  position: int = 5) -> widgets.VBox:
    """Each pair's rotation (``viz.rope_rotation``); sliders over the position shown and over theta."""

    def plot(position: int, theta: float) -> Figure:
        return viz.rope_rotation(rope_frequencies(head_dim, theta), n_positions, position)

    theta_slider = widgets.FloatLogSlider(value=theta, base=10, min=1, max=6, step=0.5, description="theta",
                                          **_SLIDER_ARGS)
    return _wire(plot, {"position": _slider(position, 0, n_positions - 1, "position"), "theta": theta_slider})


# ---------------------------------------------------------------------------------------------------------
# 03 attention and masks
# ---------------------------------------------------------------------------------------------------------


def mask_explorer(seq_len: int = 12, window: int = 4, max_len: int = 40) -> widgets.VBox:
    """Causal vs sliding-window masks; sliders over the sequence length T and the window W."""

    def plot(T: int, W: int) -> Figure:
        pos = torch.arange(T)
        return viz.mask_pair(causal_mask(pos, pos), sliding_window_mask(pos, pos, W), W)

    return _wire(plot, {"T": _slider(seq_len, 2, max_len, "T"), "W": _slider(window, 1, max_len, "W")})


# ---------------------------------------------------------------------------------------------------------
# 04 grouped-query attention
# ---------------------------------------------------------------------------------------------------------


def gqa_explorer(n_heads: int = 8, n_kv_heads: int = 2) -> widgets.VBox:
    """Which query heads share which key/value head (``viz.kv_head_sharing``), for any divisor of n_heads."""
    choices = [n for n in range(1, n_heads + 1) if n_heads % n == 0]
    if n_kv_heads not in choices:
        raise ValueError(f"n_kv_heads must divide n_heads ({n_heads}): one of {choices}, got {n_kv_heads}")

    def plot(n_kv_heads: int) -> Figure:
        return viz.kv_head_sharing(n_heads, [n_kv_heads])

    picker = widgets.SelectionSlider(options=choices, value=n_kv_heads, description="KV heads", **_SLIDER_ARGS)
    return _wire(plot, {"n_kv_heads": picker})


# ---------------------------------------------------------------------------------------------------------
# 05 receptive field
# ---------------------------------------------------------------------------------------------------------


def receptive_field_explorer(seq_len: int = 32, n_layers: int = 3, window: int = 4,
                             max_layers: int = 8, max_window: int = 16) -> widgets.VBox:
    """One layer's window next to the receptive field of L layers; sliders over L and W."""

    def plot(n_layers: int, window: int) -> Figure:
        one = receptive_field_mask(seq_len, 1, window)
        field = receptive_field_mask(seq_len, n_layers, window)
        return viz.masks_figure(
            [one, field],
            [f"1 layer: {reach(1, window)} back", f"{n_layers} layers: {reach(n_layers, window)} back"],
            xlabel="input position j", ylabel="output position i")

    return _wire(plot, {"n_layers": _slider(n_layers, 1, max_layers, "layers L"),
                        "window": _slider(window, 1, max_window, "window W")})


# ---------------------------------------------------------------------------------------------------------
# Notebooks 06-10
# ---------------------------------------------------------------------------------------------------------


def rolling_buffer_explorer(window: int = 8, position: int = 11) -> widgets.VBox:
    """06: step through positions 0..4W: each new key's slot, the position it overwrites, what the query sees."""
    return _wire(lambda position: viz.rolling_buffer_figure(position, window),
                 {"position": _slider(position, 0, 4 * window, "position")},
                 title=f"the rolling buffer, W = {window}")


def chunk_mask_explorer(prompt_len: int = 23, window: int = 8, chunk_size: int = 5) -> widgets.VBox:
    """07: the mask of one prefill chunk against the cached keys it sees plus itself; sliders over chunk size and
    chunk. The keys are ``mistral_mini.cache.chunk_key_positions``: up to W - 1 cached positions, then the chunk.
    The chunk slider's range follows the chunk size, so every position of it shows a chunk that exists."""

    def n_chunks(chunk_size: int) -> int:
        return -(-prompt_len // chunk_size)  # ceiling division

    def plot(chunk_size: int, chunk: int) -> Figure:
        start = chunk * chunk_size
        end = min(start + chunk_size, prompt_len)
        q_pos, k_pos = chunk_key_positions(start, end, window)
        title = f"chunk {chunk + 1} of {n_chunks(chunk_size)}: positions {start}..{end - 1}, W = {window}"
        return viz.chunk_masks_figure([q_pos], [k_pos], [sliding_window_mask(q_pos, k_pos, window)], [title])

    size_slider = _slider(chunk_size, 1, prompt_len, "chunk size")
    chunk_slider = _slider(0, 0, n_chunks(chunk_size) - 1, "chunk")
    # Observed before _wire's redraw, so the chunk is back in range (ipywidgets clamps the value) when it draws.
    size_slider.observe(lambda change: setattr(chunk_slider, "max", n_chunks(change["new"]) - 1), names="value")
    return _wire(plot, {"chunk_size": size_slider, "chunk": chunk_slider},
                 title=f"prefill of a {prompt_len}-token prompt in chunks")


def sampling_explorer(labels: list[str], logits, temperature: float = 1.0, top_p: float = 1.0) -> widgets.VBox:
    """09: the next-token distribution before and after temperature and top-p, with a slider for each."""

    def slider(value: float, low: float, high: float, description: str) -> widgets.FloatSlider:
        return widgets.FloatSlider(value=value, min=low, max=high, step=0.05, description=description, **_SLIDER_ARGS)

    return _wire(lambda temperature, top_p: viz.sampling_figure(labels, logits, [(temperature, top_p)]),
                 {"temperature": slider(temperature, 0.0, 2.0, "temperature"),
                  "top_p": slider(top_p, 0.05, 1.0, "top-p")},
                 title="temperature 0 is greedy; top-p keeps the likeliest tokens up to that much mass")
