"""How fast is greedy decoding, and does a token cost the same far past the window?

Part 1: tokens/s of greedy generation, a short prompt and 160 new tokens (well past W = 64), for
mistral_mini's ``generate`` and transformers' ``generate`` (sdpa attention, its default) on the same
float32 weights. Both run under ``torch.inference_mode``; the median of a few runs after a warm-up.

Part 2: the time of one decode step at position W/2 and at position 20 W. A prompt is prefilled to that
length, then W/2 consecutive decode steps are timed. The rolling buffer holds W keys in both cases, so
the ratio should stay near 1: past the window a token costs the same however long the text is. Timed in the
same turns: every weight matrix of the model (wq, wk, wv, wo, w1, w2, w3 of each layer, and the output)
times one vector, and nothing else. A decode step must do at least that, so matvecs / step is the share of
a step spent on work no implementation can skip (one token at a time: reading every weight once); the rest
is attention over the cache, norms, RoPE and the overhead of running many small ops.

Part 3: mistral_mini's ``generate`` eager against ``generate(..., compile=True)``, whose decode step runs
under ``torch.compile(fullgraph=True)``: the same ids, and tokens/s once compiled (the first call, which
compiles, is the warm-up and is not timed). On a CPU the gain comes from fused elementwise work; on a GPU
the compiled step is also a CUDA graph (see ``benchmarks/gpu_7b.py``).

    .venv/bin/python benchmarks/decode_speed.py [--new-tokens 160] [--repeats 5] [--threads N]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import MistralForCausalLM

from mistral_mini import ModelArgs, RollingBufferCache, Transformer
from mistral_mini.generation import decode_step, generate, prefill
from mistral_mini.hf import to_transformers

# The 7B's proportions at a CPU's scale: 4 query heads per key/value head, a feed-forward 3.5x the width, the
# real vocabulary. dim 384 and 6 layers: the size at which issue 14 first measured the matvecs' share (82%).
ARGS = ModelArgs(dim=384, n_layers=6, head_dim=32, hidden_dim=1344, n_heads=12, n_kv_heads=3, norm_eps=1e-5,
                 vocab_size=32000, sliding_window=64)
PROMPT = [1, 415, 2936, 9060, 285, 1142, 28705, 13]  # 8 ids: a short prompt


def hf_model(model: Transformer, attn_implementation: str) -> MistralForCausalLM:
    """transformers' Mistral holding ``model``'s weights (Hugging Face names and q/k row layout)."""
    reference = to_transformers(model, attn_implementation)
    reference.generation_config.eos_token_id = None  # never stop early: both generate exactly n tokens
    return reference


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_times(fns: list, repeats: int) -> list[list[float]]:
    """Seconds of ``repeats`` calls of each function, after one warm-up call each.

    The calls take turns (a, b, a, b, ...) so that a burst of load from elsewhere on the machine slows
    both sides alike instead of one of them.
    """
    for fn in fns:
        fn()  # warm-up: allocator, kernel selection, lazy imports
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times, strict=True):
            t.append(seconds(fn))
    return times


def ours_generate(model: Transformer, n: int, compile: bool = False) -> list[int]:
    ids = list(generate(model, PROMPT, max_new_tokens=n, stop_ids=(), compile=compile))
    assert len(ids) == n
    return ids


def hf_generate(reference: MistralForCausalLM, n: int) -> list[int]:
    with torch.inference_mode():
        out = reference.generate(torch.tensor([PROMPT]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                 pad_token_id=0)
    assert out.shape[1] == len(PROMPT) + n
    return out[0, len(PROMPT):].tolist()


def decoder(model: Transformer, position: int):
    """Prefill ``position`` random tokens; return a function that runs and times the next decode step."""
    prompt = torch.randint(0, ARGS.vocab_size, (position,), generator=torch.Generator().manual_seed(0))
    cache = RollingBufferCache(model.args)
    with torch.inference_mode():
        token = int(prefill(model, prompt, cache, chunk_size=ARGS.sliding_window).argmax())

    def step() -> float:
        nonlocal token
        with torch.inference_mode():
            start = time.perf_counter()
            token = int(decode_step(model, token, cache).argmax())  # int() waits for the result
            return time.perf_counter() - start

    return step


def weight_matvecs(model: Transformer):
    """A function that multiplies every weight matrix of ``model`` by a vector, as one decode step must."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    vectors = [torch.randn(1, 1, w.shape[1]) for w in weights]  # [B, T, in], as a decode step feeds them

    def matvecs() -> float:
        with torch.inference_mode():
            start = time.perf_counter()
            for w, x in zip(weights, vectors, strict=True):
                F.linear(x, w)
            return time.perf_counter() - start

    return matvecs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice). On a machine shared with other "
                             "work, 1 thread can beat 2: each parallel op waits for its slowest thread")
    opts = parser.parse_args()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    n = opts.new_tokens
    torch.manual_seed(0)
    model = Transformer(ARGS).eval()
    reference = hf_model(model, "sdpa")

    same = ours_generate(model, n) == hf_generate(reference, n)
    ours, hf = interleaved_times([lambda: ours_generate(model, n), lambda: hf_generate(reference, n)],
                                 opts.repeats)
    t_ours, t_hf = statistics.median(ours), statistics.median(hf)
    W = ARGS.sliding_window
    near, far = decoder(model, W // 2), decoder(model, 20 * W)
    # Steps take turns between the two caches, so that load from elsewhere hits both alike. W/2 steps keep
    # the near one inside its first window: positions W/2 .. W-1 against 20W .. 20W + W/2 - 1.
    matvecs = weight_matvecs(model)
    steps = [(near(), far(), matvecs()) for _ in range(W // 2)]
    t_near, t_far, t_matvecs = (statistics.median(t) for t in zip(*steps, strict=True))

    print(f"model: dim {ARGS.dim}, {ARGS.n_layers} layers, {ARGS.n_heads} heads / {ARGS.n_kv_heads} kv "
          f"heads, head_dim {ARGS.head_dim}, hidden {ARGS.hidden_dim}, vocab {ARGS.vocab_size}, W = {W}; "
          f"float32; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"greedy, {len(PROMPT)}-token prompt + {n} new tokens, median of {opts.repeats} (same ids: {same})")
    # The best run too: on a shared machine, load from elsewhere only ever adds time.
    print(f"  mistral_mini generate:        {n / t_ours:7.1f} tokens/s  ({1000 * t_ours / n:.2f} ms/token; "
          f"best run {n / min(ours):.1f} tokens/s)")
    print(f"  transformers generate (sdpa): {n / t_hf:7.1f} tokens/s  ({1000 * t_hf / n:.2f} ms/token; "
          f"best run {n / min(hf):.1f} tokens/s)")
    print(f"  mistral_mini / transformers:  {t_hf / t_ours:.2f}x")
    print(f"one decode step, median of {W // 2} consecutive steps from:")
    print(f"  at position W/2 = {W // 2:>5}:  {1000 * t_near:.3f} ms")
    print(f"  at position 20W = {20 * W:>5}:  {1000 * t_far:.3f} ms")
    print(f"  ratio 20W / (W/2): {t_far / t_near:.2f}")
    print(f"  the weight matrix-vector products alone: {1000 * t_matvecs:.3f} ms, "
          f"{100 * t_matvecs / t_far:.0f}% of the step at 20W")

    start = time.perf_counter()
    compiled_ids = ours_generate(model, n, compile=True)  # compiles the decode step
    compile_s = time.perf_counter() - start
    eager, compiled = interleaved_times([lambda: ours_generate(model, n),
                                         lambda: ours_generate(model, n, compile=True)], opts.repeats)
    t_eager, t_compiled = statistics.median(eager), statistics.median(compiled)
    print(f"eager vs compiled decode step, greedy, {n} new tokens, median of {opts.repeats} "
          f"(same ids: {compiled_ids == ours_generate(model, n)}; first compiled call {compile_s:.1f} s)")
    print(f"  eager:    {n / t_eager:7.1f} tokens/s  ({1000 * t_eager / n:.2f} ms/token)")
    print(f"  compiled: {n / t_compiled:7.1f} tokens/s  ({1000 * t_compiled / n:.2f} ms/token)")
    print(f"  compiled / eager: {t_eager / t_compiled:.2f}x")


if __name__ == "__main__":
    main()
