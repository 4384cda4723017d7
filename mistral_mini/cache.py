"""The rolling-buffer KV cache: W slots per layer, so memory stays flat however long the sequence.

Shapes: L layers, B batch, Hkv key/value heads, W window (= slots), D head_dim, T tokens, P cached keys.

With a window of W, no query ever looks more than W - 1 positions back, so only the last W keys and values
need keeping. Position p goes to slot p % W, overwriting position p - W, which has just left every future
window. With W = 4::

    positions 0 1 2 3 | 4 5 6 ...
    slots     0 1 2 3 | 0 1 2 ...      after position 5: slots hold [4, 5, 2, 3]

Keys are stored after RoPE: their rotation encodes their absolute position, so attention does not care
in which order the slots sit. Which position each slot holds follows from how many tokens were seen
(``slot_positions_after``), and masks are built from those positions, never from slot indices.

The rules live here as small pure functions, and everything else (the model, the figures, the exercise
checks) calls them: ``slot_of``, ``slot_positions_after``, ``chunk_key_positions``.

A forward call with a cache is one of two kinds, worked out once per call and shared by every layer:

* ``Prefill``: a chunk of tokens attends to the cached keys it can see plus itself, then is written.
* ``DecodeStep``: one token is written first, then attends over the W slots in place. It is built from
  ``cache.next_position``, a tensor on the cache's device, never from a Python int: a decode step then has
  no branch on the position and no wait for the device, so it can be compiled once and replayed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .config import ModelArgs
from .masks import grouped_bias


def slot_of(position: int, window: int) -> int:
    """The slot that position p is written to: p % W."""
    return position % window


def slot_positions_after(n_seen: int | torch.Tensor, window: int,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """[W] long: the position each slot holds once positions 0..n_seen-1 are written; -1 for an empty slot.

    Slot s holds the latest p < n_seen with p % W == s. n_seen may be a one-element tensor (on the device).
    """
    last = n_seen - 1
    held = last - (last - torch.arange(window, device=device)) % window  # [W]; torch's % is never negative
    return held.clamp(min=-1)


def chunk_key_positions(start: int, end: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and key positions of the chunk [start, end) fed after ``start`` tokens.

    The keys are the cached positions the chunk's first query can still see, max(0, start - W + 1) ..
    start - 1, followed by the chunk's own keys, start .. end - 1. Position start - W is in the cache too,
    but it already lies outside every window of the chunk (the first query, at start, sees back to
    start - W + 1), so it is left out.
    """
    return torch.arange(start, end), torch.arange(max(0, start - window + 1), end)


class Prefill(NamedTuple):
    """A chunk of T tokens starting at position ``start``."""

    start: int
    positions: torch.Tensor  # [T] start .. start + T - 1
    write_slots: torch.Tensor  # [min(T, W)] the slots of the chunk's last W tokens, the only ones that land
    past_slots: torch.Tensor  # [P] the slots of the cached keys the chunk sees, in position order
    past_start: int  # the position held by past_slots[0]


class DecodeStep(NamedTuple):
    """One token at position ``positions[0]``, known only on the device."""

    positions: torch.Tensor  # [1]
    write_slots: torch.Tensor  # [1]
    bias: torch.Tensor  # [n_rep, W] additive: -inf on the slots still empty (none once the buffer is full)


class CacheView:
    """One layer's part of the cache during one forward call: its keys and values, and the call's chunk."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, chunk: Prefill | DecodeStep):
        self.keys, self.values = keys, values  # [B, Hkv, W, D], views into the cache's tensors
        self.chunk = chunk

    def store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the chunk's keys and values [B, Hkv, T, D] into their slots.

        A chunk longer than W keeps only its last W tokens: the earlier ones would be overwritten by later
        ones of the same chunk anyway.
        """
        n = self.chunk.write_slots.numel()
        self.keys.index_copy_(2, self.chunk.write_slots, k[:, :, -n:])
        self.values.index_copy_(2, self.chunk.write_slots, v[:, :, -n:])

    def past(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A prefill chunk's cached keys and values, in position order: [B, Hkv, P, D] each.

        They hold positions chunk.past_start .. chunk.start - 1.
        """
        slots = self.chunk.past_slots
        return self.keys.index_select(2, slots), self.values.index_select(2, slots)


class RollingBufferCache:
    def __init__(self, args: ModelArgs, batch_size: int = 1, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={str(device)!r} asks for a CUDA GPU, but torch finds none; build the cache "
                               "on the model's device, e.g. RollingBufferCache(args, device='cpu')")
        self.args = args
        self.sliding_window = args.sliding_window
        self.batch_size = batch_size
        shape = (args.n_layers, batch_size, args.n_kv_heads, args.sliding_window, args.head_dim)  # [L,B,Hkv,W,D]
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.position = 0  # tokens seen so far: the position of the next token
        self.next_position = torch.zeros(1, dtype=torch.long, device=device)  # [1] the same count, on the device

    @property
    def nbytes(self) -> int:
        """Bytes held by keys and values: 2 * L * B * W * Hkv * D * itemsize, however many tokens were seen."""
        return 2 * self.keys.numel() * self.keys.element_size()

    @property
    def dtype(self) -> torch.dtype:
        return self.keys.dtype

    @property
    def device(self) -> torch.device:
        return self.keys.device

    @property
    def slot_positions(self) -> torch.Tensor:
        """[W] the absolute position each slot holds, -1 while the slot is still empty."""
        return slot_positions_after(self.position, self.sliding_window, self.device)

    def reset(self) -> None:
        """Forget every token; the memory stays allocated for the next sequence."""
        self.advance(-self.position)

    def advance(self, n_tokens: int) -> None:
        """Record that every layer has stored the next ``n_tokens`` tokens."""
        self.position += n_tokens
        # In place, so that a compiled decode step keeps reading the same tensor. Inference mode allows it
        # whether the tensor was made inside inference mode or not.
        with torch.inference_mode():
            self.next_position.add_(n_tokens)

    def chunk(self, n_tokens: int) -> Prefill | DecodeStep:
        """What the layers need to know about the next ``n_tokens`` tokens: a decode step for one token."""
        return self.decode_step() if n_tokens == 1 else self.prefill(n_tokens)

    def prefill(self, n_tokens: int) -> Prefill:
        W, start, device = self.sliding_window, self.position, self.device
        q_pos, k_pos = chunk_key_positions(start, start + n_tokens, W)
        past = k_pos[:k_pos.numel() - n_tokens]  # [P] the cached positions the chunk sees
        return Prefill(start=start, positions=q_pos.to(device), write_slots=q_pos[-W:].to(device) % W,
                       past_slots=past.to(device) % W, past_start=int(k_pos[0]))

    def decode_step(self) -> DecodeStep:
        """Tensors only: every number comes from ``next_position``, on the device."""
        W, position = self.sliding_window, self.next_position
        # Written first, so the slots then hold positions up to this one; empty slots (-1) are masked.
        filled = slot_positions_after(position + 1, W, self.device) >= 0  # [W]
        return DecodeStep(positions=position, write_slots=position % W,
                          bias=grouped_bias(filled[None], self.args.n_rep, self.dtype))  # [n_rep, W]

    def views(self, chunk: Prefill | DecodeStep) -> list[CacheView]:
        """One view per layer onto the cache, for ``chunk``."""
        return [CacheView(self.keys[layer], self.values[layer], chunk) for layer in range(self.args.n_layers)]
