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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ModelArgs


def slot_of(position: int, window: int) -> int:
    """The slot that position p is written to: p % W."""
    return position % window


def slot_positions_after(n_seen: int, window: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[W] long: the position each slot holds once positions 0..n_seen-1 are written; -1 for an empty slot.

    Slot s holds the latest p < n_seen with p % W == s.
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


@dataclass(frozen=True)
class Chunk:
    """What every layer needs to know about the chunk of one forward call; computed once per call."""

    start: int  # position of the chunk's first token = tokens seen before it
    positions: torch.Tensor  # [T] start .. start + T - 1
    write_slots: torch.Tensor  # [min(T, W)] the slots of the chunk's last W tokens, the only ones that land
    past_slots: torch.Tensor  # [P] the slots of the cached keys the chunk sees, in position order
    past_start: int  # the position held by past_slots[0]
    decode_mask: torch.Tensor | None  # [1, W] for a single token while slots are still empty; else None


class CacheView:
    """One layer's part of the cache during one forward call: its keys and values, and the chunk."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, chunk: Chunk):
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
        """The cached keys and values the chunk can see, in position order: [B, Hkv, P, D] each.

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
        self.position = 0

    def views(self, n_tokens: int) -> list[CacheView]:
        """One view per layer for a chunk of ``n_tokens`` tokens starting at ``self.position``."""
        W, start, device = self.sliding_window, self.position, self.device
        q_pos, k_pos = chunk_key_positions(start, start + n_tokens, W)
        past = k_pos[:k_pos.numel() - n_tokens]  # [P] the cached positions the chunk sees
        decode_mask = None
        if n_tokens == 1 and start < W - 1:
            # A single token is written first and then attends over all W slots in place; while some are
            # still empty the mask hides them. Once full, the W slots are exactly its window.
            decode_mask = (slot_positions_after(start + 1, W, device) >= 0)[None]  # [1, W]
        chunk = Chunk(start=start, positions=q_pos.to(device), write_slots=q_pos[-W:].to(device) % W,
                      past_slots=past.to(device) % W, past_start=int(k_pos[0]), decode_mask=decode_mask)
        return [CacheView(self.keys[layer], self.values[layer], chunk) for layer in range(self.args.n_layers)]

    def advance(self, n_tokens: int) -> None:
        """Record that every layer has stored the next ``n_tokens`` tokens."""
        self.position += n_tokens
