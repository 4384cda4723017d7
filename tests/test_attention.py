import pytest
import torch

from mistral_mini.attention import attend, attention_reference, masked_attention, repeat_kv
from mistral_mini.masks import sliding_window_mask


def qkv(B=2, H=4, Hkv=2, Tq=50, Tk=50, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, Tq, D, generator=g), torch.randn(B, Hkv, Tk, D, generator=g),
            torch.randn(B, Hkv, Tk, D, generator=g))


def test_repeat_kv_gives_query_head_h_the_kv_head_h_over_n_rep():
    x = torch.arange(3.0).view(1, 3, 1, 1)  # three kv heads, each holding its own index
    assert repeat_kv(x, 4).flatten().tolist() == [0] * 4 + [1] * 4 + [2] * 4


@pytest.mark.parametrize("H, Hkv", [(4, 4), (4, 2), (8, 2), (4, 1)])
def test_masked_attention_equals_the_reference(H, Hkv):
    q, k, v = qkv(H=H, Hkv=Hkv, Tq=7, Tk=19)
    mask = sliding_window_mask(torch.arange(12, 19), torch.arange(19), 5)
    torch.testing.assert_close(masked_attention(q, k, v, mask), attention_reference(q, k, v, mask))


@pytest.mark.parametrize("T, window, block", [(50, 8, 3), (50, 8, 8), (50, 50, 16), (64, 7, 256), (30, 1, 4)])
def test_banded_equals_dense_reference(T, window, block):
    q, k, v = qkv(Tq=T, Tk=T)
    pos = torch.arange(T)
    expected = attention_reference(q, k, v, sliding_window_mask(pos, pos, window))
    torch.testing.assert_close(attend(q, k, v, 0, 0, window, block_size=block), expected)


def test_banded_with_a_prefix_of_cached_keys():
    """Queries at 40..59 over keys 33..59: the shape of a prefill chunk after the cache."""
    q, k, v = qkv(Tq=20, Tk=27)
    expected = attention_reference(q, k, v, sliding_window_mask(torch.arange(40, 60), torch.arange(33, 60), 8))
    torch.testing.assert_close(attend(q, k, v, 40, 33, 8, block_size=6), expected)


def test_banded_blocks_never_build_a_full_score_matrix(monkeypatch):
    """For T > W each block's mask is at most block x (block + W - 1): O(T * W), not T x T."""
    import mistral_mini.attention as attention

    shapes = []
    real = attention.grouped_attention
    monkeypatch.setattr(attention, "grouped_attention", lambda q, k, v, b: shapes.append(b.shape) or real(q, k, v, b))
    q, k, v = qkv(Tq=200, Tk=200)
    attention.attend(q, k, v, 0, 0, 16, block_size=16)
    assert len(shapes) == 200 // 16 + 1
    assert max(rows * cols for rows, cols in shapes) <= 2 * 16 * (16 + 15)  # 2 query heads per kv head


def test_without_a_fused_kernel_a_chunk_inside_the_window_goes_in_blocks_too(monkeypatch):
    """T <= W is plain causal attention, but without a fused kernel that would hold T x T scores (a T4 in
    bf16): then the banded blocks bound them, and give the same numbers."""
    import mistral_mini.attention as attention

    shapes = []
    real = attention.grouped_attention
    monkeypatch.setattr(attention, "grouped_attention", lambda q, k, v, b: shapes.append(b.shape) or real(q, k, v, b))
    monkeypatch.setattr(attention, "has_fused_kernel", lambda q: False)
    q, k, v = qkv(Tq=64, Tk=64)
    pos = torch.arange(64)
    expected = attention_reference(q, k, v, sliding_window_mask(pos, pos, 64))
    torch.testing.assert_close(attention.attend(q, k, v, 0, 0, 64, block_size=16), expected)
    assert len(shapes) == 4 and max(rows * cols for rows, cols in shapes) <= 2 * 16 * (16 + 63)


def test_fused_kernel_on_cpu_and_none_assumed_on_meta():
    from mistral_mini.attention import has_fused_kernel

    assert has_fused_kernel(torch.zeros(1, 1, 2, 4))
    assert not has_fused_kernel(torch.zeros(1, 1, 2, 4, device="meta"))
