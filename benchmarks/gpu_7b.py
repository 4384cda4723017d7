"""Mistral 7B's shapes on one GPU: loading, a 32K-token prefill, decoding, and transformers for comparison.

    python benchmarks/gpu_7b.py [--dir DIR] [--prompt-tokens 32768] [--new-tokens 256] [--chunk-size 4096]
    python benchmarks/gpu_7b.py --tiny    # the same pipeline, small config, on the CPU: a dry run

1. Writes a random checkpoint with the real shapes in Mistral's format (params.json + a 14.5 GB bf16
   consolidated.safetensors) to local disk, one tensor at a time, each generated on the GPU.
2. Loads it with ``load_model(device="cuda", dtype=torch.bfloat16)``.
3. Prefills a 32,768-token prompt in chunks through the rolling-buffer cache, then decodes 256 tokens
   greedily, and reports tokens/s, peak GPU memory and the cache's size.
4. Hands the same weights to transformers' MistralForCausalLM (sdpa attention) and times the same work.

Random weights say nothing about quality, only about speed and memory, which do not depend on the values.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mistral_mini import ModelArgs, RollingBufferCache, Transformer
from mistral_mini.checkpoint import load_model
from mistral_mini.checkpoint_reader import MISTRAL_PARAMS, MISTRAL_WEIGHTS
from mistral_mini.generation import decode_step, prefill
from mistral_mini.hf import hf_config_from_args, mistral_state_dict_to_hf
from mistral_mini.memory import format_bytes, memory_plan, meta_model
from mistral_mini.safetensors_format import write_safetensors


@dataclasses.dataclass(frozen=True)
class Setup:
    args: ModelArgs
    device: torch.device
    dtype: torch.dtype
    prompt_tokens: int
    new_tokens: int
    chunk_size: int


def real_setup(options: argparse.Namespace) -> Setup:
    return Setup(ModelArgs.from_name("mistral-7b"), torch.device("cuda"), torch.bfloat16,
                 options.prompt_tokens, options.new_tokens, options.chunk_size)


def tiny_setup() -> Setup:
    """A prompt many windows long, as in the real run, on a model that runs in seconds on a CPU."""
    args = dataclasses.replace(ModelArgs.from_name("tiny"), sliding_window=32)
    return Setup(args, torch.device("cpu"), torch.float32, prompt_tokens=256, new_tokens=16, chunk_size=64)


class Clock:
    """Wall-clock seconds, waiting for the GPU's queued work first so that it is counted."""

    def __init__(self, device: torch.device):
        self.device, self.start = device, time.perf_counter()

    def seconds(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.start


def say(message: str) -> None:
    print(message, flush=True)


# --- 1. A random checkpoint -------------------------------------------------------------------------------

def random_weight(name: str, like: torch.Tensor, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """Norm gains of 1, embeddings ~ N(0, 1), matrices ~ N(0, 1/fan_in): activations keep their scale."""
    if name.endswith("norm.weight"):
        return torch.ones(like.shape, dtype=like.dtype, device=device)
    std = 1.0 if name.startswith("tok_embeddings") else like.shape[-1] ** -0.5
    return torch.empty(like.shape, dtype=like.dtype, device=device).normal_(0.0, std, generator=generator)


def write_random_checkpoint(folder: Path, setup: Setup) -> None:
    layout = {name: torch.empty(t.shape, dtype=setup.dtype, device="meta")
              for name, t in meta_model(setup.args).state_dict().items()}
    needed = sum(t.numel() * t.element_size() for t in layout.values())
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise SystemExit(f"{folder} has {format_bytes(free)} free, the checkpoint needs {format_bytes(needed)}: "
                         "pass --dir on a larger disk")
    generator = torch.Generator(device=setup.device).manual_seed(0)
    write_safetensors(folder / MISTRAL_WEIGHTS, layout,
                      lambda name: random_weight(name, layout[name], setup.device, generator), progress=True)
    (folder / MISTRAL_PARAMS).write_text(json.dumps(setup.args.to_dict(), indent=2))


# --- 2-3. Our model ---------------------------------------------------------------------------------------

def greedy(first_logits: torch.Tensor, step: Callable[[int], torch.Tensor], n: int) -> list[int]:
    """The first token from the prefill's logits, then n decode steps, each feeding the last token."""
    tokens = [int(first_logits.argmax())]
    for _ in range(n):
        tokens.append(int(step(tokens[-1]).argmax()))
    return tokens


def run_ours(model: Transformer, prompt: torch.Tensor, setup: Setup) -> dict:
    cache = RollingBufferCache(setup.args, batch_size=1, device=setup.device, dtype=setup.dtype)
    with torch.inference_mode():
        clock = Clock(setup.device)
        logits = prefill(model, prompt, cache, setup.chunk_size)
        prefill_s = clock.seconds()
        say(f"  prefill: {setup.prompt_tokens:,} tokens in {prefill_s:.1f} s")
        clock = Clock(setup.device)
        tokens = greedy(logits, lambda token: decode_step(model, token, cache), setup.new_tokens)
        decode_s = clock.seconds()
    say(f"  decode: {setup.new_tokens} tokens in {decode_s:.1f} s")
    return {"prefill_s": prefill_s, "decode_s": decode_s, "tokens": tokens, "cache_bytes": cache.nbytes}


# --- 4. transformers on the same weights ------------------------------------------------------------------

def run_transformers(state: dict[str, torch.Tensor], prompt: torch.Tensor, setup: Setup) -> dict | None:
    """transformers' MistralForCausalLM (sdpa) with our weights: same prompt, chunks and greedy decode.

    transformers builds its own (randomly initialized) model on the device, then copies our weights in; ``state``
    is emptied so that ours are freed. The peak memory reported starts after that hand-over.
    """
    try:
        from transformers import AutoModelForCausalLM, DynamicCache, MistralConfig
    except ImportError:
        say("transformers is not installed: no reference figures")
        return None
    config = MistralConfig(**hf_config_from_args(setup.args))
    with torch.device(setup.device):
        reference = AutoModelForCausalLM.from_config(config, dtype=setup.dtype, attn_implementation="sdpa")
    missing, unexpected = reference.load_state_dict(mistral_state_dict_to_hf(state, setup.args), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    state.clear()
    free_memory(setup.device)
    reset_peak_memory(setup.device)  # from here on: transformers' weights, its cache and activations
    reference.eval()
    cache = DynamicCache(config=config)

    def forward(ids: torch.Tensor) -> torch.Tensor:
        return reference(input_ids=ids[None], cache=cache, use_cache=True, logits_to_keep=1).logits[0, -1]

    with torch.inference_mode():
        clock = Clock(setup.device)
        for start in range(0, setup.prompt_tokens, setup.chunk_size):
            logits = forward(prompt[start:start + setup.chunk_size])
        prefill_s = clock.seconds()
        say(f"  prefill: {setup.prompt_tokens:,} tokens in {prefill_s:.1f} s")
        clock = Clock(setup.device)
        tokens = greedy(logits, lambda token: forward(torch.tensor([token], device=setup.device)),
                        setup.new_tokens)
        decode_s = clock.seconds()
    say(f"  decode: {setup.new_tokens} tokens in {decode_s:.1f} s")
    return {"prefill_s": prefill_s, "decode_s": decode_s, "tokens": tokens}


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_memory(device: torch.device) -> str:
    return format_bytes(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else "n/a (CPU)"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# --- The whole run ----------------------------------------------------------------------------------------

def benchmark(setup: Setup, folder: Path) -> None:
    start = time.perf_counter()
    say(f"device: {device_name(setup.device)}; plan in {setup.dtype}: {memory_plan(setup.args, setup.dtype)}")
    say(f"[{time.perf_counter() - start:5.0f} s] 1. writing a random checkpoint to {folder}")
    clock = Clock(setup.device)
    write_random_checkpoint(folder, setup)
    size = (folder / MISTRAL_WEIGHTS).stat().st_size
    write_s = clock.seconds()

    say(f"[{time.perf_counter() - start:5.0f} s] 2. load_model(device={str(setup.device)!r}, dtype={setup.dtype})")
    reset_peak_memory(setup.device)
    clock = Clock(setup.device)
    model = load_model(folder, device=setup.device, dtype=setup.dtype, progress=True)
    load_s = clock.seconds()

    say(f"[{time.perf_counter() - start:5.0f} s] 3. our model: prefill in chunks of {setup.chunk_size}, "
        f"then {setup.new_tokens} greedy tokens")
    prompt = torch.randint(0, setup.args.vocab_size, (setup.prompt_tokens,),
                           generator=torch.Generator().manual_seed(1)).to(setup.device)
    ours = run_ours(model, prompt, setup)
    ours["peak"] = peak_memory(setup.device)

    say(f"[{time.perf_counter() - start:5.0f} s] 4. transformers' MistralForCausalLM (sdpa), same weights")
    state = model.state_dict()
    del model  # our Transformer and its cache are gone; ``state`` alone holds the weights until handed over
    free_memory(setup.device)
    reference = run_transformers(state, prompt, setup)
    if reference is not None:
        reference["peak"] = peak_memory(setup.device)
    say(f"[{time.perf_counter() - start:5.0f} s] done")
    report(setup, size, write_s, load_s, ours, reference)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def report(setup: Setup, size: int, write_s: float, load_s: float, ours: dict, reference: dict | None) -> None:
    n, new = setup.prompt_tokens, setup.new_tokens
    say(f"\n== {device_name(setup.device)}, {setup.args.n_layers} layers x dim {setup.args.dim}, "
        f"random {setup.dtype} weights ==")
    say(f"checkpoint written       {size / 1e9:.2f} GB in {write_s:.1f} s")
    say(f"load_model               {load_s:.1f} s ({size / 1e9 / load_s:.2f} GB/s)")
    for label, run in (("mistral_mini", ours), ("transformers (sdpa)", reference)):
        if run is None:
            continue
        say(f"{label:24} prefill {n:,} tokens: {n / run['prefill_s']:,.0f} tokens/s "
            f"({run['prefill_s']:.1f} s); decode {new} tokens: {new / run['decode_s']:.1f} tokens/s "
            f"({run['decode_s']:.1f} s); peak GPU memory {run['peak']}")
    say(f"rolling cache            {ours['cache_bytes'] / 2**20:,.4g} MiB "
        f"(a full cache of {n:,} tokens would be {full_cache_bytes(setup) / 2**20:,.4g} MiB)")
    if reference is not None:
        same = sum(a == b for a, b in zip(ours["tokens"], reference["tokens"], strict=True))
        say(f"greedy tokens equal to transformers': {same}/{len(ours['tokens'])}"
            + (" (bf16 rounding differs between the two, so a long greedy run may part ways)"
               if setup.dtype == torch.bfloat16 else ""))


def full_cache_bytes(setup: Setup) -> int:
    return memory_plan(dataclasses.replace(setup.args, sliding_window=setup.prompt_tokens), setup.dtype).cache_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="local folder for the checkpoint (default: the system's temp folder)")
    parser.add_argument("--prompt-tokens", type=int, default=32768)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint instead of deleting it")
    parser.add_argument("--tiny", action="store_true", help="dry run: same pipeline, small config, CPU")
    options = parser.parse_args(argv)
    if not options.tiny and not torch.cuda.is_available():
        say("No CUDA GPU: torch.cuda.is_available() is False, so there is nothing to measure here. "
            "This benchmark needs a GPU with about 16 GB free (and 15 GB of disk). For a dry run of the same "
            "pipeline on the CPU: python benchmarks/gpu_7b.py --tiny")
        return 0
    setup = tiny_setup() if options.tiny else real_setup(options)
    folder = Path(tempfile.mkdtemp(prefix="mistral_mini_7b_", dir=options.dir))
    try:
        benchmark(setup, folder)
    finally:
        if options.keep:
            say(f"checkpoint kept in {folder}")
        else:
            shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
