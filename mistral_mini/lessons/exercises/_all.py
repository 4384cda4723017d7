"""Checks for the notebook exercises, and the command that writes the student copies of the notebooks.

Each ``check_*`` helper runs the learner's code on a few inputs, compares the result with the package, and
prints ``PASS`` or ``FAIL``. On failure it says what differed (shape, largest difference, first wrong
position) and gives a hint. It never raises, so the learner always sees the message, and it returns a bool.

Exercise cells follow nbgrader's convention: the solution sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``. For teachers::

    python -m mistral_mini.exercises student notebooks/ student_notebooks/

writes copies in which each solution is replaced by ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
and every output is cleared.

Layout: shared private helpers first, then the checks grouped by notebook, then the command line (last).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .attention import attention_reference, repeat_kv
from .cache import RollingBufferCache
from .checkpoint import permute_rope_rows, unpermute_rope_rows
from .config import ModelArgs
from .masks import causal_mask, sliding_window_mask
from .norm import RMSNorm
from .receptive_field import reach, receptive_field_mask
from .rope import apply_rope, rope_angles, rope_frequencies
from .transformer import Transformer, TransformerBlock

# ---------------------------------------------------------------------------------------------------------
# shared helpers: every check reports through these, so all messages look alike
# ---------------------------------------------------------------------------------------------------------


def _passed(what: str) -> bool:
    print(f"PASS: {what}")
    return True


def _failed(what: str, details: str, hint: str) -> bool:
    print(f"FAIL: {what}")
    for line in details.splitlines():
        print(f"  {line}")
    if hint:
        print(f"  hint: {hint}")
    return False


def _run(fn: Callable, *args, **kwargs) -> tuple[object, str | None]:
    """Call the learner's function; return (result, None) or (None, a message saying what went wrong)."""
    if not callable(fn):
        return None, f"expected a function, got {type(fn).__name__}"
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, "not implemented yet: replace `raise NotImplementedError()` with your code"
    except Exception as err:  # the learner's bug, reported rather than raised
        return None, f"your code raised {type(err).__name__}: {err}"


