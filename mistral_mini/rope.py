"""Rotary position embeddings (RoPE), in Mistral's interleaved-pair layout.

Shapes: T tokens, H heads, D head_dim.

Each head vector is cut into D/2 pairs of features. Pair k is a point in the plane, rotated by the angle
``position * freq[k]`` with ``freq[k] = theta ** (-2k / D)``: fast-turning pairs at k = 0, slow ones at the
end. Because a rotation by a and a rotation by b leave the dot product depending only on a - b, the score
q_i . k_j depends on the offset i - j, never on where the pair of tokens sits in the sequence.

Mistral's checkpoints pair neighbouring features, (x[0], x[1]), (x[2], x[3]), ...: the *interleaved*
layout. Hugging Face pairs x[k] with x[k + D/2] (the *half-split* layout) and permutes the rows of wq and
wk to match; ``checkpoint.py`` undoes that permutation when it loads their files.
"""

import torch


def rope_frequencies(head_dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """The D/2 angular speeds, radians per position: ``theta ** (-2k / D)``."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    return 1.0 / (theta**exponents)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, pair) angle, each [T, D/2], in float32."""
    freqs = rope_frequencies(head_dim, theta, device=positions.device)
    angles = positions.float()[:, None] * freqs[None, :]  # [T, D/2]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each interleaved pair of x [B, T, H, D] by its angle; cos, sin are [T, D/2]."""
    # A pair (a, b) is the complex number a + ib, and turning it by an angle is multiplying it by
    # cos + i sin: (a cos - b sin) + i (a sin + b cos). One complex product does the four real ones.
    # Rotate in float32 so that bf16 weights do not cost precision in the angle.
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # [B, T, H, D/2] complex
    turns = torch.complex(cos, sin)[:, None, :]  # [T, 1, D/2]: the same angle for every head
    return torch.view_as_real(pairs * turns).flatten(-2).type_as(x)  # [B, T, H, D/2, 2] -> [B, T, H, D]
