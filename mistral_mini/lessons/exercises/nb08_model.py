"""Checks of notebook 08 (the whole model): SwiGLU from Hugging Face's weights, the parameter count of any
configuration, Hugging Face's tensor names, and a block variant (attention and feed-forward in parallel).

Shapes: B batch, T tokens, dim model width, hidden hidden_dim.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F

from ...config import ModelArgs
from ...feed_forward import FeedForward
from ...hf import mistral_name_to_hf
from ...rope import rope_angles
from ...transformer import Transformer, TransformerBlock
from .checking import check_cases
from .compare import int_difference, value_difference
from .models import MODELS, counted_parameters, parameter_count, small_args

__all__ = ["check_swiglu_hf", "check_parameter_count", "check_hf_name", "check_parallel_block"]


# ---------------------------------------------------------------------------------------------------------
# SwiGLU from Hugging Face's three matrices
# ---------------------------------------------------------------------------------------------------------


def _glu(x, gate, up, down, act=F.silu, gated=True):
    """down(act(x gate^T) * x up^T), nn.Linear layout [out, in]; ``gated=False`` drops the value branch."""
    hidden = act(x @ gate.T) * (x @ up.T) if gated else act(x @ gate.T)  # [..., hidden]
    return hidden @ down.T  # [..., dim]


SWIGLU_MISTAKES = [
    ("SiLU on the wrong branch: it belongs on the gate, gate_proj; up_proj carries the value it multiplies.",
     lambda x, g, u, d: _glu(x, u, g, d)),
    ("the gate has no SiLU: the product of the two projections is right, but the gate goes through SiLU "
     "first.", lambda x, g, u, d: _glu(x, g, u, d, act=lambda h: h)),
    ("no gating: silu(gate) went straight to down_proj, as in a classic MLP; SwiGLU multiplies it by the "
     "value, up_proj's output, element by element.", lambda x, g, u, d: _glu(x, g, u, d, gated=False)),
    ("ReLU instead of SiLU: SwiGLU's gate is silu(h) = h * sigmoid(h).",
     lambda x, g, u, d: _glu(x, g, u, d, act=F.relu)),
    ("GELU instead of SiLU (GeGLU): SwiGLU's gate is silu(h) = h * sigmoid(h).",
     lambda x, g, u, d: _glu(x, g, u, d, act=F.gelu)),
    ("sigmoid instead of SiLU (plain GLU): SiLU is h * sigmoid(h), the sigmoid times its input.",
     lambda x, g, u, d: _glu(x, g, u, d, act=torch.sigmoid)),
]


def check_swiglu_hf(fn: Callable) -> None:
    """``fn(x, gate_proj, up_proj, down_proj)`` -> Mistral's feed-forward, from Hugging Face's three weight
    matrices in nn.Linear's layout [out_features, in_features]."""
    cases = []
    for dim, hidden, shape in ((8, 12, (5, 8)), (16, 40, (2, 3, 16))):
        with torch.random.fork_rng(devices=[]):  # seeded without moving the notebook's own random state
            torch.manual_seed(dim)
            ff = FeedForward(dim, hidden)
            x = torch.randn(shape)
        with torch.no_grad():
            expected = ff(x)
        gate, up, down = (w.weight.detach() for w in (ff.w1, ff.w3, ff.w2))  # Hugging Face's names for them
        cases.append((f"dim={dim}, hidden_dim={hidden}, x of shape {shape}", (x, gate, up, down), expected))
    check_cases("swiglu_hf(x, gate_proj, up_proj, down_proj)", fn, cases, mistakes=SWIGLU_MISTAKES,
                hint="look at the three shapes: two matrices take x from dim to hidden_dim, one brings the "
                     "result back; the names say which of the two wide ones is the gate.")


# ---------------------------------------------------------------------------------------------------------
# the parameter count, from the hyper-parameters alone
# ---------------------------------------------------------------------------------------------------------

# Mistral NeMo 12B's params.json: 32 query heads of 128 make 4,096, not dim = 5,120.
NEMO = ModelArgs(dim=5120, n_layers=40, head_dim=128, hidden_dim=14336, n_heads=32, n_kv_heads=8, norm_eps=1e-5,
                 vocab_size=131072, sliding_window=32768, rope_theta=1e6)
