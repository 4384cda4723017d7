"""Checks of notebook 07 (pre-fill in chunks): the chunks, what a chunk's queries see, chunked logits.

The expected chunk mask comes from the rule in ``mistral_mini.cache`` (``chunk_key_positions``) and the mask
in ``mistral_mini.masks`` (``sliding_window_mask``), the same functions the model uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...cache import chunk_key_positions
from ...masks import sliding_window_mask
from ...transformer import Transformer
from .checking import check_cases
from .compare import matches, value_difference
from .models import small_args

__all__ = ["check_chunk_bounds", "check_chunk_mask", "check_chunked_logits"]


def check_chunk_bounds(fn: Callable[[int, int], list[tuple[int, int]]]) -> None:
    """``fn(prompt_len, chunk_size)`` -> [(start, end), ...] covering 0..prompt_len, end exclusive."""
    cases = [(f"prompt_len={t}, chunk_size={c}", (t, c), [(s, min(s + c, t)) for s in range(0, t, c)])
             for t, c in ((10, 5), (23, 5), (7, 1), (4, 10), (4096, 4096), (16_500, 4096))]
    check_cases("chunk_bounds(prompt_len, chunk_size)", fn, cases,
                "starts go 0, C, 2C, ... while below prompt_len; the last chunk ends at prompt_len, "
                "so it may be shorter than C", compare=value_difference)


def check_chunk_mask(fn: Callable[[int, int, int], torch.Tensor]) -> None:
    """``fn(start, end, window)`` -> bool [end - start, keys]: the chunk's queries against the cached keys
    it can still see (positions max(0, start - window + 1) .. start - 1) followed by the chunk's own keys.

    Position start - window is in the cache too, but outside every window of the chunk, so it is left out.
    """
    cases = []
    for start, end, window in ((0, 5, 8), (10, 15, 8), (20, 23, 8), (8, 30, 8), (6, 9, 1), (3, 4, 4)):
        q_pos, k_pos = chunk_key_positions(start, end, window)
        cases.append((f"start={start}, end={end}, window={window}", (start, end, window),
                      sliding_window_mask(q_pos, k_pos, window)))

    def diagnose(args, got):
        start, end, window = args
        if matches(got, sliding_window_mask(torch.arange(start, end), torch.arange(max(0, start - window), end),
                                            window)):
            return ("one key too many: position start - W is still in the cache, but the chunk's first query "
                    "(at start) sees back only to start - W + 1; start the keys at max(0, start - W + 1)")
        return None

    check_cases("chunk_mask(start, end, window)", fn, cases, diagnose=diagnose,
                hint="build q_pos = start..end-1 and k_pos = max(0, start - W + 1)..end-1, then query i sees "
                     "key j iff 0 <= i - j < W (mistral_mini.masks.sliding_window_mask does exactly that)")


def check_chunked_logits(fn: Callable) -> None:
    """``fn(model, tokens, chunk_size)`` -> logits [T, V] of every position, computed chunk by chunk
    through a RollingBufferCache; they must equal one full pass."""
    args = small_args(sliding_window=6)
    torch.manual_seed(0)
    model = Transformer(args).eval()
    tokens = torch.randint(0, args.vocab_size, (23,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(tokens[None])[0]  # [T, V]
    cases = [(f"23 tokens, window 6, chunk_size={c}", (model, tokens, c), expected) for c in (23, 5, 1, 6, 7)]
    with torch.no_grad():
        check_cases("chunked_logits(model, tokens, chunk_size)", fn, cases,
                    "one RollingBufferCache for the whole prompt; feed tokens[None, s:e] with cache=cache "
                    "for each chunk, keep logits[0], and torch.cat them along the token axis")
