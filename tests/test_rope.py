import torch
from transformers.models.mistral.modeling_mistral import apply_rotary_pos_emb

from mistral_mini.hf import permute_rope_rows, unpermute_rope_rows
from mistral_mini.rope import apply_rope, rope_angles


def test_pair_k_rotates_by_position_times_its_frequency():
    D, theta = 8, 10000.0
    x = torch.zeros(1, 1, 1, D)
    x[..., 2] = 1.0  # pair k = 1 points along its first axis
    cos, sin = rope_angles(torch.tensor([5]), D, theta)
    angle = 5 * theta ** (-2 / D)
    out = apply_rope(x, cos, sin)[0, 0, 0]
    torch.testing.assert_close(out[2:4], torch.tensor([torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))]))
    assert out[[0, 1, 4, 5, 6, 7]].abs().max() == 0


def test_score_depends_only_on_the_offset():
    torch.manual_seed(0)
    D = 16
    q, k = torch.randn(1, 1, 1, D), torch.randn(1, 1, 1, D)

    def score(i, j):
        cq, sq = rope_angles(torch.tensor([i]), D, 10000.0)
        ck, sk = rope_angles(torch.tensor([j]), D, 10000.0)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    assert abs(score(7, 3) - score(107, 103)) < 1e-4
    assert abs(score(7, 3) - score(8, 3)) > 1e-3


def test_matches_transformers_half_split_rope_after_permutation():
    """Our interleaved RoPE on wq x equals Hugging Face's half-split RoPE on their permuted wq x."""
    torch.manual_seed(0)
    H, D, dim, T = 2, 16, 32, 9
    wq = torch.randn(H * D, dim)
    x = torch.randn(1, T, dim)
    positions = torch.arange(100, 100 + T)
    cos, sin = rope_angles(positions, D, 1e6)
    ours = apply_rope((x @ wq.T).view(1, T, H, D), cos, sin)  # [1, T, H, D] interleaved
    hf_q = (x @ permute_rope_rows(wq, H).T).view(1, T, H, D).transpose(1, 2)  # [1, H, T, D] half-split
    hf_cos, hf_sin = torch.cat((cos, cos), -1)[None], torch.cat((sin, sin), -1)[None]  # [1, T, D]
    theirs, _ = apply_rotary_pos_emb(hf_q, hf_q, hf_cos, hf_sin)
    # Undo the permutation on the output features to compare in Mistral's layout.
    theirs = unpermute_rope_rows(theirs.transpose(1, 2).reshape(T, H * D).T, H).T.view(1, T, H, D)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_permutation_round_trip_and_is_not_identity():
    w = torch.arange(24.0 * 3).view(24, 3)
    assert not torch.equal(permute_rope_rows(w, 3), w)
    torch.testing.assert_close(unpermute_rope_rows(permute_rope_rows(w, 3), 3), w)


def test_strided_and_bf16_inputs_rotate_like_contiguous_float32():
    """apply_rope views pairs as complex numbers: a transposed view must give the same numbers as a copy, and
    bf16 must be rotated in float32 and rounded once."""
    torch.manual_seed(0)
    T, H, D = 5, 3, 16
    cos, sin = rope_angles(torch.arange(40, 40 + T), D, 10000.0)
    heads_first = torch.randn(1, H, T, D)  # [B, H, T, D] in memory
    x = heads_first.transpose(1, 2)  # [B, T, H, D], not contiguous
    expected = apply_rope(x.contiguous(), cos, sin)
    assert torch.equal(apply_rope(x, cos, sin), expected)
    rotated = apply_rope(x.bfloat16(), cos, sin)
    assert rotated.dtype == torch.bfloat16
    assert torch.equal(rotated, apply_rope(x.bfloat16().float(), cos, sin).bfloat16())
