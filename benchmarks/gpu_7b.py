"""Mistral 7B's shapes on one GPU: loading, a 32K-token prefill, decoding, and transformers for comparison.

    python benchmarks/gpu_7b.py [--dir DIR] [--prompt-tokens 32768] [--new-tokens 256] [--chunk-size 4096]
    python benchmarks/gpu_7b.py --tiny    # the same pipeline, small config, on the CPU: a dry run

1. Writes a random checkpoint with the real shapes in Mistral's format (params.json + a 14.5 GB bf16
   consolidated.safetensors) to local disk, one tensor at a time, each generated on the GPU.
2. Loads it with ``load_model(device="cuda", dtype=choose_dtype(...))``: bf16 from Ampere on, fp16 before.
3. Prefills a 32,768-token prompt in chunks through the rolling-buffer cache, then decodes 256 tokens
   greedily, eager and then compiled (``compiled_step``: torch.compile and a CUDA graph) from the same cache
   state, and prints tokens/s, the share of the bandwidth bound, peak GPU memory and the cache's size as soon
   as they are measured. The bound: a decode step reads every weight and the whole rolling cache once, so
   it cannot take less than (weight bytes + cache bytes) / memory bandwidth, measured here by a large copy.
4. Moves our weights to host memory (about 15 GB of RAM) and frees the GPU, then hands them to transformers'
   MistralForCausalLM (sdpa attention), which builds its own copy on the GPU, and times the same work.
   Running out of GPU memory in 3 or 4 is reported as a line, and what was measured before stays printed.

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
from functools import partial
from pathlib import Path

import torch

from mistral_mini import ModelArgs, RollingBufferCache, Transformer
from mistral_mini.checkpoint import load_model
from mistral_mini.checkpoint_reader import MISTRAL_PARAMS, MISTRAL_WEIGHTS
from mistral_mini.generation import compiled_step, decode_step, prefill
from mistral_mini.gpu import choose_dtype, gpu_problem, preflight
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
    device = torch.device("cuda")
    return Setup(ModelArgs.from_name("mistral-7b"), device, choose_dtype(device),
                 options.prompt_tokens, options.new_tokens, options.chunk_size)


def tiny_setup() -> Setup:
    """A prompt many windows long, as in the real run, on a model that runs in seconds on a CPU."""
    args, device = dataclasses.replace(ModelArgs.from_name("tiny"), sliding_window=32), torch.device("cpu")
    return Setup(args, device, choose_dtype(device), prompt_tokens=256, new_tokens=16, chunk_size=64)


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
        saved = cache.keys.clone(), cache.values.clone()  # to decode again from the same state

        def decode(step: Callable | None) -> tuple[list[int], float]:
            cache.keys.copy_(saved[0])
            cache.values.copy_(saved[1])
            cache.advance(setup.prompt_tokens - cache.position)  # back to the end of the prompt
            clock = Clock(setup.device)
            tokens = greedy(logits, lambda token: decode_step(model, token, cache, step), setup.new_tokens)
            return tokens, clock.seconds()

        tokens, decode_s = decode(None)
        say(f"  decode, eager: {setup.new_tokens} tokens in {decode_s:.1f} s")
        step = compiled_step(model, cache)
        _, first_s = decode(step)  # compiles, and on a GPU records the CUDA graph
        say(f"  decode, compiled: first run (compiling) {first_s:.1f} s")
        compiled_tokens, compiled_s = decode(step)
        say(f"  decode, compiled: {setup.new_tokens} tokens in {compiled_s:.1f} s")
    return {"prefill_s": prefill_s, "decode_s": decode_s, "tokens": tokens, "cache_bytes": cache.nbytes,
            "compiled_s": compiled_s, "compiled_same": compiled_tokens == tokens}


def copy_bandwidth(device: torch.device, nbytes: int = 2**30) -> float:
    """Bytes per second that a large device-to-device copy moves (read + write): the bound's bandwidth."""
    source = torch.empty(nbytes, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)  # warm-up
    clock, repeats = Clock(device), 5
    for _ in range(repeats):
        target.copy_(source)
    return 2 * nbytes * repeats / clock.seconds()


def bandwidth_share(figures: dict, model_bytes: int, setup: Setup) -> str:
    """How close each decode run came to the bound: (weights + cache read per token) / bandwidth."""
    bandwidth = copy_bandwidth(setup.device)
    bound_s = (model_bytes + figures["cache_bytes"]) / bandwidth
    eager_s = figures["decode_s"] / setup.new_tokens
    compiled_s = figures["compiled_s"] / setup.new_tokens
    return (f"bandwidth (copy) {bandwidth / 1e9:,.0f} GB/s, so a token reads {format_bytes(model_bytes)} of "
            f"weights + {format_bytes(figures['cache_bytes'])} of cache in at least {1000 * bound_s:.2f} ms "
            f"({1 / bound_s:,.0f} tokens/s): eager {1000 * eager_s:.2f} ms/token = {bound_s / eager_s:.0%} "
            f"of the bound, compiled {1000 * compiled_s:.2f} ms/token = {bound_s / compiled_s:.0%}")


