"""The receptive field: which input positions can influence the output at position i, after L layers.

Shapes: T tokens, L layers, W window.

One attention layer lets token i read keys j with ``0 <= i - j < W``: at most W - 1 positions back,
because one of the W keys is the token itself. Stacking layers composes these hops. Information from
position j reaches position i after L layers iff a chain ``i = p_0 >= p_1 >= ... >= p_L = j`` exists with
each hop shorter than W, which is iff ``0 <= i - j <= L * (W - 1)``. With W = 3 (two back per layer)::

    one layer, i = 6          . . . . x x x
    two layers, i = 6         . . x x x x x
                         j =  0 1 2 3 4 5 6

For Mistral 7B (L = 32, W = 4096) the last layer's token sees 32 * 4095 = 131,040 positions back, a span of
131,041 tokens. The paper's "131K" is 32 * 4096 = 131,072, and it is exact too, for the other reading of its
own sentence: it lets position i attend to "positions between i - W and i", which read with both ends
included is W + 1 keys, W back per layer (``reach(L, W + 1) == L * W``). Two readings, two masks; this
package, xformers' local attention (mistral-inference) and transformers' Mistral all use W keys.

``measured_receptive_field`` checks the analysis on a real (random) model: the gradient of output i with
respect to input embedding j is non-zero exactly where information flows from j to i.
"""

from __future__ import annotations

import torch

from .transformer import Transformer


def reach(n_layers: int, window: int) -> int:
    """How many positions back the last of ``n_layers`` sliding-window layers can see: L * (W - 1)."""
    if n_layers < 0 or window < 1:
        raise ValueError(f"need n_layers >= 0 and window >= 1, got n_layers={n_layers}, window={window}")
    return n_layers * (window - 1)


def receptive_field_mask(seq_len: int, n_layers: int, window: int) -> torch.Tensor:
    """[T, T] bool, analytic: True where input j can influence output i, ``0 <= i - j <= L * (W - 1)``."""
    positions = torch.arange(seq_len)
    offset = positions[:, None] - positions[None, :]  # [T, T]: i - j
    return (offset >= 0) & (offset <= reach(n_layers, window))


def measured_receptive_field(model: Transformer, seq_len: int, n_layers: int | None = None,
                             seed: int = 0) -> torch.Tensor:
    """[T, T] bool, measured: True where d output[i] / d embedding[j] is not exactly zero.

    The input is random embeddings (drawn from a private generator, so global seeds are untouched). For each
    output position i, one backward pass of a random projection of its logits gives the gradient with
    respect to every input embedding; positions outside the receptive field get an exact zero, because the
    mask removes every path from them.
    """
    weight = model.tok_embeddings.weight
    generator = torch.Generator(device="cpu").manual_seed(seed)
    embeddings = torch.randn(1, seq_len, model.args.dim, generator=generator).to(weight.device, weight.dtype)
    projection = torch.randn(model.args.vocab_size, generator=generator).to(weight.device)
    embeddings.requires_grad_(True)
    with torch.enable_grad():
        logits = model.forward_embeddings(embeddings, n_layers=n_layers)  # [1, T, V]
        rows = []
        for i in range(seq_len):
            (grad,) = torch.autograd.grad(logits[0, i] @ projection, embeddings, retain_graph=i < seq_len - 1)
            rows.append(grad[0].abs().amax(dim=-1) > 0)  # [T]: did input j move output i at all?
    return torch.stack(rows)  # [T, T]