COUNTED = {
    "Mistral NeMo 12B (dim 5,120, 40 layers, 32 heads of 128, 8 kv heads, vocab 131,072)": NEMO,
    "a small MQA model (dim 48, 3 layers, 4 heads of 16, 1 kv head)":
        small_args(dim=48, n_layers=3, n_kv_heads=1, hidden_dim=80),
    "the tiny preset": MODELS["the tiny preset"],
    "Mistral 7B": MODELS["Mistral 7B"],
}


COUNT_MISTAKES = [
    ("the norms are missing: two RMSNorm gains of dim per layer (attention_norm, ffn_norm) and the final norm.",
     lambda a: counted_parameters(a, norms=0, final_norm=0)),
    ("the final norm is missing: one more gain vector of dim after the last layer.",
     lambda a: counted_parameters(a, final_norm=0)),
    ("the norms inside the layers are missing: each block has two, attention_norm and ffn_norm.",
     lambda a: counted_parameters(a, norms=0)),
    ("one norm per layer: each block has two, attention_norm and ffn_norm.", lambda a: counted_parameters(a, norms=1)),
    ("the output layer was counted once with the embeddings, as if tied: Mistral's output has its own "
     "vocab_size x dim matrix.", lambda a: counted_parameters(a, outputs=1)),
    ("wk and wv counted with n_heads: they have n_kv_heads heads (grouped-query attention).",
     lambda a: counted_parameters(a, kv_heads=a.n_heads)),
    ("wq and wo counted as dim x dim: their width is n_heads x head_dim, which need not equal dim.",
     lambda a: counted_parameters(a, q_width=a.dim)),
    ("two feed-forward matrices, as in a classic MLP: SwiGLU has three, w1, w2 and w3.",
     lambda a: counted_parameters(a, ff_matrices=2)),
]

# The exercise asks for the count from the hyper-parameters alone: building the model is switched off.
MODEL_BUILDERS = ["mistral_mini.transformer.Transformer", "mistral_mini.Transformer",
                  "mistral_mini.transformer.TransformerBlock", "mistral_mini.TransformerBlock",
                  "mistral_mini.attention.Attention", "mistral_mini.feed_forward.FeedForward",
                  "mistral_mini.memory.meta_model"]


def check_parameter_count(fn: Callable) -> None:
    """``fn(args)`` -> the number of parameters of Transformer(args), from the hyper-parameters alone."""
    cases = [(name, (args,), parameter_count(Transformer, args)) for name, args in COUNTED.items()]
    check_cases("parameter_count(args)", fn, cases, compare=int_difference, mistakes=COUNT_MISTAKES,
                forbidden=MODEL_BUILDERS,
                hint="go through the table of components above (the 7B's count, grouped by component) and "
                     "write each as a product of hyper-parameters, assuming nothing that only the 7B satisfies.")


# ---------------------------------------------------------------------------------------------------------
# Hugging Face's names -> Mistral's
# ---------------------------------------------------------------------------------------------------------


@cache
def _mistral_of() -> dict[str, str]:
    """Hugging Face's name -> Mistral's, for every tensor of a small 2-layer model (built on meta)."""
    with torch.device("meta"):
        names = list(Transformer(small_args(n_layers=2)).state_dict())  # Mistral's names, the model's own
    return {mistral_name_to_hf(name): name for name in names}


def _renamed(name: str, swaps: dict[str, str]) -> str:
    """Mistral's name of Hugging Face's ``name``, with the first piece of ``swaps`` it holds exchanged."""
    ours = _mistral_of()[name]
    for a, b in swaps.items():
        if a in ours:
            return ours.replace(a, b)
    return ours


HF_NAME_MISTAKES = [
    ("k_proj and v_proj mixed up: k_proj is the keys' projection, v_proj the values'.",
     lambda n: _renamed(n, {"attention.wk": "attention.wv", "attention.wv": "attention.wk"})),
    ("gate_proj and up_proj mixed up: the gate (the branch through SiLU) is w1, the value it multiplies w3.",
     lambda n: _renamed(n, {"feed_forward.w1": "feed_forward.w3", "feed_forward.w3": "feed_forward.w1"})),
    ("w1, w2, w3 numbered in Hugging Face's order gate, up, down: in Mistral's, w2 is the projection back "
     "to dim (down_proj) and w3 the value (up_proj).",
     lambda n: _renamed(n, {"feed_forward.w2": "feed_forward.w3", "feed_forward.w3": "feed_forward.w2"})),
    ("the two norms of a layer mixed up: input_layernorm comes before attention (attention_norm), "
     "post_attention_layernorm before the feed-forward (ffn_norm).",
     lambda n: _renamed(n, {"attention_norm": "ffn_norm", "ffn_norm": "attention_norm"})),
    ("the 'model.' prefix was kept: Mistral's names have none (layers.N..., tok_embeddings, norm).",
     lambda n: ("model." if n.startswith("model.") else "") + _mistral_of()[n]),
    ("the layer index was lost: model.layers.N.... becomes layers.N.... with the same N.",
     lambda n: _renamed(n, {"layers.1.": "layers.0."})),
]

