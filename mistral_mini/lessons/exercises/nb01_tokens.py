"""Checks of notebook 01 (tokens, embeddings, RMSNorm)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...norm import RMSNorm
from .checking import check_cases
from .compare import matches, value_difference

__all__ = ["check_rms_norm", "check_embedding_lookup", "check_byte_pieces"]


def check_rms_norm(fn: Callable) -> None:
    """``fn(x, weight, eps) -> Tensor``: RMSNorm over the last dimension, equal to ``norm.RMSNorm``."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for label, x in [("x of shape (2, 5, 16)", torch.randn(2, 5, 16, generator=g)),
                     ("x with a large mean, shape (3, 8)", torch.randn(3, 8, generator=g) + 10.0),
                     ("tiny x, where eps matters, shape (4, 6)", torch.randn(4, 6, generator=g) * 1e-3)]:
        norm = RMSNorm(x.shape[-1], eps=1e-5)
        with torch.no_grad():
            norm.weight.copy_(torch.rand(x.shape[-1], generator=g) + 0.5)
            expected = norm(x)
        cases.append((label, (x, norm.weight.detach().clone(), 1e-5), expected))

    def diagnose(args, got):
        x, weight, eps = args
        centred = x - x.mean(-1, keepdim=True)
        if matches(got, centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * weight):
            return "you subtracted the mean: that is LayerNorm. RMSNorm only divides by the root mean square."
        if matches(got, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)):
            return "almost: multiply by weight at the end."
        if matches(got, x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight):
            return "eps goes inside the square root: sqrt(mean(x**2) + eps)."
        return None

    check_cases("rms_norm(x, weight, eps)", fn, cases, diagnose=diagnose,
                hint="y = x / sqrt(mean(x**2 over the last dim, keepdim=True) + eps) * weight.")


def check_embedding_lookup(fn: Callable) -> None:
    """``fn(ids, weight) -> Tensor``: the rows of ``weight`` [V, dim] picked by ``ids``, computed any way."""
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(11, 4, generator=g)
    cases = [("ids [3, 0, 10]", (torch.tensor([3, 0, 10]), weight), weight[[3, 0, 10]]),
             ("a batch of ids, shape (2, 4)", (torch.tensor([[1, 1, 2, 9], [0, 5, 5, 7]]), weight),
              weight[torch.tensor([[1, 1, 2, 9], [0, 5, 5, 7]])])]
    check_cases("embedding_lookup(ids, weight)", fn, cases,
                hint="F.one_hot(ids, num_classes=weight.shape[0]) gives [..., V] rows of 0 and 1; "
                     "turn them to float and matmul with weight [V, dim].")


def check_byte_pieces(fn: Callable) -> None:
    """``fn(char) -> list[str]``: the byte-fallback pieces of one character, e.g. ['<0xF0>', '<0x9F>', ...]."""
    chars = ["🦜", "é", "A", "漢"]
    cases = [(f"{c!r}", (c,), [f"<0x{b:02X}>" for b in c.encode("utf-8")]) for c in chars]

    def diagnose(args, got):
        (char,) = args
        if isinstance(got, list) and got == [f"<0x{b:02x}>" for b in char.encode("utf-8")]:
            return "the hex digits are upper case in SentencePiece's byte pieces: f'<0x{b:02X}>'."
        return None

    check_cases("byte_pieces(char)", fn, cases, compare=value_difference, diagnose=diagnose,
                hint="char.encode('utf-8') gives the bytes; each byte b becomes the piece f'<0x{b:02X}>'.")
