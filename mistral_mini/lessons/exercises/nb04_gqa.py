"""Checks of notebook 04 (grouped-query attention): sharing key/value heads in Mistral's own layout, what a
memory budget buys, where the folded layout puts each query, and turning multi-head attention into GQA.

Shapes: B batch, T tokens, H query heads, Hkv key/value heads, D head_dim, n_rep = H // Hkv.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...attention import Attention, repeat_kv
from ...config import ModelArgs
from ...rope import rope_angles
from .checking import check_cases
from .compare import number_difference, value_difference
from .models import MODELS, small_args

__all__ = ["check_repeat_kv_tokens_first", "check_tokens_that_fit", "check_folded_index", "check_mean_pool_kv"]


# ---------------------------------------------------------------------------------------------------------
# repeat_kv in the layout [B, T, Hkv, D]
# ---------------------------------------------------------------------------------------------------------


def _tokens_first(heads_first: Callable) -> Callable:
    """Run a [B, heads, T, D] function on [B, T, heads, D] tensors."""
    return lambda x, n_rep: heads_first(x.transpose(1, 2), n_rep).transpose(1, 2)


REPEAT_MISTAKES = [
    ("wrong repeat order: you tiled the heads (kv0, kv1, kv0, kv1, ...). Query head h reads key/value head "
     "h // n_rep, so the copies of one head sit next to each other (kv0, kv0, ..., kv1, kv1, ...).",
     lambda x, n_rep: x.repeat(1, 1, n_rep, 1)),
    ("you repeated the tokens (axis 1): in [B, T, Hkv, D] the heads are axis 2.",
     lambda x, n_rep: x.repeat_interleave(n_rep, dim=1)),
    ("your result is heads-first [B, H, T, D]: this layout keeps the tokens on axis 1, [B, T, H, D].",
     lambda x, n_rep: repeat_kv(x.transpose(1, 2), n_rep)),
]


def check_repeat_kv_tokens_first(fn: Callable) -> None:
    """``fn(x, n_rep) -> Tensor``: [B, T, Hkv, D] -> [B, T, Hkv * n_rep, D], head h of it being head h // n_rep."""
    g = torch.Generator().manual_seed(5)
    cases = []
    # GQA first; MQA (Hkv = 1) and MHA (n_rep = 1), where the tiled order is right too, last.
    for B, T, Hkv, D, n_rep in [(2, 5, 2, 3, 4), (1, 3, 4, 2, 2), (1, 4, 1, 2, 3), (1, 3, 3, 2, 1)]:
        x = torch.randn(B, T, Hkv, D, generator=g)
        cases.append((f"x of shape {(B, T, Hkv, D)}, n_rep={n_rep}", (x, n_rep), _tokens_first(repeat_kv)(x, n_rep)))
    check_cases("repeat_kv_tokens_first(x, n_rep)", fn, cases, mistakes=REPEAT_MISTAKES,
                hint="write out which key/value head each of the H output heads must hold, then compare with "
                     "what your function puts there on a small x (torch.arange makes the heads easy to tell "
                     "apart).")


# ---------------------------------------------------------------------------------------------------------
# what a memory budget buys
# ---------------------------------------------------------------------------------------------------------


def _tokens(args: ModelArgs, budget: int, batch: int, nbytes: int, kv_heads: int | None = None,
            kv: int = 2, layers: bool = True, rounding: Callable | None = None) -> float:
    """Tokens per sequence whose full cache fits; the keywords are the switches the classic mistakes flip."""
    per_token = kv * (args.n_layers if layers else 1) * (kv_heads or args.n_kv_heads) * args.head_dim * nbytes
    if rounding is None:  # a fraction of a token does not fit
        return budget // (per_token * batch)
    return rounding(budget / (per_token * batch))


def check_tokens_that_fit(fn: Callable) -> None:
    """``fn(args, budget_bytes, batch_size, bytes_per_value) -> int``: the longest context whose full KV cache
    (every token kept) for ``batch_size`` sequences fits in ``budget_bytes``."""
    seven_b = MODELS["Mistral 7B"]
    as_mha = ModelArgs(**{**seven_b.to_dict(), "n_kv_heads": seven_b.n_heads})
    runs = [("Mistral 7B", seven_b, 10 * 10**9, 8, 2), ("Mistral 7B with 32 KV heads", as_mha, 10 * 10**9, 8, 2),
            ("the tiny preset", MODELS["the tiny preset"], 3 * 2**20 + 12345, 3, 4),
            ("a small MHA model", MODELS["a small MHA model"], 10**6, 1, 2)]
    cases = [(f"{name}, budget {budget:,} bytes, batch {batch}, {nbytes} bytes per value",
              (args, budget, batch, nbytes), _tokens(args, budget, batch, nbytes))
             for name, args, budget, batch, nbytes in runs]
    mistakes = [
        ("kv bytes with query heads: only the key/value heads are cached (n_kv_heads), never the queries.",
         lambda a, b, n, v: _tokens(a, b, n, v, kv_heads=a.n_heads)),
        ("keys only: every token stores a key and a value, in every layer.",
         lambda a, b, n, v: _tokens(a, b, n, v, kv=1)),
        ("one layer only: every layer keeps its own keys and values.",
         lambda a, b, n, v: _tokens(a, b, n, v, layers=False)),
        ("the batch is missing: each of the batch_size sequences has a cache of its own.",
         lambda a, b, n, v: _tokens(a, b, 1, v)),
        ("a fraction of a token does not fit: round down to whole tokens.",
         lambda a, b, n, v: _tokens(a, b, n, v, rounding=float)),
        ("a fraction of a token does not fit: round down, not to the nearest whole number.",
         lambda a, b, n, v: _tokens(a, b, n, v, rounding=round)),
    ]
    check_cases("tokens_that_fit(args, budget_bytes, batch_size, bytes_per_value)", fn, cases,
                compare=number_difference, mistakes=mistakes,
                hint="first the bytes one token costs across the whole model (section 4), then how many such "
                     "tokens, for every sequence of the batch, fit in the budget.")


