"""The rolling-buffer KV cache: W slots per layer, so memory stays flat however long the sequence.

Shapes: L layers, B batch, Hkv key/value heads, W window (= slots), D head_dim, T tokens.

With a window of W, no query ever looks more than W - 1 positions back, so only the last W keys and values
need keeping. Position p goes to slot p % W, overwriting position p - W, which has just left every future
window. With W = 4::

    positions 0 1 2 3 | 4 5 6 ...
    slots     0 1 2 3 | 0 1 2 ...      after position 5: slots hold [4, 5, 2, 3]

Keys are stored after RoPE: their rotation encodes their absolute position, so attention does not care
in which order the slots sit. The cache records each slot's position, and masks are built from those.
"""

from __future__ import annotations

import torch

from .config import ModelArgs


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
        # slot_positions[s]: the absolute position held in slot s, -1 while the slot is still empty.
        self.slot_positions = torch.full((args.sliding_window,), -1, dtype=torch.long, device=device)
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

    def reset(self) -> None:
        """Forget every token; the memory stays allocated for the next sequence."""
        # A new tensor rather than fill_: slot_positions may have been made under torch.inference_mode(),
        # and such a tensor cannot be changed in place outside it.
        self.slot_positions = torch.full_like(self.slot_positions, -1)
        self.position = 0

    def slot_of(self, position: int) -> int:
        return position % self.sliding_window

    def positions_after(self, positions: torch.Tensor) -> torch.Tensor:
        """[W] slot positions once the chunk at ``positions`` is written (only its last W tokens land)."""
        last = positions[-self.sliding_window:]
        return self.slot_positions.clone().index_copy_(0, last % self.sliding_window, last)

    def store(self, layer_id: int, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> None:
        """Write a chunk's keys and values [B, Hkv, T, D] at ``positions`` into their slots.

        A chunk longer than W keeps only its last W tokens: the earlier ones would be overwritten by later
        ones of the same chunk anyway.
        """
        W = self.sliding_window
        slots = positions[-W:] % W
        self.keys[layer_id].index_copy_(2, slots, k[:, :, -W:])
        self.values[layer_id].index_copy_(2, slots, v[:, :, -W:])

    def ordered(self, layer_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The cached keys and values of one layer in position order, [B, Hkv, P, D], and the first position.

        P = min(position, W): the tokens seen so far that are still inside the window of the next token.
        """
        first = max(0, self.position - self.sliding_window)
        slots = torch.arange(first, self.position, device=self.keys.device) % self.sliding_window  # [P]
        return self.keys[layer_id].index_select(2, slots), self.values[layer_id].index_select(2, slots), first

    def advance(self, positions: torch.Tensor) -> None:
        """Record that every layer has stored the chunk at ``positions``."""
        self.slot_positions = self.positions_after(positions)
        self.position += positions.numel()
