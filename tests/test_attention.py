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


def window_reference(q, k, v, q_start, k_start, window):
    q_pos, k_pos = torch.arange(q_start, q_start + q.shape[2]), torch.arange(k_start, k_start + k.shape[2])
    return attention_reference(q, k, v, sliding_window_mask(q_pos, k_pos, window))


@pytest.mark.parametrize("T, window, block", [(50, 8, 3), (50, 8, 8), (50, 50, 16), (64, 7, 256), (30, 1, 4),
                                              (200, 16, None), (75, 20, None)])
def test_banded_equals_dense_reference(T, window, block):
    q, k, v = qkv(Tq=T, Tk=T)
    torch.testing.assert_close(attend(q, k, v, 0, 0, window, block_size=block),
                               window_reference(q, k, v, 0, 0, window))


@pytest.mark.parametrize("q_start, k_start, Tq, window, block", [
    (40, 33, 20, 8, 6),  # a chunk after a full cache: keys from q_start - W + 1
    (30, 0, 100, 40, 7),  # the cache not yet full: the first queries' windows reach back past key 0
    (300, 261, 100, 40, 16),  # 100 queries after 39 cached keys, blocks of 16 and a shorter last one
    (5, 0, 3, 64, None),  # all inside one window, keys from 0
])
def test_banded_with_a_prefix_of_cached_keys(q_start, k_start, Tq, window, block):
    """Queries at q_start.. over keys k_start..: the shape of a prefill chunk after the cache."""
    q, k, v = qkv(Tq=Tq, Tk=q_start + Tq - k_start)
    torch.testing.assert_close(attend(q, k, v, q_start, k_start, window, block_size=block),
                               window_reference(q, k, v, q_start, k_start, window))


@pytest.mark.parametrize("H, Hkv", [(4, 4), (4, 2), (8, 1)])
@pytest.mark.parametrize("q_start, k_start, Tq", [(0, 0, 203), (70, 41, 150)])
def test_fast_path_equals_the_plain_loop(monkeypatch, H, Hkv, q_start, k_start, Tq):
    """The full blocks in one strided call give the numbers of one call per block, for queries laid out as
    the model makes them ([B, T, H, D] memory seen as [B, H, T, D]) and for a batch of two."""
    import mistral_mini.attention as attention

    q, k, v = qkv(H=H, Hkv=Hkv, Tq=Tq, Tk=q_start + Tq - k_start)
    q = q.transpose(1, 2).contiguous().transpose(1, 2)  # the model's layout
    fast = attention.attend(q, k, v, q_start, k_start, 30, block_size=8)
    monkeypatch.setattr(attention, "has_fused_kernel", lambda q: False)
    plain = attention.attend(q, k, v, q_start, k_start, 30, block_size=8)
    torch.testing.assert_close(fast, plain)
    torch.testing.assert_close(fast, window_reference(q, k, v, q_start, k_start, 30))


def test_full_blocks_run_in_one_call_per_sequence(monkeypatch):
    """T = 200, W = 16, blocks of 16: the first 16 queries are causal (one fused call, no mask), the next
    176 are 11 full blocks in one call per sequence with one [2 * 16, 16 + 15] mask, the last 8 one block.
    No mask is ever larger than a block's: O(T * W), not T x T."""
    import mistral_mini.attention as attention

    shapes = []
    real = attention.grouped_attention
    monkeypatch.setattr(attention, "grouped_attention",
                        lambda q, k, v, b: shapes.append((q.shape[0], tuple(b.shape))) or real(q, k, v, b))
    q, k, v = qkv(Tq=200, Tk=200)  # B = 2, 4 query heads on 2 key/value heads
    attention.attend(q, k, v, 0, 0, 16, block_size=16)
    assert shapes == [(11, (32, 31)), (11, (32, 31)), (2, (16, 23))]


def test_without_a_fused_kernel_a_chunk_inside_the_window_goes_in_blocks_too(monkeypatch):
    """T <= W is plain causal attention, but without a fused kernel that would hold T x T scores (a T4 in
    bf16): then every block is a call of its own, which bounds them, and gives the same numbers."""
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


def test_gradients_flow_through_the_strided_blocks():
    """Training runs the fast path too: its gradients equal the reference's, overlapping key windows and all."""
    q, k, v = (t.requires_grad_() for t in qkv(Tq=150, Tk=150))
    weights = torch.randn(2, 4, 150, 8)
    grads = torch.autograd.grad((attend(q, k, v, 0, 0, 20, block_size=8) * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((window_reference(q, k, v, 0, 0, 20) * weights).sum(), (q, k, v))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("window", [4, 64, 1024, 4096, 32768])
@pytest.mark.parametrize("n_rep", [1, 4, 8])
@pytest.mark.parametrize("head_dim", [16, 128])
def test_block_for_wastes_little_and_fills_the_kernel(window, n_rep, head_dim):
    from mistral_mini.attention import block_for

    n = block_for(window, n_rep, head_dim)
    assert 1 <= n <= window
    rows, waste = (192, 1 / 5) if head_dim >= 64 else (128, 1 / 32)
    if window >= 1024:  # windows long enough for both aims: the rows the kernel wants, little waste
        assert n <= window * waste
        # the smallest block that reaches the rows, unless the waste cap stops it first
        assert (n_rep * n >= rows or n + 1 > window * waste) and n_rep * (n - 1) < rows


def test_fused_kernel_on_cpu_and_none_assumed_on_meta():
    from mistral_mini.attention import has_fused_kernel

    assert has_fused_kernel(torch.zeros(1, 1, 2, 4))
    assert not has_fused_kernel(torch.zeros(1, 1, 2, 4, device="meta"))