def _position(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def tensor_difference(got, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None if ``got`` matches ``expected``; otherwise one or more lines saying how they differ.

    Float tensors match within ``atol + rtol * |expected|``; integer and bool tensors must be equal.
    """
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of shape {tuple(expected.shape)}, got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"shape: got {tuple(got.shape)}, expected {tuple(expected.shape)}"
    got, expected = got.detach().cpu(), expected.detach().cpu()
    if expected.dtype == torch.bool or not expected.dtype.is_floating_point:
        if got.dtype.is_floating_point and expected.dtype != torch.bool:
            got = got.round()
        wrong = got.to(expected.dtype) != expected
        if not wrong.any():
            return None
        first = tuple(int(i) for i in wrong.nonzero()[0])
        return (f"{int(wrong.sum())} of {wrong.numel()} entries differ\n"
                f"first wrong position {_position(first)}: got {got[first].item()}, "
                f"expected {expected[first].item()}")
    if not got.dtype.is_floating_point:
        got = got.to(expected.dtype)
    got, expected = got.double(), expected.double()
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        first = tuple(int(i) for i in torch.isnan(got).nonzero()[0])
        return f"got NaN, first at position {_position(first)}"
    diff = (got - expected).abs()
    wrong = diff > atol + rtol * expected.abs()
    if not wrong.any():
        return None
    first = tuple(int(i) for i in wrong.nonzero()[0])
    return (f"max difference {diff.max().item():.4g} ({int(wrong.sum())} of {wrong.numel()} entries off)\n"
            f"first wrong position {_position(first)}: got {got[first].item():.6g}, "
            f"expected {expected[first].item():.6g}")


def _fresh(args: tuple) -> tuple:
    """Clones of any tensors in ``args``, so the learner's in-place edits cannot change the next case."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _check_cases(what: str, fn: Callable, cases: list[tuple[str, tuple, object]], hint: str,
                 compare: Callable[[object, object], str | None] | None = None,
                 diagnose: Callable[[tuple, object], str | None] | None = None) -> bool:
    """Run ``fn(*args)`` for each (label, args, expected) case; report the first case that differs.

    ``compare(got, expected)`` returns None or what differed (tensors by default). ``diagnose(args, got)``
    may recognise a classic mistake and return a hint more precise than ``hint``.
    """
    compare = compare or tensor_difference
    for label, args, expected in cases:
        got, error = _run(fn, *_fresh(args))
        if error is not None:
            return _failed(what, f"on {label}: {error}", hint if "raised" in error else "")
        difference = compare(got, expected)
        if difference is not None:
            specific = diagnose(_fresh(args), got) if diagnose is not None else None
            return _failed(what, f"on {label}:\n{difference}", specific or hint)
    return _passed(f"{what} ({len(cases)} case{'s' if len(cases) != 1 else ''})")


def _loose(got, expected: torch.Tensor) -> str | None:
    """``tensor_difference`` with room for float32 rounding in sin, cos and powers (atol 1e-4)."""
    return tensor_difference(got, expected, atol=1e-4, rtol=1e-4)


def _matches(got, candidate: torch.Tensor) -> bool:
    """Does ``got`` equal ``candidate`` (used to recognise a classic mistake)?"""
    return isinstance(got, torch.Tensor) and tensor_difference(got, candidate) is None


def list_difference(got, expected: list) -> str | None:
    """None if the sequence ``got`` equals the list ``expected``, else the length or first wrong item."""
    if isinstance(got, (str, bytes)) or not hasattr(got, "__len__"):
        return f"expected a list of {len(expected)} items, got {type(got).__name__}"
    got = list(got)
    for index, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"first wrong position [{index}]: got {a!r}, expected {b!r}"
    if len(got) != len(expected):
        return f"length: got {len(got)} items, expected {len(expected)}"
    return None


def number_difference(got, expected: float, rel: float = 1e-9) -> str | None:
    """None if the number ``got`` equals ``expected`` (to relative precision ``rel``), else a message."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return f"expected a number, got {type(got).__name__}"
    if abs(got - expected) <= rel * max(1.0, abs(expected)):
        return None
    return f"got {got:,}, expected {expected:,} (off by {got - expected:+,})"


# ---------------------------------------------------------------------------------------------------------
# 00 welcome
# ---------------------------------------------------------------------------------------------------------

_ARGS_CASES = {
    "Mistral 7B": ModelArgs.from_name("mistral-7b"),
    "the tiny preset": ModelArgs.from_name("tiny"),
    "a small MHA model": ModelArgs(dim=48, n_layers=3, head_dim=12, hidden_dim=80, n_heads=4, n_kv_heads=4,
                                   norm_eps=1e-5, vocab_size=50, sliding_window=6),
}


def _parameter_count(module_class, *args) -> int:
    with torch.device("meta"):  # count without allocating a single weight
        module = module_class(*args)
    return sum(p.numel() for p in module.parameters())


def check_block_parameters(fn: Callable) -> bool:
    """``fn(args) -> int``: the parameters of one TransformerBlock (attention, feed-forward, two norms)."""
    cases = [(name, (args,), _parameter_count(TransformerBlock, args)) for name, args in _ARGS_CASES.items()]
    return _check_cases(
        "block_parameters(args)", fn, cases, compare=number_difference,
        hint="wq and wo are dim x (n_heads * head_dim), wk and wv dim x (n_kv_heads * head_dim); the "
             "feed-forward has three dim x hidden_dim matrices; each RMSNorm has dim weights; no biases.")


def check_memory_needed(fn: Callable) -> bool:
    """``fn(args, dtype) -> int``: bytes to run one sequence: all the weights plus one rolling KV cache."""
    cases = []
    for name, args in _ARGS_CASES.items():
        for dtype in (torch.bfloat16, torch.float32):
            weights = _parameter_count(Transformer, args) * torch.tensor([], dtype=dtype).element_size()
            cache = RollingBufferCache(args, batch_size=1, device="meta", dtype=dtype).nbytes
            cases.append((f"{name} in {dtype}", (args, dtype), weights + cache))

    def diagnose(args, got):
        a, dtype = args
        itemsize = torch.tensor([], dtype=dtype).element_size()
        if got == _parameter_count(Transformer, a) * itemsize:
            return "add the rolling cache: 2 x n_layers x sliding_window x n_kv_heads x head_dim values."
        return None

    return _check_cases(
        "memory_needed(args, dtype)", fn, cases, compare=number_difference, diagnose=diagnose,
        hint="weights: every parameter x bytes per value (torch.tensor([], dtype=dtype).element_size()); "
             "cache: keys and values for sliding_window positions, every layer, n_kv_heads x head_dim each.")


# ---------------------------------------------------------------------------------------------------------
# 01 tokens, embeddings, RMSNorm
# ---------------------------------------------------------------------------------------------------------


def check_rms_norm(fn: Callable) -> bool:
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
        if _matches(got, centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * weight):
            return "you subtracted the mean: that is LayerNorm. RMSNorm only divides by the root mean square."
        if _matches(got, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)):
            return "almost: multiply by weight at the end."
        if _matches(got, x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight):
            return "eps goes inside the square root: sqrt(mean(x**2) + eps)."
        return None

    return _check_cases("rms_norm(x, weight, eps)", fn, cases, diagnose=diagnose,
                        hint="y = x / sqrt(mean(x**2 over the last dim, keepdim=True) + eps) * weight.")


def check_embedding_lookup(fn: Callable) -> bool:
    """``fn(ids, weight) -> Tensor``: the rows of ``weight`` [V, dim] picked by ``ids``, computed any way."""
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(11, 4, generator=g)
    cases = [("ids [3, 0, 10]", (torch.tensor([3, 0, 10]), weight), weight[[3, 0, 10]]),
             ("a batch of ids, shape (2, 4)", (torch.tensor([[1, 1, 2, 9], [0, 5, 5, 7]]), weight),
              weight[torch.tensor([[1, 1, 2, 9], [0, 5, 5, 7]])])]
    return _check_cases("embedding_lookup(ids, weight)", fn, cases,
                        hint="F.one_hot(ids, num_classes=weight.shape[0]) gives [..., V] rows of 0 and 1; "
                             "turn them to float and matmul with weight [V, dim].")


def check_byte_pieces(fn: Callable) -> bool:
    """``fn(char) -> list[str]``: the byte-fallback pieces of one character, e.g. ['<0xF0>', '<0x9F>', ...]."""
    chars = ["🦜", "é", "A", "漢"]
    cases = [(f"{c!r}", (c,), [f"<0x{b:02X}>" for b in c.encode("utf-8")]) for c in chars]

    def diagnose(args, got):
        (char,) = args
        if isinstance(got, list) and got == [f"<0x{b:02x}>" for b in char.encode("utf-8")]:
            return "the hex digits are upper case in SentencePiece's byte pieces: f'<0x{b:02X}>'."
        return None

    return _check_cases("byte_pieces(char)", fn, cases, compare=list_difference, diagnose=diagnose,
                        hint="char.encode('utf-8') gives the bytes; each byte b becomes the piece f'<0x{b:02X}>'.")


# ---------------------------------------------------------------------------------------------------------
# 02 rotary embeddings
# ---------------------------------------------------------------------------------------------------------


def check_rope(fn: Callable) -> bool:
    """``fn(x, positions, theta) -> Tensor``: interleaved RoPE of x [B, T, H, D], equal to ``rope.apply_rope``."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for label, shape, start, theta in [("x (1, 6, 2, 8), positions 0..5", (1, 6, 2, 8), 0, 10000.0),
                                       ("x (2, 4, 3, 16), positions 100..103", (2, 4, 3, 16), 100, 10000.0),
                                       ("theta = 1e6", (1, 5, 1, 8), 7, 1e6)]:
        x = torch.randn(*shape, generator=g)
        positions = torch.arange(start, start + shape[1])
        cos, sin = rope_angles(positions, shape[-1], theta)
        cases.append((label, (x, positions, theta), apply_rope(x, cos, sin)))

    def diagnose(args, got):
        x, positions, theta = args
        cos, sin = rope_angles(positions, x.shape[-1], theta)
        if _matches(got, apply_rope(x, cos, -sin)):
            return "you rotate the wrong way: the new first feature is x0*cos - x1*sin, the second x0*sin + x1*cos."
        half = x.shape[-1] // 2
        c, s = torch.cat((cos, cos), -1)[:, None], torch.cat((sin, sin), -1)[:, None]
        rotated_half = torch.cat((-x[..., half:], x[..., :half]), -1)
        if _matches(got, x * c + rotated_half * s):
            return "that is Hugging Face's half-split layout; here pairs are neighbours (x[2k], x[2k+1])."
        return None

    return _check_cases("rope(x, positions, theta)", fn, cases, diagnose=diagnose, compare=_loose,
                        hint="pair k is (x[..., 2k], x[..., 2k+1]); rotate it by position * theta ** (-2k / D).")