# --- 4. transformers on the same weights ------------------------------------------------------------------

def run_transformers(state: dict[str, torch.Tensor], prompt: torch.Tensor, setup: Setup) -> dict | None:
    """transformers' MistralForCausalLM (sdpa) with our weights: same prompt, chunks and greedy decode.

    transformers builds its own (randomly initialized) model on the device, then copies our weights in from
    ``state`` (in host memory), which is emptied. The peak memory reported starts after that hand-over.
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


# --- The whole run ---------------------------------------------------------------------------------------

def benchmark(setup: Setup, folder: Path) -> None:
    start = time.perf_counter()
    say(f"device: {device_name(setup.device)}; {setup.args.n_layers} layers x dim {setup.args.dim}, random "
        f"{setup.dtype} weights (choose_dtype)")
    if setup.device.type == "cuda":
        free = torch.cuda.mem_get_info(setup.device)[0]
        say(f"preflight: {preflight(setup.args, setup.dtype, free, setup.chunk_size)}")
    say(f"[{time.perf_counter() - start:5.0f} s] 1. writing a random checkpoint to {folder}")
    clock = Clock(setup.device)
    write_random_checkpoint(folder, setup)
    size = (folder / MISTRAL_WEIGHTS).stat().st_size
    say(f"checkpoint written       {size / 1e9:.2f} GB in {clock.seconds():.1f} s")

    say(f"[{time.perf_counter() - start:5.0f} s] 2. load_model(device={str(setup.device)!r}, dtype={setup.dtype})")
    reset_peak_memory(setup.device)
    clock = Clock(setup.device)
    model = load_model(folder, device=setup.device, dtype=setup.dtype, progress=True)
    load_s = clock.seconds()
    say(f"load_model               {load_s:.1f} s ({size / 1e9 / load_s:.2f} GB/s)")

    say(f"[{time.perf_counter() - start:5.0f} s] 3. our model: prefill in chunks of {setup.chunk_size}, "
        f"then {setup.new_tokens} greedy tokens")
    prompt = torch.randint(0, setup.args.vocab_size, (setup.prompt_tokens,),
                           generator=torch.Generator().manual_seed(1)).to(setup.device)
    ours = measured("mistral_mini", partial(run_ours, model, prompt, setup), setup)
    if ours is not None:
        new = setup.new_tokens
        say(f"mistral_mini compiled    decode {new} tokens: {new / ours['compiled_s']:.1f} tokens/s "
            f"({ours['compiled_s']:.1f} s); same tokens as eager: {ours['compiled_same']}")
        model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        say(f"bandwidth bound          {bandwidth_share(ours, model_bytes, setup)}")
        say(f"rolling cache            {ours['cache_bytes'] / 2**20:,.4g} MiB (a full cache of "
            f"{setup.prompt_tokens:,} tokens would be {full_cache_bytes(setup) / 2**20:,.4g} MiB)")

    say(f"[{time.perf_counter() - start:5.0f} s] 4. transformers' MistralForCausalLM (sdpa), same weights")
    state = model.state_dict()
    del model  # ``state`` alone holds the weights now; each moves to host memory, freeing its GPU copy
    for name in state:
        state[name] = state[name].cpu()
    free_memory(setup.device)
    reference = measured("transformers (sdpa)", partial(run_transformers, state, prompt, setup), setup)
    if ours is not None and reference is not None:
        same = sum(a == b for a, b in zip(ours["tokens"], reference["tokens"], strict=True))
        say(f"greedy tokens equal to transformers': {same}/{len(ours['tokens'])}"
            + (" (16-bit rounding differs between the two, so a long greedy run may part ways)"
               if setup.dtype.itemsize == 2 else ""))
    say(f"[{time.perf_counter() - start:5.0f} s] done")


def measured(label: str, run: Callable[[], dict | None], setup: Setup) -> dict | None:
    """Run one implementation and print its line at once; running out of GPU memory is a line too."""
    try:
        figures = run()
    except torch.OutOfMemoryError as err:
        first_line = str(err).splitlines()[0]
        say(f"{label:24} out of GPU memory ({first_line}); no figures")
        figures = None
    free_memory(setup.device)  # after an error too: what the failed run held is garbage now
    if figures is not None:
        n, new = setup.prompt_tokens, setup.new_tokens
        say(f"{label:24} prefill {n:,} tokens: {n / figures['prefill_s']:,.0f} tokens/s "
            f"({figures['prefill_s']:.1f} s); decode {new} tokens: {new / figures['decode_s']:.1f} tokens/s "
            f"({figures['decode_s']:.1f} s); peak GPU memory {peak_memory(setup.device)}")
    return figures


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


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
        needed = preflight(ModelArgs.from_name("mistral-7b"), torch.bfloat16, 0, options.chunk_size).total_bytes
        say(f"No CUDA GPU, so there is nothing to measure here: {gpu_problem()}. This benchmark needs a GPU with "
            f"{format_bytes(needed)} free (the preflight, in bf16 or fp16 at chunk {options.chunk_size}) and 15 GB "
            "of disk. For a dry run of the same pipeline on the CPU: python benchmarks/gpu_7b.py --tiny")
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
