"""memory.py: the activation count is an upper bound, and a tight one, of a trace of the real forward pass."""

import dataclasses

import pytest
import torch

from mistral_mini import ModelArgs, RollingBufferCache
from mistral_mini.memory import activation_bytes, meta_model, traced_peak_bytes
from mistral_mini.quantize import quantize_model
from tests.helpers import small_args

SEVEN_B = ModelArgs.from_name("mistral-7b")
# Activations are freed between layers, so two of the 7B's layers have the peak of all 32, in a tenth of the time.
SEVEN_B_SHAPES = dataclasses.replace(SEVEN_B, n_layers=2)
NOTEBOOK_10 = small_args(dim=128, head_dim=32, hidden_dim=384, vocab_size=32000, sliding_window=512)
# traced <= activation_bytes <= TOLERANCE * traced, for every case below (the largest ratio seen is 1.13:
# float32, where the count's float32 copies of bf16 tensors are no copies at all).
TOLERANCE = 1.15


def traced_prefill(args: ModelArgs, chunk_size: int, dtype: torch.dtype, quantize: str | None = None,
                   cached: int | None = None, fused: bool = False) -> int:
    """Peak activation bytes of one prefill chunk on meta, after ``cached`` tokens (default W: a full cache).

    Under no_grad the attention kernel shows its insides (the math kernel, with its scores), under
    inference_mode it is one operation, as a fused kernel would be.
    """
    model = meta_model(args).to(dtype)
    if quantize == "int8":
        quantize_model(model)
    cache = RollingBufferCache(args, device="meta", dtype=dtype)
    cache.advance(args.sliding_window if cached is None else cached)
    chunk = torch.zeros(1, chunk_size, dtype=torch.long, device="meta")
    with torch.inference_mode() if fused else torch.no_grad():
        return traced_peak_bytes(lambda: model(chunk, cache=cache, last_only=True))


def test_traced_peak_counts_new_storages_until_freed():
    weight = torch.ones(1000, device="meta")  # made before the trace: not counted

    def run():
        a = weight * 2  # 4,000 bytes
        b = a.view(10, 100)  # a view: no new bytes
        del a  # still held by b
        c = b + 1  # 8,000
        del b  # a's storage is freed: 4,000
        d = c.t().contiguous()  # 8,000 again
        return d

    assert traced_peak_bytes(run) == 8000
    assert traced_peak_bytes(lambda: weight.view(10, 100).t()) == 0


@pytest.mark.parametrize("args, chunk_sizes", [(SEVEN_B_SHAPES, (512, 1024, 4096)),
                                               (NOTEBOOK_10, (512, 1024, 4096)),
                                               (ModelArgs.from_name("tiny"), (512,))])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_activation_bytes_bounds_the_traced_prefill(args, chunk_sizes, dtype, quantize):
    for chunk_size in chunk_sizes:
        counted = activation_bytes(args, chunk_size, dtype, quantize)
        traced = traced_prefill(args, chunk_size, dtype, quantize)
        assert traced <= counted <= TOLERANCE * traced, (chunk_size, counted, traced)


def test_the_full_cache_is_the_worst_case():
    # The first chunk sees no cached keys, so its blocks are narrower; a fused kernel holds no scores at all.
    counted = activation_bytes(SEVEN_B, 4096, torch.bfloat16)
    full = traced_prefill(SEVEN_B_SHAPES, 4096, torch.bfloat16)
    assert traced_prefill(SEVEN_B_SHAPES, 4096, torch.bfloat16, cached=0) < full
    assert traced_prefill(SEVEN_B_SHAPES, 512, torch.bfloat16, cached=100) < activation_bytes(SEVEN_B, 512,
                                                                                               torch.bfloat16)
    # With blocks this small the feed-forward, not the scores, sets the peak: a fused kernel can only lower it.
    assert traced_prefill(SEVEN_B_SHAPES, 4096, torch.bfloat16, fused=True) <= full <= counted


def test_all_32_layers_peak_like_two():
    assert traced_prefill(SEVEN_B, 4096, torch.bfloat16) == traced_prefill(SEVEN_B_SHAPES, 4096, torch.bfloat16)


def test_activations_grow_with_the_chunk_and_not_the_layers():
    tiny = ModelArgs.from_name("tiny")
    assert activation_bytes(tiny, 1024, torch.float32) > activation_bytes(tiny, 512, torch.float32)
    assert activation_bytes(SEVEN_B, 4096, torch.bfloat16) == activation_bytes(SEVEN_B_SHAPES, 4096, torch.bfloat16)


@pytest.mark.parametrize("bad", [0, -1, 2.0, None])
def test_activation_bytes_rejects_a_bad_chunk_size(bad):
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        activation_bytes(SEVEN_B, bad, torch.bfloat16)
