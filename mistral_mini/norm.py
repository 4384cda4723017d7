"""RMSNorm: scale each token vector to unit root-mean-square, then by a learned gain.

    y = x / sqrt(mean(x**2) + eps) * weight

Unlike LayerNorm it neither subtracts the mean nor adds a bias: one statistic, one parameter vector.
"""

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The statistic is taken in float32: in bf16 the mean of squares loses too many digits.
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.type_as(x)