# The exercise asks for the mapping written out: the package's own is switched off.
NAME_MAPS = ["mistral_mini.hf.hf_name_to_mistral", "mistral_mini.hf.mistral_name_to_hf",
             "mistral_mini.hf.hf_tensor_to_mistral", "mistral_mini.checkpoint_reader.hf_name_to_mistral"]


def check_hf_name(fn: Callable[[str], str]) -> None:
    """``fn(hf_name)`` -> Mistral's name of the same tensor (``model.norm.weight`` -> ``norm.weight``)."""
    cases = [(repr(hf), (hf,), ours) for hf, ours in _mistral_of().items()]
    check_cases("hf_to_mistral(name)", fn, cases, compare=value_difference, mistakes=HF_NAME_MISTAKES,
                forbidden=NAME_MAPS,
                hint="print the names of both models of the proof above, ours.state_dict() and "
                     "theirs.state_dict(), and match them by role: what each tensor does, not where it sits.")


# ---------------------------------------------------------------------------------------------------------
# a block variant: attention and feed-forward side by side
# ---------------------------------------------------------------------------------------------------------


def _block(block, x, cos, sin, ff_norm="attention_norm", residual=1):
    """x + attention(norm(x)) + feed_forward(norm(x)), with the switches that the usual mistakes flip."""
    attention = block.attention(block.attention_norm(x), cos, sin)  # [B, T, dim]
    ff_in = x if ff_norm is None else getattr(block, ff_norm)(x)  # [B, T, dim]
    return residual * x + attention + block.feed_forward(ff_in)


BLOCK_MISTAKES = [
    ("that is Mistral's sequential block: in the parallel one the feed-forward reads the block's input x, "
     "not x + attention(...).", lambda b, x, c, s: b(x, c, s)),
    ("the feed-forward read x through ffn_norm: in the parallel block one norm, attention_norm, feeds both "
     "sub-layers.", lambda b, x, c, s: _block(b, x, c, s, ff_norm="ffn_norm")),
    ("the feed-forward read x unnormalized: both sub-layers read the same normalized x.",
     lambda b, x, c, s: _block(b, x, c, s, ff_norm=None)),
    ("the residual is missing: the block adds both sub-layers' outputs to x.",
     lambda b, x, c, s: _block(b, x, c, s, residual=0)),
    ("x was added twice (once per sub-layer): the stream x is added once, then both sub-layers' outputs.",
     lambda b, x, c, s: _block(b, x, c, s, residual=2)),
]


def check_parallel_block(fn: Callable) -> None:
    """``fn(block, x, cos, sin)`` -> x + attention(attention_norm(x)) + feed_forward(attention_norm(x)), with
    the modules of a TransformerBlock; x [B, T, dim], cos and sin from rope_angles at positions 0..T-1."""
    cases = []
    for seed, shape in ((1, (1, 12, 64)), (2, (2, 5, 64))):
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # seeded, the notebook's random state untouched
            torch.manual_seed(seed)
            block = TransformerBlock(small_args())
            for p in block.parameters():  # random everywhere, norms included, so no term hides behind a 1
                p.normal_(0.0, 0.2)
            x = torch.randn(shape)
        cos, sin = rope_angles(torch.arange(shape[1]), block.attention.head_dim, 10000.0)  # [T, D/2]
        with torch.no_grad():
            expected = _block(block, x, cos, sin)
        cases.append((f"x of shape {shape}", (block, x, cos, sin), expected))
    with torch.no_grad():
        check_cases("parallel_block(block, x, cos, sin)", fn, cases, mistakes=BLOCK_MISTAKES,
                    hint="write the formula term by term: three terms added together, and both sub-layers "
                         "read the same input.")
