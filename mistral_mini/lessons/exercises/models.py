"""The model configurations the checks run on, and what they cost; nothing here allocates a weight."""

from __future__ import annotations

import torch

from ...config import ModelArgs
from ...memory import MemoryPlan, memory_plan


def small_args(**overrides) -> ModelArgs:
    """A small model (dim 64, 2 layers, 4 query and 2 key/value heads of 16, window 8), fields overridden."""
    base = dict(dim=64, n_layers=2, head_dim=16, hidden_dim=96, n_heads=4, n_kv_heads=2, norm_eps=1e-5,
                vocab_size=97, sliding_window=8, rope_theta=10000.0)
    return ModelArgs(**{**base, **overrides})


# The configurations the counting exercises run on, by the name a failure reports.
MODELS = {
    "Mistral 7B": ModelArgs.from_name("mistral-7b"),
    "the tiny preset": ModelArgs.from_name("tiny"),
    "a small MHA model": small_args(n_layers=3, n_kv_heads=4),  # n_kv_heads = n_heads: no sharing
}


def parameter_count(module_class: type[torch.nn.Module], args: ModelArgs) -> int:
    """Parameters of ``module_class(args)``, counted on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        module = module_class(args)
    return sum(p.numel() for p in module.parameters())


def counted_parameters(a: ModelArgs, *, kv_heads: int | None = None, q_width: int | None = None,
                       ff_matrices: int = 3, norms: int = 2, final_norm: int = 1, outputs: int = 2,
                       n_layers: int | None = None, one_block: bool = False) -> int:
    """The parameter count written out, with one switch per classic counting mistake (the defaults count right).

    ``kv_heads``: the heads of wk and wv (a.n_kv_heads; a.n_heads forgets GQA); ``q_width``: the rows of wq and
    the columns of wo (a.n_heads * a.head_dim, which need not be dim); ``ff_matrices``: SwiGLU's three;
    ``norms`` per block; ``final_norm``; ``outputs``: the embedding and the output matrix (1 if tied);
    ``n_layers``; ``one_block``: one block's parameters only.
    """
    q_width = a.n_heads * a.head_dim if q_width is None else q_width
    kv_width = (a.n_kv_heads if kv_heads is None else kv_heads) * a.head_dim
    block = 2 * a.dim * q_width + 2 * a.dim * kv_width + ff_matrices * a.dim * a.hidden_dim + norms * a.dim
    if one_block:
        return block
    layers = a.n_layers if n_layers is None else n_layers
    return outputs * a.vocab_size * a.dim + layers * block + final_norm * a.dim


_DTYPE_OF_ITEMSIZE = {1: torch.uint8, 2: torch.bfloat16, 4: torch.float32, 8: torch.float64}


def plan_for(args: ModelArgs, itemsize: int) -> MemoryPlan:
    """``memory.memory_plan`` for one sequence at ``itemsize`` bytes per value: weights and rolling cache."""
    return memory_plan(args, _DTYPE_OF_ITEMSIZE[itemsize])
