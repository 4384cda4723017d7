"""Loading, saving and converting checkpoints, in Mistral's format or Hugging Face's.

Loading never holds the weights twice. The model is built on the ``meta`` device (shapes, no memory), the
file headers are checked against it (every name, every shape) before any data is read, then each tensor is
read on its own (``checkpoint_reader``), moved to its device and dtype, and handed over with
``load_state_dict(assign=True)``, which adopts the tensor instead of copying it into one allocated beforehand.
With ``quantize="int8"`` the meta model's linear layers become ``Int8Linear`` first, and each of their weights
is quantized as it arrives.

Command line: ``python -m mistral_mini.checkpoint convert HF_DIR OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from .checkpoint_reader import MISTRAL_PARAMS, MISTRAL_WEIGHTS, CheckpointReader, some_names
from .gpu import preflight
from .memory import format_bytes, meta_model
from .quantize import Int8Linear, check_quantize, quantize_entry, quantize_model, quantized_weight_names
from .safetensors_format import replacing, write_safetensors
from .transformer import Transformer


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               progress: bool = True, quantize: str | None = None) -> Transformer:
    """Load a checkpoint folder in Mistral's or Hugging Face's layout; return the Transformer in eval mode.

    dtype: convert every weight to it (torch.bfloat16 halves float32); None keeps the checkpoint's dtype.
    device: where the weights go, read one tensor at a time so that host memory holds them only once.
    progress: a progress bar over the bytes read.
    quantize: None, or "int8" to store the linear layers' weights in 8 bits with a float32 scale per output
      row (``mistral_mini.quantize``): about half of bf16, 7.4 GB for the 7B. Each weight is quantized on
      ``device`` right after it is read, so neither the host nor the device ever holds the float model;
      ``dtype`` then applies to the embedding, the norms and the activations.

    Everything is checked before any weight is read: the arguments, the config against the tensors (names and
    shapes) and, for a GPU, that the weights, a one-sequence cache and the activations of a prefill chunk fit
    in its free memory (``gpu.preflight``).
    """
    check_quantize(quantize)
    device = torch.device(device)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError("dtype must be a floating-point torch.dtype such as torch.bfloat16, or None to keep the "
                        f"checkpoint's, got {dtype!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} asks for a CUDA GPU, but torch finds none "
                           "(torch.cuda.is_available() is False: no GPU, no driver, or a CPU-only torch build). "
                           "Load on the CPU with device='cpu'.")
    with CheckpointReader(path) as checkpoint:
        model = meta_model(checkpoint.args)
        checkpoint.check({name: t.shape for name, t in model.state_dict().items()})
        if quantize == "int8":
            quantize_model(model)  # on meta: Int8Linear layers (int8 weight + scale) waiting for their data
        if device.type == "cuda":
            _check_fits_on_gpu(checkpoint, device, dtype, quantize)
        state = _read_all(checkpoint, device, dtype, progress, quantized_weight_names(model))
    model.load_state_dict(state, strict=True, assign=True)
    still_meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:  # a tensor that is computed, not stored, would have to be created here
        raise RuntimeError(f"after loading, these tensors are still on meta (hold no data): {still_meta}")
    return model.eval()


def _check_fits_on_gpu(checkpoint: CheckpointReader, device: torch.device, dtype: torch.dtype | None,
                       quantize: str | None) -> None:
    """``gpu.preflight``: weights, one sequence's cache, the activations of a prefill chunk of W tokens (what
    ``generate`` uses) and an allowance for CUDA's own needs, against the GPU's free memory."""
    free, total = torch.cuda.mem_get_info(device)
    check = preflight(checkpoint.args, dtype or checkpoint.dtype, free, quantize=quantize)
    if not check.fits:
        raise RuntimeError(
            f"{checkpoint.files.folder} does not fit on {device} ({format_bytes(total)} in all): {check}. "
            "Load in bfloat16 (dtype=torch.bfloat16, half of float32) or with quantize='int8' (about half of "
            "bf16), free other GPU memory, or load on the CPU with device='cpu'.")


def _read_all(checkpoint: CheckpointReader, device: torch.device, dtype: torch.dtype | None,
              progress: bool, quantized: set[str]) -> dict[str, torch.Tensor]:
    """Every tensor, read and moved one at a time: host memory holds at most one beyond what is kept.

    The weights named in ``quantized`` become int8 + scale on the device right after the move, from the stored
    values (converting them to ``dtype`` first would only add a rounding): one float matrix at a time.
    """
    state = {}
    with tqdm(total=checkpoint.nbytes, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"loading {checkpoint.files.folder.name}", disable=not progress) as bar:
        for name, stored in checkpoint.tensors.items():
            if name in quantized:
                state.update(quantize_entry(name, checkpoint.read(name).to(device=device)))
            else:
                state[name] = checkpoint.read(name).to(device=device, dtype=dtype)
            bar.update(stored.nbytes)
    return state


def save_model(model: Transformer, path: str | Path) -> Path:
    """Write ``model`` in Mistral's format: ``path/params.json`` + ``path/consolidated.safetensors``."""
    if not isinstance(model, Transformer):
        raise TypeError(f"save_model expects a mistral_mini Transformer, got {type(model).__name__}")
    if any(isinstance(module, Int8Linear) for module in model.modules()):
        raise ValueError("save_model writes float checkpoints, and this model's linear layers are int8; save the "
                         "float model and quantize when loading: load_model(path, quantize='int8')")
    state = model.state_dict()
    on_meta = [name for name, t in state.items() if t.is_meta]
    if on_meta:
        raise ValueError(f"the model has no data to save: {some_names(on_meta)} are on the meta device")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / MISTRAL_WEIGHTS, state, state.__getitem__)
    _write_json(folder / MISTRAL_PARAMS, model.args.to_dict())
    return folder


