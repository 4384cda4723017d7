"""Running on a GPU: which dtype, whether the model fits, and why a run falls back to something smaller.

Everything here is a small function of what torch reports (``torch.version.cuda``, the device's compute
capability, ``torch.cuda.mem_get_info``) and of counts made on ``meta`` (``memory.py``), so the same code
answers on a machine without a GPU, and tests can pretend to be any GPU.

The preflight adds up, before a byte is allocated::

    weights + rolling cache (memory_plan) + activations of one prefill chunk (activation_bytes) + allowance
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint_reader import CheckpointError, find_checkpoint, read_args
from .config import ModelArgs
from .memory import MemoryPlan, activation_bytes, format_bytes, memory_plan

# What the GPU needs beyond the tensors we count. torch.cuda.mem_get_info reports free memory after torch
# has created its CUDA context, so the context itself is already out of it; what comes later is not:
# kernels loaded on first use (CUDA loads modules lazily), cuBLAS's workspace, and the caching allocator's
# rounding of blocks and the fragmentation between chunks of different sizes. 1 GiB is a round margin for
# these, not a measurement.
CUDA_ALLOWANCE = 2**30

INSTALL_CUDA_TORCH = (".venv/bin/pip install torch==" + torch.__version__.split("+")[0]
                      + " --index-url https://download.pytorch.org/whl/cu128")


def choose_dtype(device: str | torch.device) -> torch.dtype:
    """float32 on the CPU; on a GPU bfloat16 where it is native (compute capability 8.0, Ampere, or newer),
    else float16.

    Before Ampere (a T4 is 7.5, a V100 7.0) the tensor cores multiply fp16 but not bf16, and PyTorch's fused
    attention kernels take bf16 only from 8.0 on: bf16 there falls back to the math kernel, which holds the
    scores. fp16 has bf16's 2 bytes and both kernels, at the price of a narrower range (at most 65,504).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return torch.float32
    if torch.version.hip or torch.cuda.get_device_capability(device) >= (8, 0):  # AMD GPUs: bf16 throughout
        return torch.bfloat16
    return torch.float16


def gpu_problem() -> str | None:
    """Why torch cannot use a CUDA GPU on this machine, or None when it can."""
    if torch.version.cuda is None and not torch.version.hip:
        return (f"this torch ({torch.__version__}) is a CPU-only build (torch.version.cuda is None). With an "
                f"NVIDIA GPU and its driver, install a CUDA build of the same version: {INSTALL_CUDA_TORCH}")
    if not torch.cuda.is_available():
        return (f"torch is built for CUDA {torch.version.cuda or torch.version.hip} but sees no GPU "
                "(torch.cuda.is_available() is False): no GPU, no driver (does nvidia-smi list one?), or "
                "CUDA_VISIBLE_DEVICES hides it")
    return None


@dataclass(frozen=True)
class Preflight:
    """What one sequence needs on a GPU, against what the GPU has free."""

    dtype: torch.dtype
    chunk_size: int
    plan: MemoryPlan  # weights and one rolling cache
    activation_bytes: int  # one prefill chunk of chunk_size tokens
    free_bytes: int
    int8_bytes: int | None = None  # the same with quantize="int8"; None when already quantized
    allowance_bytes: int = CUDA_ALLOWANCE

    @property
    def total_bytes(self) -> int:
        return self.plan.total_bytes + self.activation_bytes + self.allowance_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.free_bytes

    @property
    def fits_int8(self) -> bool:
        """Would it fit with quantize="int8"? (False when the plan is already int8 and does not fit.)"""
        return self.fits or (self.int8_bytes is not None and self.int8_bytes <= self.free_bytes)

    def __str__(self) -> str:
        name = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "float32"}.get(self.dtype, self.dtype)
        what = f"{name} with int8 weights" if self.plan.quantize else name
        text = (f"{what} needs {format_bytes(self.total_bytes)} (weights {format_bytes(self.plan.weights_bytes)} + "
                f"cache {format_bytes(self.plan.cache_bytes)} + activations {format_bytes(self.activation_bytes)} "
                f"at chunk {self.chunk_size} + allowance {format_bytes(self.allowance_bytes)}); this card has "
                f"{format_bytes(self.free_bytes)} free")
        if not self.fits and self.int8_bytes is not None:
            text += (f"; int8 would need {format_bytes(self.int8_bytes)}: load_model(..., quantize='int8')"
                     + ("" if self.int8_bytes <= self.free_bytes else ", which does not fit either"))
        return text


def preflight(args: ModelArgs, dtype: torch.dtype, free_bytes: int, chunk_size: int | None = None,
              quantize: str | None = None) -> Preflight:
    """Will the model, one sequence's cache and a prefill chunk fit in ``free_bytes``? Counted on meta.

    chunk_size: prompt tokens per prefill call; None means the window, as ``generate`` does.
    """
    chunk_size = args.sliding_window if chunk_size is None else chunk_size
    int8_bytes = None
    if quantize is None:
        int8 = preflight(args, dtype, free_bytes, chunk_size, quantize="int8")
        int8_bytes = int8.total_bytes
    return Preflight(dtype=dtype, chunk_size=chunk_size, plan=memory_plan(args, dtype, quantize=quantize),
                     activation_bytes=activation_bytes(args, chunk_size, dtype, quantize),
                     free_bytes=free_bytes, int8_bytes=int8_bytes)


def fallback_reason(model_dir: str | Path | None, allow_cpu: bool = False) -> str | None:
    """Why the real weights in ``model_dir`` cannot run here, or None when they can; the first reason found.

    In this order: no weights (``model_dir`` is None, or not a checkpoint folder); no usable GPU (unless
    ``allow_cpu``); not enough free GPU memory in ``choose_dtype``'s dtype, by ``preflight``, even with int8
    weights (``choose_quantize`` says when those are needed). ``~`` in ``model_dir`` means the home folder.
    """
    if model_dir is None:
        return ("MISTRAL_MODEL_DIR is not set: point it at a folder with the weights "
                "(export MISTRAL_MODEL_DIR=~/models/mistral-7b) before starting Jupyter")
    folder = Path(model_dir).expanduser()
    try:
        args = read_args(find_checkpoint(folder))
    except (FileNotFoundError, CheckpointError) as err:
        return f"MISTRAL_MODEL_DIR is not a checkpoint folder: {err}"
    problem = gpu_problem()
    if problem is not None:
        return None if allow_cpu else problem + "; set MISTRAL_ALLOW_CPU=1 to run the weights on the CPU anyway"
    check = _gpu_preflight(args)
    return None if check.fits_int8 else f"not enough GPU memory: {check}"


def choose_quantize(model_dir: str | Path) -> str | None:
    """None when the checkpoint in ``model_dir`` fits the GPU as it is; "int8" when only 8-bit weights fit.

    On a machine without a usable GPU, None: the CPU has the memory it has, and int8 would not make it faster.
    """
    if gpu_problem() is not None:
        return None
    check = _gpu_preflight(read_args(find_checkpoint(Path(model_dir).expanduser())))
    return None if check.fits else "int8"


def _gpu_preflight(args: ModelArgs) -> Preflight:
    device = torch.device("cuda")
    return preflight(args, choose_dtype(device), torch.cuda.mem_get_info(device)[0])
