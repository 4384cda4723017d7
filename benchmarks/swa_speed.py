"""Does the sliding window save work? Forward time at T = 16384 with W = 1024 against W = T.

One model, the same weights, run twice: once with a 1024-token window (banded attention, O(T * W)) and
once with the window as long as the sequence (plain causal attention, O(T^2)). transformers' Mistral with
sdpa attention runs the full-causal model too. Ideal speed-up of the window: T / (2W) = 8x (a causal pass
scores T^2 / 2 pairs, the window T * W); the feed-forward and projections cost the same in both, so the
whole pass gains less than attention alone, which is printed last.

    .venv/bin/python benchmarks/swa_speed.py [--seq-len 16384] [--window 1024] [--repeats 3]
"""

import argparse
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from mistral_mini import ModelArgs, Transformer
from mistral_mini.attention import attend
from mistral_mini.hf import to_transformers

# Attention-heavy on purpose: 8 heads of 32 over a 128-wide stream and a narrow feed-forward, so that the part
# the window changes dominates the pass. (The 7B at 16K tokens spends most of its time in matmuls instead.)
ARGS = ModelArgs(dim=128, n_layers=2, head_dim=32, hidden_dim=256, n_heads=8, n_kv_heads=2, norm_eps=1e-5,
                 vocab_size=1000, sliding_window=1024)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=16384)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    torch.manual_seed(0)
    windowed = Transformer(replace(ARGS, sliding_window=opts.window)).eval()
    full = Transformer(replace(ARGS, sliding_window=opts.seq_len)).eval()
    full.load_state_dict(windowed.state_dict())
    reference = to_transformers(full, "sdpa")
    tokens = torch.randint(0, ARGS.vocab_size, (1, opts.seq_len))

    with torch.inference_mode():
        t_window = median_seconds(lambda: windowed(tokens, last_only=True), opts.repeats)
        t_full = median_seconds(lambda: full(tokens, last_only=True), opts.repeats)
        t_hf = median_seconds(lambda: reference(tokens, logits_to_keep=1), opts.repeats)
        # Attention alone, on one layer's worth of random q, k, v: the kernels the window chooses between.
        q = torch.randn(1, ARGS.n_heads, opts.seq_len, ARGS.head_dim)
        k, v = (torch.randn(1, ARGS.n_kv_heads, opts.seq_len, ARGS.head_dim) for _ in range(2))
        a_window = median_seconds(lambda: attend(q, k, v, 0, 0, opts.window), opts.repeats)
        a_full = median_seconds(
            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), opts.repeats)

    print(f"model: dim {ARGS.dim}, {ARGS.n_layers} layers, {ARGS.n_heads} heads / {ARGS.n_kv_heads} kv heads, "
          f"head_dim {ARGS.head_dim}; T = {opts.seq_len}; torch threads {torch.get_num_threads()}")
    print(f"mistral_mini, W = {opts.window:>5}:            {t_window:7.3f} s")
    print(f"mistral_mini, W = T (full causal):   {t_full:7.3f} s")
    print(f"transformers sdpa, full causal:      {t_hf:7.3f} s")
    print(f"sliding-window speed-up: {t_full / t_window:.2f}x (ideal T/(2W) = {opts.seq_len / (2 * opts.window):.0f}x)")
    print(f"full causal, transformers / mistral_mini: {t_hf / t_full:.2f}x")
    print(f"attention alone (one layer): banded {a_window:.3f} s, causal {a_full:.3f} s, "
          f"speed-up {a_full / a_window:.2f}x")


if __name__ == "__main__":
    main()
