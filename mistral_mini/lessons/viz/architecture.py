"""The map of the whole model: Mistral 7B's parts with their real shapes, and where a notebook is on it.

``architecture_figure(args)`` draws the model from tokens to the next token, one box per part, named as in
Mistral's checkpoint, with the shapes ``args`` gives them. ``you_are_here(parts)`` draws the same path as one
small strip, the parts a notebook builds in the accent colour: the map at the top of every notebook.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ...config import ModelArgs
from ...transformer import Transformer
from .style import ACCENT, IN_COLOR, new_figure

# The parts, in the order a token goes through them: (key, short label for the strip).
PARTS = [
    ("tokenizer", "tokenizer"), ("embeddings", "embeddings"), ("attention_norm", "RMSNorm"),
    ("attention", "attention\nGQA, SWA,\nRoPE"), ("cache", "KV cache"), ("residual", "+"),
    ("ffn_norm", "RMSNorm"), ("feed_forward", "SwiGLU"), ("norm", "RMSNorm"), ("output", "output"),
    ("sampling", "next token"),
]
_KEYS = {key for key, _ in PARTS}
_SOFT = "#dfe8f2"  # a part drawn but not highlighted
_LAYER_FRAME = "#9aa9b8"


def _box(ax, x: float, y: float, w: float, h: float, text: str, on: bool, fontsize: float) -> None:
    face = ACCENT if on else _SOFT
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                facecolor=face, edgecolor="#4a4a4a", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color="white" if on else "#1a1a1a")


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color="#4a4a4a", lw=0.9,
                                                          shrinkA=0, shrinkB=0))


def _checked(parts) -> set[str]:
    parts = set(parts or ())
    unknown = parts - _KEYS
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: choose from {[k for k, _ in PARTS]}")
    return parts


def architecture_figure(args: ModelArgs | None = None, highlight=()) -> Figure:
    """Mistral's decoder from tokens to the next token, each part with its shapes under ``args`` (the 7B's
    by default); parts named in ``highlight`` (keys of ``PARTS``) are drawn in the accent colour."""
    a = args or ModelArgs.from_name("mistral-7b")
    on = _checked(highlight)
    q = a.n_heads * a.head_dim  # the width of all query heads together: wo maps it back to dim
    fig, (ax,) = new_figure(width=7.2, height=10.2)
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.6, 14.8)
    ax.axis("off")
    x, w, fs = 4.0, 6.6, 8.5
    rows = [  # (key, y, height, text), from the input at the bottom to the next token at the top
        ("tokenizer", 0.0, 0.8, "tokenizer: text -> token ids [B, T] (SentencePiece BPE, byte fallback)"),
        ("embeddings", 1.3, 0.8,
         f"tok_embeddings: a row per id, [{a.vocab_size:,} x {a.dim:,}] -> x [B, T, {a.dim:,}]"),
        ("attention_norm", 2.9, 0.75, f"attention_norm: RMSNorm over {a.dim:,} features (eps {a.norm_eps:g})"),
        ("attention", 4.55, 1.7,
         f"attention: wq {a.dim:,} -> {a.n_heads} heads x {a.head_dim};  wk, wv {a.dim:,} -> {a.n_kv_heads} heads x "
         f"{a.head_dim}\nGQA: {a.n_heads // a.n_kv_heads} query heads share a key/value head\n"
         f"RoPE on q and k (theta {a.rope_theta:,.0f});  wo {q:,} -> {a.dim:,}\n"
         f"sliding window: query i sees key j iff 0 <= i - j < {a.sliding_window:,}"),
        ("residual", 6.05, 0.6, "+ residual: x = x + attention(...)"),
        ("ffn_norm", 7.2, 0.75, f"ffn_norm: RMSNorm over {a.dim:,} features"),
        ("feed_forward", 8.65, 1.15,
         f"feed_forward (SwiGLU): w2( silu(w1 x) * w3 x )\nw1, w3 {a.dim:,} -> {a.hidden_dim:,};  "
         f"w2 {a.hidden_dim:,} -> {a.dim:,}"),
        ("residual", 10.0, 0.6, "+ residual: x = x + feed_forward(...)"),
        ("norm", 11.6, 0.75, f"norm: RMSNorm over {a.dim:,} features"),
        ("output", 12.9, 0.8, f"output: {a.dim:,} -> {a.vocab_size:,} logits per position"),
        ("sampling", 14.2, 0.8, "sampling: greedy, temperature, top-p -> the next token id"),
    ]
    for key, y, h, text in rows:
        _box(ax, x, y, w, h, text, key in on, fs)
    for (_, y0, h0, _), (_, y1, h1, _) in zip(rows, rows[1:], strict=False):
        _arrow(ax, (x, y0 + h0 / 2), (x, y1 - h1 / 2))
    # The block that repeats: a frame around it, and the residual paths around each sub-layer.
    ax.add_patch(FancyBboxPatch((x - w / 2 - 0.35, 2.35), w + 0.7, 8.05, boxstyle="round,pad=0.02,rounding_size=0.2",
                                facecolor="none", edgecolor=_LAYER_FRAME, linewidth=1.2, linestyle="--"))
    ax.text(x + w / 2 + 0.25, 10.55, f"x {a.n_layers} layers", ha="right", va="bottom", fontsize=fs + 1,
            color="#44546a", fontweight="bold")
    for start, end in ((2.45, 6.05), (6.45, 10.0)):
        left = x - w / 2 - 0.18
        ax.plot([x, left, left], [start, start, end], color=IN_COLOR, lw=1.0)
        _arrow(ax, (left, end), (x - w / 2, end))
    # The KV cache sits beside attention: keys and values of earlier positions, W slots per layer.
    _box(ax, 8.75, 4.55, 2.0, 1.5, f"KV cache\n{a.sliding_window:,} slots\nx {a.n_kv_heads} heads x {a.head_dim}\n"
         "(rolling)", "cache" in on, fs - 0.5)
    _arrow(ax, (x + w / 2, 4.25), (7.75, 4.25))  # keys and values written
    _arrow(ax, (7.75, 4.85), (x + w / 2, 4.85))  # and read back
    with torch.device("meta"):  # shapes only: counting the 7B's parameters allocates nothing
        n_params = sum(p.numel() for p in Transformer(a).parameters())
    title = "Mistral 7B" if args is None else "the model"
    ax.set_title(f"{title}: {a.n_layers} layers, dim {a.dim:,}, {n_params:,} parameters", fontsize=fs + 2)
    return fig


def you_are_here(parts, label: str = "") -> Figure:
    """One strip from tokenizer to next token; the ``parts`` a notebook builds are in the accent colour."""
    on = _checked(parts)
    fig, (ax,) = new_figure(width=9.6, height=1.25)
    ax.set_xlim(-0.1, len(PARTS) + 0.1)
    ax.set_ylim(-0.55, 0.75)
    ax.axis("off")
    # The repeated block spans attention_norm .. feed_forward: a dashed frame, "x L" on it.
    first, last = 2, 7
    ax.add_patch(FancyBboxPatch((first + 0.02, -0.47), last - first + 0.96, 0.94,
                                boxstyle="round,pad=0.0,rounding_size=0.08", facecolor="none",
                                edgecolor=_LAYER_FRAME, linestyle="--", linewidth=1.0))
    ax.text(last + 0.96, 0.5, "x L layers", ha="right", va="bottom", fontsize=7.5, color="#44546a")
    for i, (key, text) in enumerate(PARTS):
        _box(ax, i + 0.5, 0, 0.86, 0.7, text, key in on, 6.5 if "\n" in text else 7.5)
        if i:
            _arrow(ax, (i - 0.07, 0), (i + 0.07, 0))
    if label:
        ax.text(0, 0.52, label, ha="left", va="bottom", fontsize=8.5, fontweight="bold", color=ACCENT)
    return fig
