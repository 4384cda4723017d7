"""Weight-only int8: the linear layers' weights in 8 bits, one float scale per output row.

Shapes: out, in = a linear layer's output and input features (``nn.Linear.weight`` is [out, in]).

Every row of a weight matrix gets its own scale s = max|row| / 127, and stores round(w / s), an integer in
[-127, 127]. A weight is then off by at most s / 2, under 0.4% of the row's largest weight::

    w  =  0.31  -0.02   0.70  -0.44        s = 0.70 / 127 = 0.00551
    q  =    56     -4    127    -80        q * s = 0.3087 -0.0220 0.7000 -0.4409

Only the weights are quantized: activations, the embedding table and the norms stay in float, and the
matmul itself runs in the activations' dtype. The 7B's 7.1 billion linear weights then take 7.1 GB
instead of 14.2 GB in bf16, so the model fits a card of 8-12 GB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

QUANTIZE_CHOICES = (None, "int8")  # what load_model(quantize=...) and memory_plan(quantize=...) accept

# Symmetric: -127..127, not -128..127, so that w and -w get mirror-image integers and zero stays exact.
INT8_MAX = 127


def check_quantize(quantize: object) -> None:
    """Raise ValueError unless ``quantize`` is one of QUANTIZE_CHOICES."""
    if not (quantize is None or (isinstance(quantize, str) and quantize in QUANTIZE_CHOICES)):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}; the choices are "
                         f"{QUANTIZE_CHOICES}: None keeps the float weights, 'int8' stores the linear layers' "
                         "weights in 8 bits (about half of bf16)")


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [out, in] float -> (q [out, in] int8, scale [out] float32), with w ~ q * scale[:, None].

    The scale is float32 whatever w's dtype: a row's scale multiplies every weight of that row, so its own
    rounding would be one error shared by the whole row (up to 0.2% in bf16), where the int8 roundings are
    independent and partly cancel in a dot product. It costs 4 bytes per row: 5.6 MB for the whole 7B.
    """
    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"quantize_int8 takes a float matrix [out, in], got {w.dtype} of shape {tuple(w.shape)}")
    # One float32 copy, worked on in place: the only memory beyond w and q (the 7B's output: 0.5 GB).
    w = w.to(torch.float32, copy=True)  # [out, in]
    scale = w.abs().amax(dim=1) / INT8_MAX  # [out]
    # An all-zero row would divide 0 by 0 (NaN); any scale maps it to q = 0, so use 1.
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = w.div_(scale[:, None]).round_().clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)  # [out, in]
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(q [out, in] int8, scale [out]) -> w [out, in] float32: each row times its scale."""
    return q.float() * scale.float()[:, None]


class Int8Linear(nn.Module):
    """A bias-free linear layer whose weight is int8 [out, in] with a float32 scale per output row.

    The names keep the checkpoint's: ``wq.weight`` (now int8) and, beside it, ``wq.scale``. The weight stays a
    parameter (without gradient, as an int8 tensor must) so that counting ``model.parameters()`` still gives
    the model's size; the scale is a buffer: derived from the weight, not a weight of its own.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        if weight.dtype != torch.int8 or weight.dim() != 2 or tuple(scale.shape) != (weight.shape[0],):
            raise ValueError(f"Int8Linear needs an int8 weight [out, in] and a scale [out], got {weight.dtype} "
                             f"{tuple(weight.shape)} and {tuple(scale.shape)}")
        self.weight = nn.Parameter(weight, requires_grad=False)  # [out, in] int8
        self.register_buffer("scale", scale)  # [out] float32

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize an ``nn.Linear`` (on any device, ``meta`` included: then only the shapes are made)."""
        if linear.bias is not None:
            raise ValueError("Int8Linear has no bias, and Mistral's linear layers have none; got a Linear with one")
        return cls(*quantize_int8(linear.weight.detach()))

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def dequantized(self) -> torch.Tensor:
        """The float32 weight [out, in] this layer computes with."""
        return dequantize_int8(self.weight, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] -> [..., out]: F.linear with the dequantized weight, without building it.

        Output o is sum_i x_i * (q[o, i] * s[o]) = s[o] * sum_i x_i * q[o, i]: the scale of row o is the same
        in every term of output o, so it factors out of the sum, and scaling the output by s equals scaling
        the rows of W. (A scale per input column would not factor out.) The integers -127..127 are exact in
        bf16, so q.to(x.dtype) loses nothing; it is a float copy of one matrix at a time, freed after the
        call. A fused int8 kernel would skip even that copy; here int8 buys memory, not speed.
        """
        return F.linear(x, self.weight.to(x.dtype)) * self.scale.to(x.dtype)  # [..., out]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_model(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` by an ``Int8Linear``, in place; return the model.

    In a Transformer those are wq, wk, wv, wo, w1, w2, w3 of every block and the output projection: 98.2% of
    the 7B's parameters. The embedding stays in float: it is a lookup (one row per token), not a matmul,
    and its 262 MB in bf16 are read one row at a time. The norms stay too (65 vectors of 4,096 values).

    One layer at a time, so a real model needs memory for one more int8 matrix only, and on ``meta`` it
    makes the quantized layout (shapes and dtypes, no data) that load_model fills and memory_plan counts.
    """
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, Int8Linear.from_linear(module))
    return model


def quantized_weight_names(model: nn.Module) -> set[str]:
    """The state-dict names of the weights that Int8Linear layers hold: ``layers.0.attention.wq.weight``, ..."""
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, Int8Linear)}


def quantize_entry(name: str, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """One checkpoint weight -> the two state-dict entries of its Int8Linear: ``name`` (int8) and its scale.

    ``layers.0.attention.wq.weight`` [out, in] -> ``layers.0.attention.wq.weight`` [out, in] int8 and
    ``layers.0.attention.wq.scale`` [out].
    """
    q, scale = quantize_int8(weight)
    return {name: q, name.removesuffix("weight") + "scale": scale}


def weight_errors(model: nn.Module) -> dict[str, list[float]]:
    """Relative error ||W - deq(q(W))|| / ||W|| (Frobenius) of every linear weight of a float model.

    -> {"wq": [layer 0, layer 1, ...], ..., "w3": [...], "output": [one value]}, in the model's layer order.
    """
    errors: dict[str, list[float]] = {}
    for name, module in model.named_modules():
        if isinstance(module, Int8Linear):
            raise TypeError(f"weight_errors needs the float model; {name} is already int8")
        if isinstance(module, nn.Linear):
            w = module.weight.detach().float()  # [out, in]
            error = (w - dequantize_int8(*quantize_int8(w))).norm() / w.norm()
            errors.setdefault(name.rpartition(".")[2], []).append(float(error))
    return errors
