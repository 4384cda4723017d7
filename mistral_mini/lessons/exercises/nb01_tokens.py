"""Checks of notebook 01 (tokens, embeddings, RMSNorm): RMSNorm on another layout, the embedding table's
gradient, decoding byte-fallback pieces."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ...norm import RMSNorm
from ...tokenizer import Tokenizer
from .checking import check_cases
from .compare import value_difference

__all__ = ["check_rms_norm_channels_first", "check_table_gradient", "check_decode_pieces"]


# ---------------------------------------------------------------------------------------------------------
# RMSNorm with the features on axis 1: x [B, dim, T]
# ---------------------------------------------------------------------------------------------------------


def _norm(x, weight, eps, axes=(1,), centre=False, eps_outside=False, gain=True):
    """RMSNorm of x [B, dim, T] over ``axes``, with the switches the classic mistakes flip."""
    if centre:
        x = x - x.mean(axes, keepdim=True)
    mean_square = x.pow(2).mean(axes, keepdim=True)  # [B, 1, T] for axes (1,)
    y = x / (mean_square.sqrt() + eps) if eps_outside else x / torch.sqrt(mean_square + eps)
    return y * weight[:, None] if gain else y  # weight [dim, 1] broadcasts along the tokens


RMS_MISTAKES = [
    ("you subtracted the mean: that is LayerNorm. RMSNorm only divides by the root mean square, so a shift "
     "of every feature survives it.", lambda x, w, eps: _norm(x, w, eps, centre=True)),
    ("eps sits outside the square root: it is added to the mean of the squares, before the root.",
     lambda x, w, eps: _norm(x, w, eps, eps_outside=True)),
    ("the gain `weight` is missing: multiply each feature by its weight at the end.",
     lambda x, w, eps: _norm(x, w, eps, gain=False)),
    ("the statistic was taken over the last axis, the tokens: here one token's features are x[b, :, t], "
     "along axis 1.", lambda x, w, eps: _norm(x, w, eps, axes=(2,))),
    ("one statistic for the whole sequence (features and tokens): RMSNorm normalizes each token on its own.",
     lambda x, w, eps: _norm(x, w, eps, axes=(1, 2))),
]


def check_rms_norm_channels_first(fn: Callable) -> None:
    """``fn(x, weight, eps) -> Tensor``: RMSNorm of each token of x [B, dim, T] (features on axis 1)."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for label, x, eps in [
        ("x of shape (2, 16, 5)", torch.randn(2, 16, 5, generator=g), 1e-5),
        ("x with a large mean, shape (3, 8, 4)", torch.randn(3, 8, 4, generator=g) + 10.0, 1e-5),
        ("small x (RMS 0.05), where eps matters, shape (2, 12, 6)",
         torch.randn(2, 12, 6, generator=g) * 0.05, 1e-3),
    ]:
        norm = RMSNorm(x.shape[1], eps=eps)
        with torch.no_grad():
            norm.weight.copy_(torch.rand(x.shape[1], generator=g) + 0.5)
            expected = norm(x.transpose(1, 2)).transpose(1, 2)  # [B, T, dim] for the package, back to [B, dim, T]
        cases.append((f"{label}, eps={eps:g}", (x, norm.weight.detach().clone(), eps), expected))
    check_cases("rms_norm_channels_first(x, weight, eps)", fn, cases, mistakes=RMS_MISTAKES,
                hint="print the shapes: the statistic is one number per (sequence, token), and the gain one "
                     "number per feature; both must broadcast against x [B, dim, T] along the right axis.")


# ---------------------------------------------------------------------------------------------------------
# the embedding table's gradient
# ---------------------------------------------------------------------------------------------------------


def _table_gradient(ids, grad, V):
    """Autograd's gradient of sum(embedding(ids) * grad) with respect to the table [V, dim]."""
    table = torch.zeros(V, grad.shape[-1], requires_grad=True)
    (F.embedding(ids, table) * grad).sum().backward()
    return table.grad


def _assigned(ids, grad, V):
    table = torch.zeros(V, grad.shape[-1])
    table[ids.flatten()] = grad.flatten(0, -2)  # repeated ids: one write wins, the others are lost
    return table


def _averaged(ids, grad, V):
    counts = torch.bincount(ids.flatten(), minlength=V).clamp(min=1)  # [V]
    return _table_gradient(ids, grad, V) / counts[:, None]


GRADIENT_MISTAKES = [
    ("a repeated id keeps only one of its gradients: a row used n times receives the sum of all n.",
     _assigned),
    ("repeated ids are averaged: the loss adds up every use of the row, so their gradients add up too.",
     _averaged),
    ("rows and columns swapped: the gradient has the table's shape, [V, dim].",
     lambda ids, grad, V: _table_gradient(ids, grad, V).T),
    ("one gradient per sequence: the batch's sequences share one table, so their gradients are added.",
     lambda ids, grad, V: torch.stack([_table_gradient(i, gr, V) for i, gr in zip(ids, grad, strict=True)])
     if ids.dim() == 2 else _table_gradient(ids, grad, V)),
]

