"""How much does weight-only int8 change the model? Logits and bytes, int8 against float.

    .venv/bin/python benchmarks/quantize_error.py [--tokens 128] [--batch 2] [--figure PATH.png]

One random model of the 7B's proportions, shrunk (dim 512, 8 layers, the 7B's vocabulary of 32,000), saved
in Mistral's format and loaded back with ``load_model(..., quantize="int8")``: the real loading path. Its
weights have a realistic scale: every linear weight has standard deviation 1 / sqrt(fan-in), so each layer
keeps its input's size, as in a trained model, and the logits spread over a few units. Two weight
distributions, since int8 with one scale per row is as good as the row's largest weight is typical:

    gaussian      normal weights
    heavy-tailed  Student's t with 5 degrees of freedom (kurtosis 9), rescaled to the same standard
                  deviation: a few weights far out, as trained models have, stretch their row's scale

Against the float32 model, on the same random tokens: the relative error ||logits - reference|| / ||reference||
and how often the top-1 token agrees; bf16 (the 7B's own dtype) is printed beside int8 for scale. A random
model's logits are nearly tied at the top (32,000 draws of about the same size), so any rounding flips some
top-1 tokens, bf16's too: top-1 agreement here is pessimistic for a trained model. Then the weight bytes,
float against int8, for this model and for the 7B (``memory_plan``, counted on meta).
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import torch

from mistral_mini import ModelArgs, Transformer
from mistral_mini.checkpoint import load_model, save_model
from mistral_mini.memory import format_bytes, memory_plan
from mistral_mini.quantize import weight_errors

ARGS = ModelArgs(dim=512, n_layers=8, head_dim=64, hidden_dim=1792, n_heads=8, n_kv_heads=2, norm_eps=1e-5,
                 vocab_size=32000, sliding_window=4096)


def random_model(args: ModelArgs, heavy_tailed: bool, seed: int = 0) -> Transformer:
    """Weights of standard deviation 1 / sqrt(fan-in) (embeddings 1), norms around 1."""
    torch.manual_seed(seed)
    model = Transformer(args)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.8, 1.2)
                continue
            unit = student_t5(p.shape) if heavy_tailed else torch.randn(p.shape)
            p.copy_(unit if "tok_embeddings" in name else unit / p.shape[-1] ** 0.5)
    return model.eval()


def student_t5(shape: torch.Size) -> torch.Tensor:
    """Student's t with 5 degrees of freedom, scaled to unit variance: z / sqrt(chi2_5 / 5) / sqrt(5 / 3).

    Built from six normals per value, which is much faster than torch.distributions.StudentT's gamma sampler.
    """
    chi2_over_5 = torch.randn(5, *shape).pow(2).mean(0)
    return torch.randn(shape) / chi2_over_5.sqrt() / (5 / 3) ** 0.5


def compare(reference: torch.Tensor, logits: torch.Tensor) -> tuple[float, float]:
    """(relative error, top-1 agreement) of logits [B, T, V] against the reference's."""
    error = float((logits - reference).norm() / reference.norm())
    agree = float((logits.argmax(-1) == reference.argmax(-1)).float().mean())
    return error, agree


def model_bytes(model: Transformer) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def measure(heavy_tailed: bool, tokens: torch.Tensor, folder: str) -> dict:
    model = random_model(ARGS, heavy_tailed)
    save_model(model, folder)
    with torch.no_grad():
        reference = model(tokens)
        variants = {
            "bf16": copy.deepcopy(model).to(torch.bfloat16),
            "int8 weights, float32 activations": load_model(folder, progress=False, quantize="int8"),
            "int8 weights, bf16 activations": load_model(folder, dtype=torch.bfloat16, progress=False,
                                                         quantize="int8"),
        }
        results = {label: compare(reference, m(tokens)) for label, m in variants.items()}
    errors = weight_errors(model)
    flat = [e for values in errors.values() for e in values]
    return {"results": results, "logit_std": float(reference.std()), "errors": errors,
            "weight_error": (min(flat), sum(flat) / len(flat), max(flat)),
            "bytes": (model_bytes(variants["bf16"]), model_bytes(variants["int8 weights, bf16 activations"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=2, help="sequences")
    parser.add_argument("--figure", help="save the per-layer weight error figure (heavy-tailed model) to this PNG")
    options = parser.parse_args()
    tokens = torch.randint(0, ARGS.vocab_size, (options.batch, options.tokens),
                           generator=torch.Generator().manual_seed(1))
    print(f"model: {ARGS}\ntokens: {options.batch} x {options.tokens}, reference: the float32 model\n")
    for heavy_tailed in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            m = measure(heavy_tailed, tokens, folder)
        lo, mean, hi = m["weight_error"]
        print(f"{'heavy-tailed' if heavy_tailed else 'gaussian'} weights (reference logits: std "
              f"{m['logit_std']:.2f}); int8 weight error ||W - deq(q(W))|| / ||W||: mean {mean:.2%} "
              f"(min {lo:.2%}, max {hi:.2%})")
        for label, (error, agree) in m["results"].items():
            print(f"  {label:36} logits relative error {error:7.3%}   top-1 agreement {agree:7.2%}")
        bf16, int8 = m["bytes"]
        print(f"  weight bytes: bf16 {format_bytes(bf16)}, int8 {format_bytes(int8)} ({int8 / bf16:.3f}x)\n")
    args_7b = ModelArgs.from_name("mistral-7b")
    for dtype in (torch.bfloat16, torch.float32):
        full, int8 = memory_plan(args_7b, dtype), memory_plan(args_7b, dtype, quantize="int8")
        print(f"Mistral 7B, {dtype}: weights {full.weights_bytes / 1e9:.2f} GB -> int8 "
              f"{int8.weights_bytes / 1e9:.2f} GB ({int8.weights_bytes / full.weights_bytes:.3f}x); "
              f"with one sequence's cache: {int8}")
    if options.figure:
        from mistral_mini.lessons import viz

        fig = viz.quantization_error_figure(m["errors"], title="int8 weight error per layer "
                                            f"(random heavy-tailed model, dim {ARGS.dim})")
        fig.savefig(options.figure, dpi=120)
        print(f"figure: {options.figure}")


if __name__ == "__main__":
    main()