def check_half_split(fn: Callable) -> bool:
    """``fn(w, n_heads) -> Tensor``: rows of wq/wk from Mistral's interleaved layout to Hugging Face's."""
    w = torch.arange(32 * 3, dtype=torch.float32).view(32, 3)
    cases = [(f"w (32, 3), {n} head{'s' if n > 1 else ''}", (w, n), permute_rope_rows(w, n)) for n in (1, 2, 4)]

    def diagnose(args, got):
        w, n = args
        if _matches(got, unpermute_rope_rows(w, n)):
            return "that is the inverse permutation (half-split -> interleaved)."
        if n > 1 and _matches(got, permute_rope_rows(w, 1)):
            return "permute within each head: the rows are n_heads blocks of head_dim rows."
        return None

    return _check_cases("half_split(w, n_heads)", fn, cases, diagnose=diagnose,
                        hint="within a head, row 2k goes to row k and row 2k+1 to row k + D/2: view the rows as "
                             "(n_heads, D/2, 2), swap the last two axes, flatten back.")


def check_wavelengths(fn: Callable) -> bool:
    """``fn(head_dim, theta) -> Tensor [D/2]``: positions it takes pair k to turn once, 2 pi / freq_k."""
    cases = [(f"head_dim={d}, theta={t:g}", (d, t), 2 * torch.pi / rope_frequencies(d, t))
             for d, t in [(8, 10000.0), (128, 10000.0), (128, 1e6)]]
    return _check_cases("wavelengths(head_dim, theta)", fn, cases, compare=_loose,
                        hint="freq_k = theta ** (-2k / head_dim) for k = 0 .. head_dim/2 - 1; one turn is 2 pi.")


# ---------------------------------------------------------------------------------------------------------
# 03 attention and masks
# ---------------------------------------------------------------------------------------------------------


def check_window_mask(fn: Callable) -> bool:
    """``fn(T, W) -> bool Tensor [T, T]``: True where query i may see key j, ``0 <= i - j < W``."""
    cases = []
    for T, W in [(6, 3), (10, 1), (5, 8), (12, 4)]:
        pos = torch.arange(T)
        cases.append((f"T={T}, W={W}", (T, W), sliding_window_mask(pos, pos, W)))

    def diagnose(args, got):
        T, W = args
        pos = torch.arange(T)
        if _matches(got, sliding_window_mask(pos, pos, W + 1)):
            return "off by one: your window holds W + 1 keys. It holds W, the query's own included: i - j < W."
        if _matches(got, sliding_window_mask(pos, pos, W).T):
            return "rows are queries i, columns keys j: mask[i, j], with j <= i."
        if _matches(got, causal_mask(pos, pos)):
            return "that is the causal mask; add the window's condition i - j < W."
        return None

    return _check_cases("window_mask(T, W)", fn, cases, diagnose=diagnose,
                        hint="offset = i - j from two aranges (one as a column, one as a row); "
                             "keep 0 <= offset < W.")


