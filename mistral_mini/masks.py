"""Attention masks built from positions: True where a query may look at a key.

Masks are functions of absolute positions, never of slot or row indices, so the same code serves a full
pass, a chunk of a prompt and a rolling cache whose slots hold positions out of order.

The sliding window: query i sees key j iff ``0 <= i - j < W``. That is W keys, the query's own included.
With W = 3 over 6 tokens (rows are queries, columns keys)::

    i\\j 0 1 2 3 4 5
    0   x . . . . .
    1   x x . . . .
    2   x x x . . .
    3   . x x x . .
    4   . . x x x .
    5   . . . x x x
"""

import torch


def causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """[Tq, Tk] bool: key j is not in query i's future. Negative key positions mark empty cache slots."""
    offset = q_pos[:, None] - k_pos[None, :]  # [Tq, Tk]: how far back each key lies
    return (offset >= 0) & (k_pos[None, :] >= 0)


def sliding_window_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """[Tq, Tk] bool: ``0 <= i - j < window``, and key j is a real position (not an empty slot)."""
    offset = q_pos[:, None] - k_pos[None, :]  # [Tq, Tk]
    return causal_mask(q_pos, k_pos) & (offset < window)


def grouped_bias(mask: torch.Tensor, n_rep: int, dtype: torch.dtype) -> torch.Tensor:
    """mask [Tq, Tk] bool -> additive bias [n_rep * Tq, Tk]: 0 where allowed, -inf elsewhere, once per query
    head of a group (the layout ``attention.grouped_attention`` folds queries into).

    The fused kernel would turn a bool mask into this bias on every call; the banded path builds it once and
    reuses it for every full block, and a decode step builds it once for all layers.
    """
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    return bias.repeat(n_rep, 1)
