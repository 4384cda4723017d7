"""Checks of notebook 08 (the whole model): SwiGLU, the parameter count, Hugging Face's tensor names."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...feed_forward import FeedForward
from ...hf import mistral_name_to_hf
from ...transformer import Transformer
from .checking import check_cases
from .compare import int_difference, value_difference
from .models import MODELS, parameter_count, small_args

__all__ = ["check_swiglu", "check_parameter_count", "check_hf_name"]


def check_swiglu(fn: Callable) -> None:
    """``fn(x, w1, w2, w3)`` -> w2(silu(w1 x) * w3 x), with nn.Linear-style weights [out, in]."""
    cases = []
    for dim, hidden, shape in ((8, 12, (5, 8)), (16, 40, (2, 3, 16))):
        torch.manual_seed(dim)
        ff = FeedForward(dim, hidden)
        x = torch.randn(shape)
        with torch.no_grad():
            expected = ff(x)
        cases.append((f"dim={dim}, hidden_dim={hidden}, x of shape {shape}",
                      (x, ff.w1.weight.detach(), ff.w2.weight.detach(), ff.w3.weight.detach()), expected))
    check_cases("swiglu(x, w1, w2, w3)", fn, cases,
                "a Linear with weight w computes x @ w.T; the gate is silu(x @ w1.T), it multiplies "
                "x @ w3.T element by element, and w2 projects the product back to dim")


def check_parameter_count(fn: Callable) -> None:
    """``fn(args)`` -> the number of parameters of Transformer(args), from the hyper-parameters alone."""
    cases = [(name, (MODELS[name],), parameter_count(Transformer, MODELS[name]))
             for name in ("the tiny preset", "a small MHA model", "Mistral 7B")]
    check_cases("parameter_count(args)", fn, cases,
                "embeddings and output: vocab_size x dim each; per layer wq and wo: dim x n_heads x "
                "head_dim each, wk and wv: dim x n_kv_heads x head_dim each, w1 w2 w3: dim x hidden_dim "
                "each, two norms of dim; then one final norm of dim",
                compare=int_difference)


def check_hf_name(fn: Callable[[str], str]) -> None:
    """``fn(hf_name)`` -> Mistral's name of the same tensor (``model.norm.weight`` -> ``norm.weight``)."""
    with torch.device("meta"):
        names = list(Transformer(small_args(n_layers=2)).state_dict())  # Mistral's names, the model's own
    cases = [(repr(mistral_name_to_hf(name)), (mistral_name_to_hf(name),), name) for name in names]
    check_cases("hf_to_mistral(name)", fn, cases,
                "model.embed_tokens -> tok_embeddings, self_attn.q_proj -> attention.wq (k, v, o alike), "
                "mlp.gate_proj -> feed_forward.w1, down_proj -> w2, up_proj -> w3, input_layernorm -> "
                "attention_norm, post_attention_layernorm -> ffn_norm, model.norm -> norm, lm_head -> "
                "output; 'model.layers.N.' becomes 'layers.N.'", compare=value_difference)