def check_attention(fn: Callable) -> bool:
    """``fn(q, k, v, mask) -> Tensor [T, D]``: single-head masked attention with an explicit softmax."""
    g = torch.Generator().manual_seed(4)
    cases = []
    for T, D, W in [(5, 8, 5), (9, 4, 3), (7, 16, 1)]:
        q, k, v = (torch.randn(T, D, generator=g) for _ in range(3))
        pos = torch.arange(T)
        mask = sliding_window_mask(pos, pos, W)
        expected = attention_reference(q[None, None], k[None, None], v[None, None], mask)[0, 0]
        cases.append((f"T={T}, D={D}, W={W}", (q, k, v, mask), expected))

    def diagnose(args, got):
        q, k, v, mask = args
        scores = (q @ k.T).masked_fill(~mask, float("-inf"))
        if _matches(got, torch.softmax(scores, -1) @ v):
            return "divide the scores by sqrt(D) before the softmax."
        scaled = scores / q.shape[-1] ** 0.5
        if _matches(got, torch.softmax(scaled.nan_to_num(neginf=-1e9), 0) @ v):
            return "softmax over the keys (the last axis): each query's weights must sum to 1."
        if _matches(got, torch.softmax(q @ k.T / q.shape[-1] ** 0.5, -1) @ v):
            return "apply the mask: set masked scores to -inf before the softmax."
        return None

    return _check_cases("attention(q, k, v, mask)", fn, cases, diagnose=diagnose,
                        hint="scores = q @ k.T / sqrt(D); masked scores -> -inf; softmax over the last axis; @ v.")


def check_allowed_pairs(fn: Callable) -> bool:
    """``fn(T, W) -> int``: how many (query, key) pairs the sliding-window mask allows."""
    cases = []
    for T, W in [(6, 3), (10, 1), (5, 8), (4096, 4096), (32768, 4096)]:
        pos = torch.arange(min(T, 64))
        expected = sum(min(i + 1, W) for i in range(T)) if T > 64 else int(sliding_window_mask(pos, pos, W).sum())
        cases.append((f"T={T}, W={W}", (T, W), expected))

    def diagnose(args, got):
        T, W = args
        if got == T * W:
            return "the first W - 1 queries see fewer than W keys: query i sees min(i + 1, W)."
        return None

    return _check_cases("allowed_pairs(T, W)", fn, cases, compare=number_difference, diagnose=diagnose,
                        hint="query i sees min(i + 1, W) keys; sum over i.")


# ---------------------------------------------------------------------------------------------------------
# 04 grouped-query attention
# ---------------------------------------------------------------------------------------------------------


