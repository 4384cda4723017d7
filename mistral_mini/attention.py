"""Grouped-query attention with a sliding window, and the banded computation that makes the window cheap.

Shapes: B batch, T tokens, H query heads, Hkv key/value heads, D head_dim, W window.

Two ways to compute the same numbers:

* ``attention_reference``: the textbook formula, softmax(q k^T / sqrt(D) + mask) v, with key/value heads
  copied out to every query head (``repeat_kv``). Easy to read, O(Tq * Tk) memory. Notebooks and tests use it.
* ``attend``: what the model runs. For T <= W the window changes nothing, so it is plain causal attention
  (given a fused kernel). For T > W the queries go in blocks, and each block only sees the keys inside its
  window::

        keys ->   |<-- W-1 before -->|<-- block -->|
        block of queries [s, e) uses keys [s - W + 1, e)

  so a pass costs O(T * W) time and memory, never a T x T score matrix.
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

# Queries per block in the banded path. Smaller blocks waste fewer masked-out scores (a block of Bq
# queries computes Bq * (Bq + W - 1) scores where Bq * W are needed) but make more calls.
QUERY_BLOCK = 256


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


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_start: int, k_start: int, window: int,
           block_size: int = QUERY_BLOCK) -> torch.Tensor:
    """Sliding-window attention for queries at positions q_start.. and keys at consecutive positions k_start..

    q [B, H, Tq, D], k and v [B, Hkv, Tk, D] -> [B, H, Tq, D].
    """
    Tq, Tk = q.shape[2], k.shape[2]
    if Tq == Tk and q_start == k_start and Tq <= window and has_fused_kernel(q):
        # Every query's window reaches back to token 0: the mask is just causal. (Without a fused kernel,
        # the banded blocks below bound the scores held at once, whatever the chunk size.)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    block, n_rep = min(block_size, window), q.shape[1] // k.shape[1]
    # Every full block sees the same pattern: its queries against the W - 1 keys before it and itself.
    # Build it once from relative positions; blocks clipped at the first key or at the end slice it.
    band = sliding_window_mask(torch.arange(block, device=q.device) + window - 1,
                               torch.arange(block + window - 1, device=q.device), window)  # [block, block+W-1]
    band_bias = grouped_bias(band, n_rep, q.dtype)  # [n_rep * block, block + W - 1]
    outputs = []
    for s in range(q_start, q_start + Tq, block):  # s, e: positions of this block's queries
        e = min(s + block, q_start + Tq)
        lo = max(k_start, s - window + 1)  # the oldest key any query of the block can see
        first = lo - (s - window + 1)  # band columns before lo lie before the first key
        if e - s == block:
            bias = band_bias[:, first:]  # [n_rep * block, e - lo]
        else:  # the last, shorter block
            bias = grouped_bias(band[:e - s, first:e - s + window - 1], n_rep, q.dtype)
        keys = slice(lo - k_start, e - k_start)  # the same positions as row indices into k and v
        outputs.append(grouped_attention(q[:, :, s - q_start:e - q_start], k[:, :, keys], v[:, :, keys], bias))
    return torch.cat(outputs, dim=2)  # [B, H, Tq, D]


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