AUTOGRAD = ["torch.Tensor.backward", "torch.autograd.backward", "torch.autograd.grad"]


def check_table_gradient(fn: Callable) -> None:
    """``fn(ids, grad, vocab_size) -> Tensor [V, dim]``: dLoss/dTable, given grad = dLoss/d(looked-up rows)."""
    g = torch.Generator().manual_seed(2)
    cases = []
    for label, ids, V in [("ids [3, 1, 3, 0, 3], V=6", torch.tensor([3, 1, 3, 0, 3]), 6),
                          ("a batch of ids, shape (2, 4), V=7", torch.tensor([[1, 1, 2, 6], [0, 6, 2, 6]]), 7),
                          ("ids [4, 0, 2] (no repeats), V=5", torch.tensor([4, 0, 2]), 5)]:
        grad = torch.randn(*ids.shape, 3, generator=g)  # [..., dim]
        cases.append((f"{label}, dim=3", (ids, grad, V), _table_gradient(ids, grad, V)))
    check_cases("table_gradient(ids, grad, vocab_size)", fn, cases, mistakes=GRADIENT_MISTAKES, forbidden=AUTOGRAD,
                hint="write the lookup as one_hot(ids) @ table, as above: for out = A @ table, how does a "
                     "change in one entry of the table reach the outputs? Try it by hand on ids [0, 0] and V = 2.")


# ---------------------------------------------------------------------------------------------------------
# decoding pieces back to text
# ---------------------------------------------------------------------------------------------------------


def _byte(piece: str) -> int | None:
    """``'<0xF0>'`` -> 240; None for any other piece."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        return int(piece[3:5], 16)
    return None


def _decode(pieces, per_byte=False, keep_bytes=False, space=True, lead="one"):
    """Pieces -> text, with the switches the classic mistakes flip."""
    out, pending = [], []  # pending: the bytes of a run of byte pieces, decoded together

    def flush():
        out.append("".join(map(chr, pending)) if per_byte else bytes(pending).decode("utf-8", "replace"))
        pending.clear()

    for piece in pieces:
        b = None if keep_bytes else _byte(piece)
        if b is not None:
            pending.append(b)
            continue
        flush()
        out.append(piece.replace("▁", " ") if space else piece)
    flush()
    text = "".join(out)
    if lead == "one":
        return text.removeprefix(" ")
    return text.lstrip(" ") if lead == "all" else text


KEPT_SPACES = "the ▁ are still there: SentencePiece writes a space as ▁."
DECODE_MISTAKES = [
    ("each byte piece was turned into a character of its own: a character without a piece is spread over "
     "several byte pieces, whose bytes together are its UTF-8 encoding.",
     lambda pieces: _decode(pieces, per_byte=True)),
    ("the byte pieces are left as they are: each <0xNN> stands for one byte of UTF-8.",
     lambda pieces: _decode(pieces, keep_bytes=True)),
    (KEPT_SPACES, lambda pieces: _decode(pieces, space=False)),
    (KEPT_SPACES, lambda pieces: _decode(pieces, space=False).removeprefix("▁")),  # the leading one dropped
    ("the text starts with a space: the tokenizer added one ▁ in front of the text, and decoding drops it.",
     lambda pieces: _decode(pieces, lead="none")),
    ("all leading spaces removed: the tokenizer added exactly one ▁ in front; the text's own spaces stay.",
     lambda pieces: _decode(pieces, lead="all")),
]

# The exercise asks for the decoding written out: these raise while the learner's code runs.
DECODERS = ["mistral_mini.tokenizer.Tokenizer.decode",
            *(f"sentencepiece.SentencePieceProcessor.{name}" for name in
              ("Decode", "DecodeIds", "DecodePieces", "decode", "decode_ids", "decode_pieces"))]

# Texts whose characters the notebook does not show, typical first; the last has no byte piece at all.
TEXTS = ["Go 🐙 go!", "one line\nthen ♞ and 鰻", "ℵ₀ < 𝔸", "  indented, twice", "plain words"]


def check_decode_pieces(fn: Callable) -> None:
    """``fn(pieces) -> str``: the text that Mistral's tokenizer's pieces (no <s>) stand for, as tok.decode."""
    tok = Tokenizer()
    cases = [(repr(text), (tok.pieces(tok.encode(text, bos=False)),), text) for text in TEXTS]
    check_cases("decode_pieces(pieces)", fn, cases, compare=value_difference, mistakes=DECODE_MISTAKES,
                forbidden=DECODERS,
                hint="print the pieces of a text, e.g. tok.pieces(tok.encode('I love 🦜', bos=False)), and "
                     "undo each of the tokenizer's steps shown above, in reverse order.")