def check_repeat_kv(fn: Callable) -> bool:
    """``fn(x, n_rep) -> Tensor``: [B, Hkv, T, D] -> [B, Hkv * n_rep, T, D], equal to ``attention.repeat_kv``."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for B, Hkv, T, D, n_rep in [(1, 2, 3, 4, 2), (2, 3, 5, 2, 4), (1, 4, 2, 3, 1)]:
        x = torch.randn(B, Hkv, T, D, generator=g)
        cases.append((f"x {(B, Hkv, T, D)}, n_rep={n_rep}", (x, n_rep), repeat_kv(x, n_rep)))

    def diagnose(args, got):
        x, n_rep = args
        if _matches(got, x.repeat(1, n_rep, 1, 1)):
            return ("you tiled the heads (kv0, kv1, kv0, kv1); repeat each in place (kv0, kv0, kv1, kv1): "
                    "query head h reads key/value head h // n_rep.")
        return None

    return _check_cases("repeat_kv(x, n_rep)", fn, cases, diagnose=diagnose,
                        hint="x[:, :, None] has a new axis after the heads: expand it to n_rep, then reshape.")


def check_kv_bytes_per_token(fn: Callable) -> bool:
    """``fn(args, bytes_per_value) -> int``: KV cache bytes per token, all layers, keys and values."""
    seven_b = ModelArgs.from_name("mistral-7b")
    mha = ModelArgs(**{**seven_b.to_dict(), "n_kv_heads": seven_b.n_heads})
    cases = [(f"{name}, {nbytes} bytes per value", (args, nbytes),
              2 * args.n_layers * args.n_kv_heads * args.head_dim * nbytes)
             for name, args, nbytes in [("Mistral 7B", seven_b, 2), ("Mistral 7B with 32 KV heads", mha, 2),
                                        ("the tiny preset", ModelArgs.from_name("tiny"), 4)]]

    def diagnose(args, got):
        a, nbytes = args
        if got == a.n_layers * a.n_kv_heads * a.head_dim * nbytes:
            return "count both the key and the value: x 2."
        if got == 2 * a.n_layers * a.n_heads * a.head_dim * nbytes:
            return "only the key/value heads are cached: n_kv_heads, not n_heads."
        return None

    return _check_cases("kv_bytes_per_token(args, bytes_per_value)", fn, cases, compare=number_difference,
                        diagnose=diagnose, hint="2 (key and value) x n_layers x n_kv_heads x head_dim x bytes.")


def check_kv_head_of(fn: Callable) -> bool:
    """``fn(query_head, n_heads, n_kv_heads) -> int``: the key/value head a query head reads."""
    cases = [(f"query head {h} of {H}, {Hkv} KV heads", (h, H, Hkv), h // (H // Hkv))
             for H, Hkv in [(32, 8), (8, 2), (8, 1), (4, 4)] for h in range(H)]

    def diagnose(args, got):
        h, H, Hkv = args
        if got == h % Hkv:
            return "neighbouring query heads share a KV head (h // n_rep), they do not take turns (h % n_kv_heads)."
        return None

    return _check_cases("kv_head_of(query_head, n_heads, n_kv_heads)", fn, cases, compare=number_difference,
                        diagnose=diagnose, hint="n_rep = n_heads // n_kv_heads query heads share each KV head.")


# ---------------------------------------------------------------------------------------------------------
# 05 receptive field
# ---------------------------------------------------------------------------------------------------------


def check_reach(fn: Callable) -> bool:
    """``fn(n_layers, window) -> int``: positions back the last layer can see, L * (W - 1)."""
    cases = [(f"L={L}, W={W}", (L, W), reach(L, W)) for L, W in [(1, 4096), (32, 4096), (3, 4), (5, 1), (0, 7)]]

    def diagnose(args, got):
        L, W = args
        if got == L * W:
            return ("you counted W per layer, like the paper's 32 * 4096 = 131,072. The window includes the "
                    "token itself, so each layer reaches only W - 1 further back.")
        return None

    return _check_cases("reach(n_layers, window)", fn, cases, compare=number_difference, diagnose=diagnose,
                        hint="one layer sees i - j < W, so W - 1 back; layers add up.")


def check_receptive_field(fn: Callable) -> bool:
    """``fn(seq_len, n_layers, window) -> bool Tensor [T, T]``: True where input j can influence output i."""
    cases = [(f"T={T}, L={L}, W={W}", (T, L, W), receptive_field_mask(T, L, W))
             for T, L, W in [(10, 1, 3), (16, 2, 3), (20, 3, 4), (8, 0, 5)]]

    def diagnose(args, got):
        T, L, W = args
        if L > 0 and _matches(got, receptive_field_mask(T, 1, L * W + 1)):  # reaching L * W back
            return "the field is L * (W - 1) positions back: W - 1 per layer, not W."
        return None

    return _check_cases("receptive_field(seq_len, n_layers, window)", fn, cases, diagnose=diagnose,
                        hint="either compose the one-layer mask L times (a boolean matrix product), or use "
                             "0 <= i - j <= L * (W - 1).")


def check_layers_needed(fn: Callable) -> bool:
    """``fn(distance, window) -> int``: the fewest layers whose receptive field reaches ``distance`` back."""
    cases = [(f"distance={d:,}, W={W}", (d, W), -(-d // (W - 1)))
             for d, W in [(12, 4), (5, 4), (4095, 4096), (4096, 4096), (131040, 4096), (131072, 4096), (0, 4)]]

    def diagnose(args, got):
        d, W = args
        if got == -(-d // W):
            return "each layer adds W - 1 positions, not W."
        if got == d // (W - 1):
            return "round up: a partial layer still costs a whole layer."
        return None

    return _check_cases("layers_needed(distance, window)", fn, cases, compare=number_difference,
                        diagnose=diagnose, hint="the smallest L with L * (W - 1) >= distance: a ceiling division.")


# ---------------------------------------------------------------------------------------------------------
# Notebooks 06-10
# ---------------------------------------------------------------------------------------------------------


def _plain(x):
    """Tensors, numpy values, tuples -> plain python lists and numbers, so that results compare with ==."""
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item") and hasattr(x, "dtype"):  # a numpy scalar or array
        return x.tolist()
    return x


def _short(values: list, limit: int = 12) -> str:
    return str(values) if len(values) <= limit else str(values[:limit])[:-1] + ", ...]"


def value_difference(got, expected) -> str | None:
    """None if ``got`` equals ``expected`` (numbers, None, lists or tuples of them), else what differs."""
    g, e = _plain(got), _plain(expected)
    if g == e:
        return None
    if isinstance(e, list):
        if not isinstance(g, list):
            return f"expected a list or tuple like {_short(e)}, got {got!r}"
        if len(g) != len(e):
            return f"length: got {len(g)}, expected {len(e)}\ngot      {_short(g)}\nexpected {_short(e)}"
        first = next(i for i, (a, b) in enumerate(zip(g, e, strict=True)) if a != b)
        return (f"first wrong position [{first}]: got {g[first]!r}, expected {e[first]!r}\n"
                f"got      {_short(g)}\nexpected {_short(e)}")
    return f"got {g!r}, expected {e!r}"


def _int_difference(got, expected: int) -> str | None:
    """Like ``number_difference`` but insists on a whole number (bytes, parameters, sequences)."""
    if isinstance(got, float) and got.is_integer():
        got = int(got)
    if isinstance(got, float):
        return f"expected a whole number, got {got!r}"
    return number_difference(got, expected, rel=0)


def _args(**overrides):
    from .config import ModelArgs

    base = dict(dim=64, n_layers=2, head_dim=16, hidden_dim=96, n_heads=4, n_kv_heads=2, norm_eps=1e-5,
                vocab_size=97, sliding_window=8, rope_theta=10000.0)
    return ModelArgs(**{**base, **overrides})


def _dtype_of(itemsize: int) -> torch.dtype:
    return {1: torch.uint8, 2: torch.bfloat16, 4: torch.float32, 8: torch.float64}[itemsize]


def _rolling_cache_bytes(args, itemsize: int, batch_size: int = 1) -> int:
    """What ``RollingBufferCache.nbytes`` reports, allocating nothing (the meta device)."""
    from .cache import RollingBufferCache

    return RollingBufferCache(args, batch_size=batch_size, device="meta", dtype=_dtype_of(itemsize)).nbytes


# 06 rolling buffer cache


def check_slot_and_evicted(fn: Callable[[int, int], tuple[int, int | None]]) -> bool:
    """06: ``fn(position, window)`` -> (the slot it is written to, the position it overwrites or None)."""
    cases = []
    for window in (1, 4, 8):
        for position in sorted({0, 1, window - 1, window, window + 3, 4 * window, 4 * window + 1}):
            evicted = position - window if position >= window else None
            cases.append((f"position={position}, window={window}", (position, window),
                          (position % window, evicted)))
    return _check_cases("slot_and_evicted(position, window)", fn, cases,
                        "position p goes to slot p % W and overwrites position p - W; "
                        "while p < W the slot is still empty, so nothing is overwritten (None)",
                        compare=value_difference)


def check_kv_cache_bytes(fn: Callable) -> bool:
    """06: ``fn(args, seq_len, itemsize, rolling)`` -> bytes of keys and values for one sequence.

    rolling=True: the rolling buffer, W slots per layer whatever seq_len is (it is allocated up front).
    rolling=False: a full cache, one slot per token seen.
    """
    from .config import ModelArgs

    seven_b = ModelArgs.from_name("mistral-7b")
    cases = []
    for label, args in (("the 7B", seven_b), ("a small model", _args(n_layers=3, sliding_window=16))):
        for itemsize in (2, 4):
            rolling = _rolling_cache_bytes(args, itemsize)
            cases.append((f"{label}, rolling, itemsize {itemsize}, seq_len 100_000",
                          (args, 100_000, itemsize, True), rolling))
            for seq_len in (10, 32_768):
                full = rolling * seq_len // args.sliding_window
                cases.append((f"{label}, full, itemsize {itemsize}, seq_len {seq_len}",
                              (args, seq_len, itemsize, False), full))
    return _check_cases("kv_cache_bytes(args, seq_len, itemsize, rolling)", fn, cases,
                        "keys and values (2) x n_layers x slots x n_kv_heads x head_dim x itemsize; slots is "
                        "sliding_window for the rolling buffer and seq_len for a full cache",
                        compare=_int_difference)


def check_slot_positions(fn: Callable[[int, int], list[int]]) -> bool:
    """06: ``fn(n_seen, window)`` -> the position each of the W slots holds after n_seen tokens (-1: empty)."""
    from .cache import RollingBufferCache

    cases = []
    for window in (1, 3, 8):
        cache = RollingBufferCache(_args(n_layers=1, sliding_window=window))
        for n_seen in sorted({0, 1, window - 1, window, window + 1, 3 * window + 2}):
            expected = cache.positions_after(torch.arange(n_seen)) if n_seen else torch.full((window,), -1)
            cases.append((f"n_seen={n_seen}, window={window}", (n_seen, window), expected.tolist()))
    return _check_cases("slot_positions(n_seen, window)", fn, cases,
                        "positions 0..n_seen-1 were written to slots p % W, each overwriting the last; "
                        "slot s keeps the latest p with p % W == s, and -1 if no p has reached it yet",
                        compare=value_difference)


# 07 pre-fill chunking


def check_chunk_bounds(fn: Callable[[int, int], list[tuple[int, int]]]) -> bool:
    """07: ``fn(prompt_len, chunk_size)`` -> [(start, end), ...] covering 0..prompt_len, end exclusive."""
    cases = [(f"prompt_len={t}, chunk_size={c}", (t, c), [(s, min(s + c, t)) for s in range(0, t, c)])
             for t, c in ((10, 5), (23, 5), (7, 1), (4, 10), (4096, 4096), (16_500, 4096))]
    return _check_cases("chunk_bounds(prompt_len, chunk_size)", fn, cases,
                        "starts go 0, C, 2C, ... while below prompt_len; the last chunk ends at prompt_len, "
                        "so it may be shorter than C", compare=value_difference)


def check_chunk_mask(fn: Callable[[int, int, int], torch.Tensor]) -> bool:
    """07: ``fn(start, end, window)`` -> bool [end - start, keys]: the chunk's queries against the cached keys
    (positions max(0, start - window) .. start - 1) followed by the chunk's own keys."""
    from .masks import sliding_window_mask

    cases = []
    for start, end, window in ((0, 5, 8), (10, 15, 8), (20, 23, 8), (8, 30, 8), (6, 9, 1), (3, 4, 4)):
        q_pos, k_pos = torch.arange(start, end), torch.arange(max(0, start - window), end)
        cases.append((f"start={start}, end={end}, window={window}", (start, end, window),
                      sliding_window_mask(q_pos, k_pos, window)))
    return _check_cases("chunk_mask(start, end, window)", fn, cases,
                        "build q_pos = start..end-1 and k_pos = max(0, start - W)..end-1, then query i sees key "
                        "j iff 0 <= i - j < W (mistral_mini.masks.sliding_window_mask does exactly that)")


