"""Hugging Face <-> Mistral: tensor names, the q/k row permutation, the config, and a transformers twin.

Mistral's names are the model's own (``layers.0.attention.wq.weight``). Hugging Face renames every tensor and
also permutes the rows of wq and wk: its RoPE rotates the half-split pairs (x[k], x[k + D/2]) where
Mistral's rotates neighbours (x[2k], x[2k + 1]). Within each head the permutation sends row 2k to row k and
row 2k + 1 to row k + D/2; loading undoes it, saving to Hugging Face's layout does it.

This is the only module that knows Hugging Face's names. transformers itself is needed only by
``to_transformers`` (tests, benchmarks, notebook cells that compare), and imported inside it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch

from .config import NO_WINDOW_CONTEXT, ModelArgs

if TYPE_CHECKING:
    from transformers import MistralForCausalLM

    from .transformer import Transformer

# Hugging Face's tensor names -> Mistral's: the only place the Hugging Face names live.
_HF_GLOBAL = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}
_HF_LAYER = {
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3",
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
}
_HF_LAYER_NAME = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")
_MISTRAL_LAYER_NAME = re.compile(r"layers\.(\d+)\.(.+)\.weight")


def hf_name_to_mistral(name: str) -> str:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``layers.3.attention.wq.weight``."""
    if name in _HF_GLOBAL:
        return _HF_GLOBAL[name]
    match = _HF_LAYER_NAME.fullmatch(name)
    if match is None or match.group(2) not in _HF_LAYER:
        raise KeyError(f"{name!r} is not a Hugging Face Mistral tensor name")
    return f"layers.{match.group(1)}.{_HF_LAYER[match.group(2)]}.weight"


def mistral_name_to_hf(name: str) -> str:
    """``layers.3.attention.wq.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    for hf, ours in _HF_GLOBAL.items():
        if name == ours:
            return hf
    match = _MISTRAL_LAYER_NAME.fullmatch(name)
    inverse = {ours: hf for hf, ours in _HF_LAYER.items()}
    if match is None or match.group(2) not in inverse:
        raise KeyError(f"{name!r} is not a Mistral tensor name")
    return f"model.layers.{match.group(1)}.{inverse[match.group(2)]}.weight"


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Hugging Face's half-split rows of wq or wk [rows, cols] -> Mistral's interleaved rows."""
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def permute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Mistral's interleaved rows of wq or wk [rows, cols] -> Hugging Face's half-split rows."""
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def _rope_heads(name: str, args: ModelArgs) -> int | None:
    """How many heads a tensor's rows hold if RoPE rotates them (wq, wk), else None."""
    if name.endswith("attention.wq.weight"):
        return args.n_heads
    if name.endswith("attention.wk.weight"):
        return args.n_kv_heads
    return None


def hf_tensor_to_mistral(hf_name: str, w: torch.Tensor, args: ModelArgs) -> tuple[str, torch.Tensor]:
    """One Hugging Face tensor -> its Mistral name and layout."""
    name = hf_name_to_mistral(hf_name)
    heads = _rope_heads(name, args)
    return name, (unpermute_rope_rows(w, heads) if heads else w)


def mistral_state_dict_to_hf(state_dict: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """A Mistral-named state dict -> Hugging Face's names and q/k row layout."""
    out = {}
    for name, w in state_dict.items():
        heads = _rope_heads(name, args)
        out[mistral_name_to_hf(name)] = permute_rope_rows(w, heads) if heads else w
    return out


def args_from_hf_config(config: dict) -> ModelArgs:
    """Hugging Face's ``config.json`` dict -> ModelArgs."""
    try:
        heads, dim = config["num_attention_heads"], config["hidden_size"]
        rope = config.get("rope_parameters") or {}
        return ModelArgs(
            dim=dim,
            n_layers=config["num_hidden_layers"],
            head_dim=config.get("head_dim") or dim // heads,
            hidden_dim=config["intermediate_size"],
            n_heads=heads,
            n_kv_heads=config.get("num_key_value_heads") or heads,
            norm_eps=config["rms_norm_eps"],
            vocab_size=config["vocab_size"],
            sliding_window=config.get("sliding_window") or NO_WINDOW_CONTEXT,
            rope_theta=float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0),
        )
    except KeyError as err:
        raise ValueError(f"config.json lacks {err.args[0]!r}; expected a Hugging Face Mistral config") from err


def hf_config_from_args(args: ModelArgs) -> dict:
    """ModelArgs -> the fields of a Hugging Face ``MistralConfig``."""
    return dict(
        model_type="mistral", architectures=["MistralForCausalLM"],
        hidden_size=args.dim, num_hidden_layers=args.n_layers, head_dim=args.head_dim,
        intermediate_size=args.hidden_dim, num_attention_heads=args.n_heads,
        num_key_value_heads=args.n_kv_heads, rms_norm_eps=args.norm_eps, vocab_size=args.vocab_size,
        sliding_window=args.sliding_window, max_position_embeddings=NO_WINDOW_CONTEXT * 4,
        rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
        tie_word_embeddings=False, hidden_act="silu",
    )


def to_transformers(model: Transformer, attn_implementation: str = "eager") -> MistralForCausalLM:
    """transformers' ``MistralForCausalLM`` holding exactly ``model``'s weights, in its dtype, on its device.

    Every tensor must find its place: a name that does not map raises, rather than leaving a random weight.
    """
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(**hf_config_from_args(model.args))
    config._attn_implementation = attn_implementation
    weight = model.tok_embeddings.weight
    with torch.device("meta"):  # no memory for weights that are about to be replaced
        reference = MistralForCausalLM(config)
    state = mistral_state_dict_to_hf(model.state_dict(), model.args)
    missing, unexpected = reference.load_state_dict(state, strict=False, assign=True)
    if unexpected or missing:
        raise RuntimeError(f"transformers' Mistral does not take these weights: missing {missing}, "
                           f"unexpected {unexpected}")
    # RoPE's inverse frequencies are computed, not stored: build that module again, off meta.
    with torch.device("cpu"):
        reference.model.rotary_emb = type(reference.model.rotary_emb)(config)
    return reference.to(weight.device).eval()
