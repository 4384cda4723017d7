"""Grouped-query attention with a sliding window, and the banded computation that makes the window cheap.

Shapes: B batch, T tokens, H query heads, Hkv key/value heads, D head_dim, W window, n block.

Two ways to compute the same numbers:

* ``attention_reference``: the textbook formula, softmax(q k^T / sqrt(D) + mask) v, with key/value heads
  copied out to every query head (``repeat_kv``). Easy to read, O(Tq * Tk) memory. Notebooks and tests use it.
* ``attend``: what the model runs. The queries go in blocks of n, and each block only meets the keys inside
  its window::

        keys ->   |<-- W-1 before -->|<-- block -->|
        block of queries [s, e) uses keys [s - W + 1, e)

  so a pass costs O(T * W) time and memory, never a T x T score matrix. Three kinds of queries:

  - the first W, whose windows reach back to the first key: plain causal attention, one fused call;
  - full blocks: each sees the W - 1 keys before it and itself, the same pattern at a different offset.
    Block b's keys start n positions after block b-1's, so a strided view of k (no copy) hands every block
    its n + W - 1 keys, and one kernel call runs all the blocks with one shared [n, n + W - 1] mask;
  - the rest (a last, shorter block; a chunk whose cached keys do not reach back a whole window; every
    block when there is no fused kernel): one call per block, each with its own mask.

  A block of n queries computes n * (n + W - 1) scores where n * W are needed: small blocks waste little,
  but the kernel runs small blocks less efficiently. ``block_for`` picks n from the shapes (W, n_rep, D).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cache import CacheView, DecodeStep
from .config import ModelArgs
from .masks import grouped_bias, sliding_window_mask
from .rope import apply_rope


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, Hkv, T, D] -> [B, Hkv * n_rep, T, D]: query head h reads key/value head h // n_rep."""
    return x.repeat_interleave(n_rep, dim=1)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The explicit formula. q [B, H, Tq, D], k and v [B, Hkv, Tk, D], mask [Tq, Tk] bool -> [B, H, Tq, D]."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # [B, H, Tk, D]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, H, Tq, Tk]
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).type_as(q) @ v  # [B, H, Tq, D]


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
    """The fused kernel over grouped queries, without copying keys and values per query head.

    The n_rep query heads that share a key/value head are folded into the query axis, so every key/value
    head meets all of its queries in one batch entry. bias comes from ``grouped_bias``; None masks nothing.
    """
    B, H, Tq, D = q.shape
    grouped = q.reshape(B, k.shape[1], H // k.shape[1] * Tq, D)  # [B, Hkv, n_rep * Tq, D]
    out = F.scaled_dot_product_attention(grouped, k, v, attn_mask=bias)  # [B, Hkv, n_rep * Tq, D]
    return out.reshape(B, H, Tq, D)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``attention_reference`` through the fused kernel. q [B, H, Tq, D], k and v [B, Hkv, Tk, D], mask [Tq, Tk]."""
    return grouped_attention(q, k, v, grouped_bias(mask, q.shape[1] // k.shape[1], q.dtype))


def has_fused_kernel(q: torch.Tensor) -> bool:
    """Does ``scaled_dot_product_attention`` have a fused kernel for q's device and dtype?

    A fused kernel (flash or memory-efficient) never holds the T x T scores. CUDA has none for bf16 before
    Ampere (compute capability 8.0: a T4 or V100 falls back to the math kernel, in float32); on ``meta``,
    where memory is planned, assume none, so that the plan covers the worst case.
    """
    if q.device.type == "cuda":
        return q.dtype != torch.bfloat16 or torch.cuda.get_device_capability(q.device) >= (8, 0)
    return q.device.type != "meta"


def block_for(window: int, n_rep: int, head_dim: int) -> int:
    """Queries per block of the banded path: enough rows for the kernel, within 16 .. a cap on the waste.

    Two costs pull against each other. Waste: a block of n queries meets n + W - 1 keys where each query
    needs W, so (n - 1) / W of its scores are masked away. Rows: the n_rep query heads that share a key/value
    head are rows of one kernel call (``grouped_attention``), so a block is n_rep * n rows, and PyTorch's CPU
    flash kernel works a call of fewer than 192 rows in tiles of 32, which at head_dim 128 cost about 30% more
    per score than its 64-row tiles. So, timed at T = 16,384, W = 1,024 (``benchmarks/swa_speed.py``):

    * head_dim under 64: about 128 rows, at most W / 32 queries (3% waste). Blocks of 16 to 48 timed within
      the noise of each other for n_rep 1, 4 and 8; larger ones were slower.
    * head_dim 64 and up: at least 192 rows, at most W / 5 queries (20% waste). In paired turns at head_dim
      128 (``swa_speed.py --blocks``), blocks of 192 ran 1.27x faster than blocks of 32 for n_rep 1, and
      48 vs 32 (the 7B's n_rep 4) and 24 vs 16 (n_rep 8) about 1.06x faster.
    """
    rows, most = (192, window // 5) if head_dim >= 64 else (128, window // 32)
    return min(window, max(16, min(most, -(-rows // n_rep))))  # -(-a // b): a / b rounded up


def _windows(x: torch.Tensor, first: int, count: int, step: int, width: int) -> torch.Tensor:
    """x [H, T, D] -> a view [count, H, width, D]: rows first + i * step .. + width - 1 for each i. No copy."""
    sH, sT, sD = x.stride()
    return x.as_strided((count, x.shape[0], width, x.shape[2]), (step * sT, sH, sT, sD),
                        x.storage_offset() + first * sT)


def _full_blocks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_row: int, k_row: int, count: int,
                 n: int, window: int, bias: torch.Tensor) -> torch.Tensor:
    """``count`` blocks of n queries, each against the n + W - 1 keys of its window, in one kernel call.

    q [H, Tq, D], k and v [Hkv, Tk, D]: one sequence. Block i's queries are rows q_row + i n .. + n - 1 of q,
    its keys rows k_row + i n .. + n + W - 2 of k and v; ``bias`` [n_rep n, n + W - 1] is every block's
    mask. -> [count, H, n, D].
    """
    return grouped_attention(_windows(q, q_row, count, n, n),  # [count, H, n, D]
                             _windows(k, k_row, count, n, n + window - 1),  # [count, Hkv, n + W - 1, D]
                             _windows(v, k_row, count, n, n + window - 1), bias)


def _each_block(out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_start: int,
                k_start: int, window: int, n: int) -> None:
    """One call per block of n queries, each with the mask of its own positions, written into out.

    Shapes as ``attend``; out [B, H, Tq, D] like q.
    """
    n_rep, q_end = q.shape[1] // k.shape[1], q_start + q.shape[2]
    for s in range(q_start, q_end, n):  # s, e: positions of this block's queries
        e = min(s + n, q_end)
        lo = max(k_start, s - window + 1)  # the oldest key any query of the block can see
        mask = sliding_window_mask(torch.arange(s, e, device=q.device), torch.arange(lo, e, device=q.device),
                                   window)  # [e - s, e - lo]
        rows, keys = slice(s - q_start, e - q_start), slice(lo - k_start, e - k_start)  # positions -> rows
        out[:, :, rows] = grouped_attention(q[:, :, rows], k[:, :, keys], v[:, :, keys],
                                            grouped_bias(mask, n_rep, q.dtype))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_start: int, k_start: int, window: int,
           block_size: int | None = None) -> torch.Tensor:
    """Sliding-window attention for queries at positions q_start.. and keys at consecutive positions k_start..

    The keys end where the queries end (a chunk's keys are its cached keys, then its own). q [B, H, Tq, D],
    k and v [B, Hkv, Tk, D] -> [B, H, Tq, D]. ``block_size``: queries per block; if None, ``block_for``'s choice.
    """
    B, H, Tq, D = q.shape
    n = min(block_size or block_for(window, H // k.shape[1], D), window)
    # Written in place, laid out [B, Tq, H, D]: the layout the output projection reads without a copy.
    out = q.new_empty(B, Tq, H, D).transpose(1, 2)  # [B, H, Tq, D]
    if not has_fused_kernel(q):
        # The math kernel holds every score of a call: one call per block bounds them, whatever Tq.
        _each_block(out, q, k, v, q_start, k_start, window, n)
        return out
    if q_start == k_start:  # the first W queries see every key before them: the mask is just causal
        head = min(Tq, window)
        out[:, :, :head] = F.scaled_dot_product_attention(q[:, :, :head], k[:, :, :head], v[:, :, :head],
                                                          is_causal=True, enable_gqa=True)
    else:  # the queries whose windows reach back past the first key, block by block
        head = min(Tq, max(0, k_start + window - 1 - q_start))
        _each_block(out[:, :, :head], q[:, :, :head], k, v, q_start, k_start, window, n)
    count = (Tq - head) // n  # full blocks, all in one call
    if count:
        k_row = q_start + head - k_start - (window - 1)  # the oldest key of the first full block
        # Relative positions: a block's queries are the last n of its keys. The same mask for every block.
        band = sliding_window_mask(torch.arange(n, device=q.device) + window - 1,
                                   torch.arange(n + window - 1, device=q.device), window)  # [n, n + W - 1]
        bias = grouped_bias(band, H // k.shape[1], q.dtype)
        for b in range(B):  # the strided views are cut from one sequence at a time
            blocks = _full_blocks(q[b], k[b], v[b], head, k_row, count, n, window, bias)  # [count, H, n, D]
            out[b, :, head:head + count * n].view(H, count, n, D).copy_(blocks.transpose(0, 1))
    done = head + count * n
    _each_block(out[:, :, done:], q[:, :, done:], k, v, q_start + done, k_start, window, n)  # a shorter block
    return out


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.sliding_window = args.sliding_window
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache_view: CacheView | None = None) -> torch.Tensor:
        """x [B, T, dim] -> [B, T, dim]; cos, sin [T, D/2] from rope_angles at the tokens' positions.

        Without a cache the tokens sit at positions 0..T-1; with one, at ``cache_view.chunk.positions``.
        """
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)  # [B, T, H, D]
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)  # [B, T, Hkv, D]
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)  # [B, T, Hkv, D]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Heads become a batch axis for the attention kernel.
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H or Hkv, T, D]
        if cache_view is None:
            out = attend(q, k, v, 0, 0, self.sliding_window)
        elif isinstance(cache_view.chunk, DecodeStep):
            out = self._decode(q, k, v, cache_view)
        else:
            out = self._prefill(q, k, v, cache_view)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # [B, T, H * D]
        return self.wo(out)

    def _decode(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, view: CacheView) -> torch.Tensor:
        """One new token: write it into its slot, then attend over the slots in place.

        Writing first is safe for a single token: position p lands in slot p % W, evicting position p - W,
        which is exactly one step outside p's window.
        """
        view.store(k, v)
        # Once the buffer is full its W slots are exactly the window and the bias masks nothing; before, it
        # hides the empty slots. One code path either way: no branch on the position.
        return grouped_attention(q, view.keys, view.values, view.chunk.bias)

    def _prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, view: CacheView) -> torch.Tensor:
        """A chunk: attend to the cached keys it can see (in position order) plus the chunk's own keys.

        The chunk is written after attending: its writes would evict keys that its earlier queries need.
        """
        past_k, past_v = view.past()  # [B, Hkv, P, D], positions chunk.past_start .. chunk.start - 1
        keys, values = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)  # [B, Hkv, P + T, D]
        out = attend(q, keys, values, view.chunk.start, view.chunk.past_start, self.sliding_window)
        view.store(k, v)
        return out