def check_chunked_logits(fn: Callable) -> bool:
    """07: ``fn(model, tokens, chunk_size)`` -> logits [T, V] of every position, computed chunk by chunk
    through a RollingBufferCache; they must equal one full pass."""
    from .transformer import Transformer

    args = _args(sliding_window=6)
    torch.manual_seed(0)
    model = Transformer(args).eval()
    tokens = torch.randint(0, args.vocab_size, (23,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(tokens[None])[0]  # [T, V]
    cases = [(f"23 tokens, window 6, chunk_size={c}", (model, tokens, c), expected) for c in (23, 5, 1, 6, 7)]
    with torch.no_grad():
        return _check_cases("chunked_logits(model, tokens, chunk_size)", fn, cases,
                            "one RollingBufferCache for the whole prompt; feed tokens[None, s:e] with cache=cache "
                            "for each chunk, keep logits[0], and torch.cat them along the token axis")


# 08 the whole model


def check_swiglu(fn: Callable) -> bool:
    """08: ``fn(x, w1, w2, w3)`` -> w2(silu(w1 x) * w3 x), with nn.Linear-style weights [out, in]."""
    from .feed_forward import FeedForward

    cases = []
    for dim, hidden, shape in ((8, 12, (5, 8)), (16, 40, (2, 3, 16))):
        torch.manual_seed(dim)
        ff = FeedForward(dim, hidden)
        x = torch.randn(shape)
        with torch.no_grad():
            expected = ff(x)
        cases.append((f"dim={dim}, hidden_dim={hidden}, x of shape {shape}",
                      (x, ff.w1.weight.detach(), ff.w2.weight.detach(), ff.w3.weight.detach()), expected))
    return _check_cases("swiglu(x, w1, w2, w3)", fn, cases,
                        "a Linear with weight w computes x @ w.T; the gate is silu(x @ w1.T), it multiplies "
                        "x @ w3.T element by element, and w2 projects the product back to dim")


def check_parameter_count(fn: Callable) -> bool:
    """08: ``fn(args)`` -> the number of parameters of Transformer(args), from the hyper-parameters alone."""
    from .config import ModelArgs

    cases = [(name, (args,), _parameter_count(Transformer, args)) for name, args in (
        ("the tiny preset", ModelArgs.from_name("tiny")),
        ("a model with n_kv_heads = n_heads", _args(n_kv_heads=4, n_layers=3)),
        ("Mistral 7B", ModelArgs.from_name("mistral-7b")),
    )]
    return _check_cases("parameter_count(args)", fn, cases,
                        "embeddings and output: vocab_size x dim each; per layer wq and wo: dim x n_heads x "
                        "head_dim each, wk and wv: dim x n_kv_heads x head_dim each, w1 w2 w3: dim x hidden_dim "
                        "each, two norms of dim; then one final norm of dim",
                        compare=_int_difference)


def check_hf_name(fn: Callable[[str], str]) -> bool:
    """08: ``fn(hf_name)`` -> Mistral's name of the same tensor (``model.norm.weight`` -> ``norm.weight``)."""
    from .checkpoint import hf_name_to_mistral, mistral_name_to_hf
    from .transformer import Transformer

    with torch.device("meta"):
        names = list(Transformer(_args(n_layers=2)).state_dict())
    cases = [(repr(mistral_name_to_hf(n)), (mistral_name_to_hf(n),), hf_name_to_mistral(mistral_name_to_hf(n)))
             for n in names]
    return _check_cases("hf_to_mistral(name)", fn, cases,
                        "model.embed_tokens -> tok_embeddings, self_attn.q_proj -> attention.wq (k, v, o alike), "
                        "mlp.gate_proj -> feed_forward.w1, down_proj -> w2, up_proj -> w3, input_layernorm -> "
                        "attention_norm, post_attention_layernorm -> ffn_norm, model.norm -> norm, lm_head -> "
                        "output; 'model.layers.N.' becomes 'layers.N.'", compare=value_difference)


# 09 generation


def check_temperature(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """09: ``fn(logits, temperature)`` -> probabilities softmax(logits / temperature) over the last axis."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for shape, temperature in (((6,), 1.0), ((6,), 0.5), ((10,), 2.0), ((3, 10), 0.7)):
        logits = torch.randn(shape, generator=generator) * 3
        cases.append((f"logits of shape {shape}, temperature {temperature}", (logits, temperature),
                      torch.softmax(logits / temperature, dim=-1)))

    def diagnose(args, got) -> str | None:
        logits, temperature = args
        if _matches(got, torch.softmax(logits * temperature, dim=-1)):
            return "you multiplied by the temperature: divide instead, so that a low temperature sharpens"
        if _matches(got, logits / temperature):
            return "these are the scaled logits: finish with torch.softmax(..., dim=-1)"
        return None

    return _check_cases("apply_temperature(logits, temperature)", fn, cases,
                        "divide the logits by the temperature first, then softmax over the last axis",
                        diagnose=diagnose)


def check_top_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """09: ``fn(probs, p)`` -> probabilities with only the nucleus kept, renormalized (like top_p_filter)."""
    from .generate import top_p_filter

    worked = torch.tensor([0.5, 0.25, 0.1875, 0.0625])
    shuffled = torch.tensor([0.0625, 0.25, 0.5, 0.1875])
    batch = torch.softmax(torch.randn(3, 12, generator=torch.Generator().manual_seed(0)) * 2, dim=-1)
    cases = [(f"probs {label}, top_p {p}", (probs, p), top_p_filter(probs, p)) for label, probs, p in (
        ("[0.5, 0.25, 0.1875, 0.0625]", worked, 0.7),
        ("[0.0625, 0.25, 0.5, 0.1875] (not sorted)", shuffled, 0.7),
        ("[0.5, 0.25, 0.1875, 0.0625]", worked, 0.01),
        ("[0.5, 0.25, 0.1875, 0.0625]", worked, 1.0),
        ("of shape (3, 12)", batch, 0.9),
    )]

    def diagnose(args, got) -> str | None:
        probs, top_p = args
        if not isinstance(got, torch.Tensor) or got.shape != probs.shape:
            return None
        if _matches(got, probs) and top_p < 1:
            return "nothing was removed: zero every token outside the nucleus"
        if not torch.allclose(got.sum(-1), torch.ones(()), atol=1e-4):
            return "the kept probabilities must add up to 1 again: divide by their sum"
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        short = torch.where(sorted_probs.cumsum(-1) <= top_p, sorted_probs, 0.0)
        short = torch.zeros_like(probs).scatter_(-1, order, short)
        if short.sum() > 0 and _matches(got, short / short.sum(-1, keepdim=True)):
            return ("one token too few: keep the token whose probability carries the total past top_p, i.e. "
                    "keep a token while the mass *before* it is below top_p")
        return None

    return _check_cases("top_p(probs, p)", fn, cases,
                        "sort descending; keep a token while the mass of the tokens before it is < top_p (the "
                        "likeliest is always kept); zero the rest, put them back in vocabulary order, renormalize",
                        diagnose=diagnose)


def check_chat_ids(fn: Callable) -> bool:
    """09: ``fn(tok, messages)`` -> the v1 chat template's token ids, equal to mistral-common's."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from .tokenizer import Tokenizer

    reference = MistralTokenizer.v1()
    kinds = {"user": UserMessage, "assistant": AssistantMessage}
    tok = Tokenizer()
    cases = []
    for messages in ([{"role": "user", "content": "Hello!"}],
                     [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                      {"role": "user", "content": "And 3+3?"}]):
        request = ChatCompletionRequest(messages=[kinds[m["role"]](content=m["content"]) for m in messages])
        cases.append((f"{len(messages)} message(s)", (tok, messages),
                      reference.encode_chat_completion(request).tokens))
    return _check_cases("chat_ids(tok, messages)", fn, cases,
                        "one BOS (tok.bos_id) first; each user turn is tok.encode(f'[INST] {content} [/INST]', "
                        "bos=False); each assistant turn is tok.encode(content, bos=False) + [tok.eos_id]",
                        compare=value_difference)


# 10 Mistral 7B on a GPU


def check_weight_bytes(fn: Callable) -> bool:
    """10: ``fn(args, itemsize)`` -> bytes the weights take at ``itemsize`` bytes per parameter."""
    from .config import ModelArgs

    cases = [(f"{name}, itemsize {itemsize}", (args, itemsize), _parameter_count(Transformer, args) * itemsize)
             for name, args in (("Mistral 7B", ModelArgs.from_name("mistral-7b")), ("the tiny preset",
                                                                                    ModelArgs.from_name("tiny")))
             for itemsize in (2, 4)]
    return _check_cases("weight_bytes(args, itemsize)", fn, cases,
                        "count the parameters (notebook 08) and multiply by the bytes per parameter: 2 for "
                        "bf16, 4 for float32", compare=_int_difference)


def check_max_sequences(fn: Callable) -> bool:
    """10: ``fn(free_bytes, args, itemsize)`` -> how many sequences' rolling caches fit next to the weights."""
    from .config import ModelArgs

    seven_b = ModelArgs.from_name("mistral-7b")
    weights = _parameter_count(Transformer, seven_b) * 2
    per_sequence = _rolling_cache_bytes(seven_b, 2)
    cases = [(f"{free / 2**30:g} GiB free, the 7B in bf16", (free, seven_b, 2),
              max(0, (free - weights) // per_sequence))
             for free in (80 * 2**30, 24 * 2**30, weights + per_sequence - 1, 8 * 2**30)]
    return _check_cases("max_sequences(free_bytes, args, itemsize)", fn, cases,
                        "subtract the weights (parameters x itemsize), then divide by one sequence's rolling "
                        "cache (2 x n_layers x sliding_window x n_kv_heads x head_dim x itemsize), rounding "
                        "down; never below 0", compare=_int_difference)


# ---------------------------------------------------------------------------------------------------------
# the command line: student copies of the notebooks (keep this section last in the file)
# ---------------------------------------------------------------------------------------------------------

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
_CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_ANSWER_STUB = ("YOUR ANSWER HERE",)


def strip_solutions(source: str, stub: tuple[str, ...] = _CODE_STUB) -> str:
    """Replace every BEGIN/END SOLUTION region of a cell's source by ``stub``, at the BEGIN line's indent.

    Lines before BEGIN and after END are kept, so a function's signature and docstring stay in place.
    """
    lines = source.split("\n")
    out: list[str] = []
    inside = False
    for number, line in enumerate(lines, start=1):
        if line.strip() == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"line {number}: {BEGIN_SOLUTION} inside another solution")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif line.strip() == END_SOLUTION:
            if not inside:
                raise ValueError(f"line {number}: {END_SOLUTION} without a {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN_SOLUTION} is never closed by {END_SOLUTION}")
    return "\n".join(out)


def student_notebook(notebook: dict) -> dict:
    """A student copy of a notebook loaded from JSON: solutions stubbed, outputs and widget state gone."""
    notebook = json.loads(json.dumps(notebook))  # a deep copy; the teacher's version stays untouched
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        stub = _CODE_STUB if cell.get("cell_type") == "code" else _ANSWER_STUB
        cell["source"] = strip_solutions(text, stub)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
    notebook.get("metadata", {}).pop("widgets", None)
    return notebook


def write_student_copies(src_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write a student copy of every ``*.ipynb`` in ``src_dir`` into ``out_dir``; return the paths written."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"no folder {src_dir}: expected the folder holding the notebooks")
    sources = sorted(src_dir.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no *.ipynb in {src_dir}")
    if out_dir.resolve() == src_dir.resolve():
        raise ValueError("OUT_DIR must differ from SRC_DIR: the student copies would overwrite the solutions")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        try:
            copy = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        target = out_dir / path.name
        target.write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mistral_mini.exercises",
                                     description="Tools for teachers using the mistral_mini notebooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write student copies: solutions stubbed, outputs cleared")
    student.add_argument("src_dir", help="folder with the notebooks (with solutions)")
    student.add_argument("out_dir", help="folder to write the student copies to")
    args = parser.parse_args(argv)
    try:
        written = write_student_copies(args.src_dir, args.out_dir)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