# ---------------------------------------------------------------------------------------------------------
# where the folded layout puts a query
# ---------------------------------------------------------------------------------------------------------


def _folded(h: int, t: int, H: int, Hkv: int, T: int) -> tuple[int, int]:
    """Where query head h's token t lands in q.reshape(B, Hkv, n_rep * T, D), found by doing the reshape."""
    ids = torch.arange(H * T).view(1, H, T)  # [B, H, T]: entry (h, t) holds h * T + t
    grouped = ids.reshape(1, Hkv, H // Hkv * T)  # [B, Hkv, n_rep * T], the layout of section 2
    group, row = (grouped[0] == h * T + t).nonzero()[0].tolist()
    return group, row


FOLD_MISTAKES = [
    ("kv head taking turns (h % n_kv_heads): neighbouring query heads share a key/value head, so they land in "
     "the same group.", lambda h, t, H, Hkv, T: (h % Hkv, h // Hkv * T + t)),
    ("kv head taking turns (h % n_kv_heads): neighbouring query heads share a key/value head, so they land in "
     "the same group.", lambda h, t, H, Hkv, T: (h % Hkv, h % (H // Hkv) * T + t)),
    ("your rows interleave the heads token by token; in [B, H, T, D] each head's T tokens are contiguous, "
     "so the fold stacks whole heads one after the other.",
     lambda h, t, H, Hkv, T: (h // (H // Hkv), t * (H // Hkv) + h % (H // Hkv))),
    ("the row counts from the first query head of all: it restarts at 0 in every group.",
     lambda h, t, H, Hkv, T: (h // (H // Hkv), h * T + t)),
    ("you returned (row, group): the exercise asks for (group, row).",
     lambda h, t, H, Hkv, T: _folded(h, t, H, Hkv, T)[::-1]),
]


def check_folded_index(fn: Callable) -> None:
    """``fn(query_head, token, n_heads, n_kv_heads, n_tokens) -> (group, row)``: where query head h's token t
    sits in ``q.reshape(B, n_kv_heads, n_rep * n_tokens, D)``."""
    cases = [(f"query head {h}, token {t}, of {H} heads, {Hkv} KV heads, {T} tokens", (h, t, H, Hkv, T),
              _folded(h, t, H, Hkv, T))
             for H, Hkv, T in [(8, 2, 5), (32, 8, 3), (4, 1, 3), (4, 4, 2)] for h in range(H) for t in range(T)]
    check_cases("folded_index(query_head, token, n_heads, n_kv_heads, n_tokens)", fn, cases,
                compare=value_difference, mistakes=FOLD_MISTAKES,
                hint="fold a small q whose entries are their own (head, token) labels, as in section 2, and "
                     "look where each label lands.")


# ---------------------------------------------------------------------------------------------------------
# turning multi-head attention into GQA
# ---------------------------------------------------------------------------------------------------------


def _by_group(w: torch.Tensor, H: int, Hkv: int) -> torch.Tensor:
    """wk or wv [H * D, dim] -> [Hkv, n_rep, D, dim]: the rows of each query head's key/value head, by group."""
    return w.view(Hkv, H // Hkv, w.shape[0] // H, w.shape[1])  # [Hkv, n_rep, D, dim]


def _mean_pool(w: torch.Tensor, H: int, Hkv: int) -> torch.Tensor:
    return _by_group(w, H, Hkv).mean(dim=1).reshape(-1, w.shape[1])  # [Hkv * D, dim]


def _keep_first(w: torch.Tensor, H: int, Hkv: int) -> torch.Tensor:
    return _by_group(w, H, Hkv)[:, 0].reshape(-1, w.shape[1])  # [Hkv * D, dim]: the other heads dropped


POOL_MISTAKES = [
    ("kv head taking turns: you averaged heads h, h + n_kv_heads, ...; a group is n_rep neighbouring heads.",
     lambda w, H, Hkv: w.view(H // Hkv, Hkv, -1, w.shape[1]).mean(dim=0).reshape(-1, w.shape[1])),
    ("you kept the first head of each group and dropped the others; the exercise averages them.", _keep_first),
    ("you summed the heads of a group: average them (a sum makes the keys n_rep times longer, and every "
     "score n_rep times larger).", lambda w, H, Hkv: _mean_pool(w, H, Hkv) * (H // Hkv)),
    ("your rows are grouped feature by feature; in wk each head owns a block of D consecutive rows.",
     lambda w, H, Hkv: w.view(-1, Hkv, H // Hkv, w.shape[1]).mean(dim=2).reshape(-1, w.shape[1])),
    ("your result is [Hkv, D, dim]: the new wk is a weight matrix like the old one, [Hkv * D, dim].",
     lambda w, H, Hkv: _mean_pool(w, H, Hkv).view(Hkv, -1, w.shape[1])),
]


def check_mean_pool_kv(fn: Callable) -> None:
    """``fn(w, n_heads, n_kv_heads) -> Tensor [n_kv_heads * D, dim]``: key/value head g of the result is the
    mean of the n_rep heads of group g of ``w`` [n_heads * D, dim]. On PASS, prints what the conversion costs."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for H, Hkv, D, dim in [(8, 2, 4, 6), (6, 3, 2, 5), (4, 1, 3, 4), (4, 4, 2, 3)]:  # MQA, then MHA, last
        w = torch.randn(H * D, dim, generator=g)
        cases.append((f"w of shape {(H * D, dim)}, {H} heads -> {Hkv} KV heads", (w, H, Hkv), _mean_pool(w, H, Hkv)))
    check_cases("mean_pool_kv(w, n_heads, n_kv_heads)", fn, cases, mistakes=POOL_MISTAKES,
                hint="view w so that the group, the head within the group and the head's rows are separate "
                     "axes (a shape comment helps), then average over the right one.")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small only lose time to synchronising threads (tens of times)
    try:
        print(_conversion_cost(fn))
    except Exception as err:  # the answer passed every case; a measurement that fails must not fail the check
        print(f"(the cost of the conversion could not be measured: {type(err).__name__}: {err})")
    finally:
        torch.set_num_threads(threads)


def _conversion_cost(fn: Callable, spreads=(0.0, 0.25, 0.5, 1.0, None), trials: int = 4) -> str:
    """Relative error of a GQA layer converted from an MHA one, averaging (``fn``) or keeping the first head.

    The MHA layer's key/value heads are a group's common head plus ``spread`` times a head's own random part
    (None: fully independent heads), so ``spread`` says how redundant the heads of a group are.
    """
    H, Hkv, D, dim, T = 8, 2, 16, 64, 32
    mha, gqa = (Attention(small_args(dim=dim, head_dim=D, n_heads=H, n_kv_heads=n, sliding_window=T))
                for n in (H, Hkv))
    cos, sin = rope_angles(torch.arange(T), D, 10000.0)  # [T, D/2] each
    g = torch.Generator().manual_seed(7)
    rows = {"your mean pooling": [], "keeping the first head": []}
    for spread in spreads:
        errors = {name: 0.0 for name in rows}
        for _ in range(trials):
            with torch.no_grad():
                for linear in (mha.wq, mha.wo):
                    linear.weight.copy_(torch.randn(linear.weight.shape, generator=g) / dim ** 0.5)
                for linear in (mha.wk, mha.wv):
                    shared = torch.randn(Hkv, 1, D, dim, generator=g)  # one per group
                    own = torch.randn(Hkv, H // Hkv, D, dim, generator=g)  # one per head
                    w = own if spread is None else shared + spread * own  # [Hkv, n_rep, D, dim]
                    linear.weight.copy_(w.reshape(H * D, dim) / dim ** 0.5)
                x = torch.randn(2, T, dim, generator=g)
                reference = mha(x, cos, sin)  # [B, T, dim]
                gqa.wq.weight.copy_(mha.wq.weight)
                gqa.wo.weight.copy_(mha.wo.weight)
                for name, pool in (("your mean pooling", fn), ("keeping the first head", _keep_first)):
                    gqa.wk.weight.copy_(pool(mha.wk.weight.clone(), H, Hkv))
                    gqa.wv.weight.copy_(pool(mha.wv.weight.clone(), H, Hkv))
                    errors[name] += float((gqa(x, cos, sin) - reference).norm() / reference.norm()) / trials
        for name in rows:
            rows[name].append(errors[name])
    header = "".join(f"{'independent' if s is None else s:>12}" for s in spreads)
    lines = [f"What the conversion costs: {H} query heads, {Hkv} KV heads; relative error of the layer's output",
             f"{'own part of each head:':<26}{header}"]
    lines += [f"{name:<26}" + "".join(f"{e:12.3f}" for e in errors) for name, errors in rows.items()]
    return "\n".join(lines)