def _write_json(path: Path, value: dict) -> None:
    with replacing(path) as f:
        f.write(json.dumps(value, indent=2).encode() + b"\n")


def convert_checkpoint(source: str | Path, target: str | Path, dtype: torch.dtype | None = None,
                       progress: bool = True) -> Path:
    """Rewrite a checkpoint (Hugging Face's, or any layout load_model reads) in Mistral's format.

    Streams: each tensor is read, renamed, un-permuted and written before the next is read.
    """
    target = Path(target)
    with CheckpointReader(source) as checkpoint:
        checkpoint.check({name: t.shape for name, t in meta_model(checkpoint.args).state_dict().items()})
        layout = {name: torch.empty(stored.shape, dtype=dtype or stored.dtype, device="meta")
                  for name, stored in checkpoint.tensors.items()}
        target.mkdir(parents=True, exist_ok=True)
        write_safetensors(target / MISTRAL_WEIGHTS, layout, lambda name: checkpoint.read(name).to(dtype=dtype),
                          progress)
        _write_json(target / MISTRAL_PARAMS, checkpoint.args.to_dict())
    return target


def main(argv: list[str] | None = None) -> None:
    """``python -m mistral_mini.checkpoint convert HF_DIR OUT_DIR``"""
    parser = argparse.ArgumentParser(prog="python -m mistral_mini.checkpoint",
                                     description="Tools for Mistral checkpoints.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="rewrite a Hugging Face checkpoint as Mistral's params.json + consolidated.safetensors")
    convert.add_argument("source", help="folder with config.json + model.safetensors or sharded "
                                        "model-XXXXX-of-YYYYY.safetensors (any layout load_model reads)")
    convert.add_argument("target", help="folder to write params.json and consolidated.safetensors into")
    convert.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                         help="store the weights in this dtype (default: as stored in the source)")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    options = parser.parse_args(argv)
    dtype = getattr(torch, options.dtype) if options.dtype else None
    try:
        target = convert_checkpoint(options.source, options.target, dtype, progress=not options.quiet)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from err
    print(f"wrote {target / MISTRAL_PARAMS} and {target / MISTRAL_WEIGHTS}")


if __name__ == "__main__":
    main()
