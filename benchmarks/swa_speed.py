"""Does the sliding window save work? Full causal against W = 1,024 at T = 16,384, on several head layouts.

Ideal speed-up of the window: T / (2W) = 8x (a causal pass scores T^2 / 2 pairs, the window T * W).

Part 1, attention alone: ``attend`` with W = 1,024 against PyTorch's causal kernel (what ``attend`` runs
when the window covers the whole sequence), on random q, k, v of one layer, for n_rep 1, 4 and 8 query heads
per key/value head and head_dim 16, 32 and 128: nine layouts. Beside it, the ceiling of this way of computing
the window: the same kernel calls on the same blocks with no mask at all (the causal head, then every full
block in one call), which no mask-free trick inside these calls could beat.

Part 2, the whole forward pass of an attention-heavy model (2 layers, a 64-wide stream, a 128-wide
feed-forward) for three of the layouts: the same weights run with W = 1,024 and with W = T, and transformers'
Mistral (sdpa attention) with W = T, to check that our full-causal pass is no slower than theirs.

Part 3, with ``--blocks``: the block size at head_dim 128, ``block_for``'s choice (at least 192 rows) against
the choice for small head_dim (about 128 rows, at most W / 32 queries), in paired turns that alternate which
goes first; the ratio of each pair is old time / new time.

Part 4, with ``--alternatives``: two ways to compute the window without the band's mask, against ``attend``
on the weakest layout (n_rep 1, head_dim 128) and the issue's first (n_rep 4, head_dim 16). Each is checked
against ``attend`` before it is timed.

* ``flex_attention`` under ``torch.compile``, with a sliding-window block mask: the mask is applied only in
  the 128 x 128 tiles that the band's edges cross. The block mask and the compilation are set up once,
  outside the timing.
* a split by log-sum-exp: each block of Q queries meets its keys in three calls with no mask (the keys every
  query of the block sees; the block's own keys, causal; the oldest keys, causal in reversed order), and the
  three partial softmaxes are merged by their log-sum-exp. PyTorch returns the log-sum-exp only from the
  private ``aten._scaled_dot_product_flash_attention_for_cpu``, which is why the model does not use this.

Every ratio comes from runs that take turns (full, windowed, full, windowed, ...), so that a slow moment of a
shared machine hits both sides; the median ratio is printed, with the lowest and highest.

    .venv/bin/python benchmarks/swa_speed.py [--seq-len 16384] [--window 1024] [--repeats 5] [--threads N]
                                             [--blocks] [--alternatives]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mistral_mini import ModelArgs, Transformer
from mistral_mini.attention import _full_blocks, _windows, attend, block_for, repeat_kv
from mistral_mini.hf import to_transformers

LAYOUTS = [(n_rep, head_dim) for head_dim in (16, 32, 128) for n_rep in (1, 4, 8)]
MODEL_LAYOUTS = [(1, 32), (4, 16), (8, 128)]  # one per n_rep, every head_dim once


N_HEADS = 8  # query heads in every layout: 8 key/value heads for n_rep 1, 2 for n_rep 4, 1 for n_rep 8


def heads(n_rep: int) -> tuple[int, int]:
    """(n_heads, n_kv_heads)."""
    return N_HEADS, N_HEADS // n_rep


def model_args(n_rep: int, head_dim: int, window: int) -> ModelArgs:
    """Attention-heavy on purpose: a 64-wide stream and a 128-wide feed-forward, so that the part the window
    changes dominates the pass. (The 7B at 16K tokens spends most of its time in matmuls instead.)"""
    n_heads, n_kv_heads = heads(n_rep)
    return ModelArgs(dim=64, n_layers=2, head_dim=head_dim, hidden_dim=128, n_heads=n_heads,
                     n_kv_heads=n_kv_heads, norm_eps=1e-5, vocab_size=1000, sliding_window=window)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ratios(full, windowed, repeats: int, *others) -> tuple[float, float, list[float], list[list[float]]]:
    """Median seconds of full and windowed, the ratio full / windowed of every turn, and the ratio full / other
    of every turn for each of ``others`` (timed in the same turns)."""
    fns = (full, windowed, *others)
    for fn in fns:
        fn()  # warm-up: allocator, kernel selection
    turns = [[seconds(fn) for fn in fns] for _ in range(repeats)]
    t_full, t_window = (statistics.median(t[i] for t in turns) for i in (0, 1))
    return t_full, t_window, [t[0] / t[1] for t in turns], [[t[0] / t[i] for t in turns] for i in
                                                              range(2, len(fns))]


def unmasked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: int, n: int) -> None:
    """``attend``'s kernel calls for q_start = k_start = 0, one sequence, with every mask dropped: the causal
    head, then all full blocks in one call; the shorter last block is left out."""
    T = q.shape[2]
    F.scaled_dot_product_attention(q[:, :, :W], k[:, :, :W], v[:, :, :W], is_causal=True, enable_gqa=True)
    first_key = W - (W - 1)  # the first full block's oldest key, as attend computes it (k_row)
    _full_blocks(q[0], k[0], v[0], W, first_key, (T - W) // n, n, W, None)


def spread(r: list[float]) -> str:
    return f"{statistics.median(r):5.2f}x  ({min(r):.2f}-{max(r):.2f})"


def attention_alone(T: int, W: int, repeats: int) -> list[float]:
    print(f"attention alone, one layer, T = {T:,}, W = {W:,}: causal / windowed (median, lowest-highest of "
          f"{repeats})")
    medians = []
    for n_rep, head_dim in LAYOUTS:
        n_heads, n_kv_heads = heads(n_rep)
        n = block_for(W, n_rep, head_dim)
        # Laid out as the model makes them: [B, T, H, D] in memory, seen as [B, H, T, D].
        q = torch.randn(1, T, n_heads, head_dim).transpose(1, 2)
        k, v = (torch.randn(1, T, n_kv_heads, head_dim).transpose(1, 2) for _ in range(2))
        t_full, t_window, r, (ceiling,) = ratios(
            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),  # noqa: B023
            lambda: attend(q, k, v, 0, 0, W), repeats, lambda: unmasked(q, k, v, W, n))  # noqa: B023
        medians.append(statistics.median(r))
        print(f"  n_rep {n_rep} ({n_heads}/{n_kv_heads} heads), head_dim {head_dim:>3}, block {n:>3}: causal "
              f"{t_full:6.3f} s, windowed {t_window:6.3f} s: {spread(r)};  no mask: {spread(ceiling)}")
    return medians


def whole_pass(T: int, W: int, repeats: int) -> tuple[list[float], list[float]]:
    print(f"whole forward pass, dim 64, 2 layers, hidden 128: W = T / W = {W:,}; transformers (sdpa) / ours, "
          f"both full causal")
    window_medians, hf_medians = [], []
    tokens = torch.randint(0, 1000, (1, T), generator=torch.Generator().manual_seed(0))
    for n_rep, head_dim in MODEL_LAYOUTS:
        torch.manual_seed(0)
        windowed = Transformer(model_args(n_rep, head_dim, W)).eval()
        full = Transformer(model_args(n_rep, head_dim, T)).eval()
        full.load_state_dict(windowed.state_dict())
        reference = to_transformers(full, "sdpa")
        t_full, t_window, r, _ = ratios(lambda: full(tokens, last_only=True),  # noqa: B023
                                        lambda: windowed(tokens, last_only=True), repeats)  # noqa: B023
        t_hf, t_ours, r_hf, _ = ratios(lambda: reference(tokens, logits_to_keep=1),  # noqa: B023
                                       lambda: full(tokens, last_only=True), repeats)  # noqa: B023
        window_medians.append(statistics.median(r))
        hf_medians.append(statistics.median(r_hf))
        n_heads, n_kv_heads = heads(n_rep)
        print(f"  n_rep {n_rep} ({n_heads}/{n_kv_heads} heads), head_dim {head_dim:>3}: full {t_full:6.3f} s, "
              f"windowed {t_window:6.3f} s: {spread(r)};  transformers {t_hf:6.3f} s vs ours {t_ours:6.3f} s: "
              f"{spread(r_hf)}")
    return window_medians, hf_medians


def block_choice(T: int, W: int, repeats: int) -> None:
    print(f"block size at head_dim 128, T = {T:,}, W = {W:,}: time with the small-head_dim block / time with "
          f"block_for's (paired turns, median, lowest-highest of {2 * repeats})")
    for n_rep in (1, 4, 8):
        n_heads, n_kv_heads = heads(n_rep)
        old, new = block_for(W, n_rep, 32), block_for(W, n_rep, 128)
        q = torch.randn(1, T, n_heads, 128).transpose(1, 2)
        k, v = (torch.randn(1, T, n_kv_heads, 128).transpose(1, 2) for _ in range(2))
        runs = [lambda b=b: attend(q, k, v, 0, 0, W, block_size=b) for b in (old, new)]  # noqa: B023
        for run in runs:
            run()  # warm-up
        pairs = []
        for turn in range(2 * repeats):
            order = runs if turn % 2 == 0 else runs[::-1]  # each goes first half of the time
            t = {id(run): seconds(run) for run in order}
            pairs.append(t[id(runs[0])] / t[id(runs[1])])
        print(f"  n_rep {n_rep}: block {old:>3} ({n_rep * old} rows) / block {new:>3} ({n_rep * new} rows): "
              f"{spread(pairs)}")


def split_by_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: int, Q: int) -> torch.Tensor:
    """The window with no mask at all: q [1, H, T, D], k and v [1, Hkv, T, D] -> [1, H, T, D].

    Query s + r of the block [s, s + Q) sees keys s + r - W + 1 .. s + r: the W - Q keys [s + Q - W, s) that
    every query of the block sees, its own keys [s, s + r] (causal), and keys s + r - W + 1 .. s + Q - W - 1
    (for r < Q - 1), which is causal too once the sequence is reversed.
    """
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # (out, logsumexp)
    H, T, D = q.shape[1:]
    count = (T - W) // Q
    assert W + count * Q == T, "T - W must be a multiple of Q"
    out = torch.empty_like(q)
    out[:, :, :W] = F.scaled_dot_product_attention(q[:, :, :W], k[:, :, :W], v[:, :, :W], is_causal=True,
                                                   enable_gqa=True)
    q, k, v = q[0], repeat_kv(k, H // k.shape[1])[0], repeat_kv(v, H // k.shape[1])[0]  # [H, T, D] each
    shared = flash(_windows(q, W, count, Q, Q), _windows(k, Q, count, Q, W - Q), _windows(v, Q, count, Q, W - Q))
    own = flash(_windows(q, W, count, Q, Q), _windows(k, W, count, Q, Q), _windows(v, W, count, Q, Q), is_causal=True)
    qr, kr, vr = q.flip(1), k.flip(1), v.flip(1)  # position p at row T - 1 - p
    first = T + 1 - W - count * Q  # the last block's row Q - 2, reversed; blocks come last-first
    old_out, old_lse = flash(_windows(qr, first, count, Q, Q - 1), _windows(kr, first + W - 1, count, Q, Q - 1),
                             _windows(vr, first + W - 1, count, Q, Q - 1), is_causal=True)
    old = (F.pad(old_out.flip(0, 2), (0, 0, 0, 1)),  # [count, H, Q, D]: the block's last query sees none
           F.pad(old_lse.flip(0, 2), (0, 1), value=float("-inf")))
    top = torch.maximum(torch.maximum(shared[1], own[1]), old[1])  # [count, H, Q]
    weights = [torch.exp(lse - top) for _, lse in (shared, own, old)]
    merged = sum(o * w[..., None] for (o, _), w in zip((shared, own, old), weights, strict=True))
    merged = merged / sum(weights)[..., None]  # [count, H, Q, D]
    out[0, :, W:] = merged.transpose(0, 1).reshape(H, count * Q, D)
    return out


def alternatives(T: int, W: int, repeats: int, Q: int = 256) -> None:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    print(f"mask-free alternatives, T = {T:,}, W = {W:,}: causal / each (median, lowest-highest of {repeats})")
    band = create_block_mask(lambda b, h, i, j: (i >= j) & (i - j < W), None, None, T, T, device="cpu")
    flex = torch.compile(flex_attention)
    for n_rep, head_dim in ((1, 128), (4, 16)):
        n_heads, n_kv_heads = heads(n_rep)
        q = torch.randn(1, T, n_heads, head_dim).transpose(1, 2)
        k, v = (torch.randn(1, T, n_kv_heads, head_dim).transpose(1, 2) for _ in range(2))
        runs = {"attend": lambda: attend(q, k, v, 0, 0, W),  # noqa: B023
                "flex_attention, compiled": lambda: flex(q, k, v, block_mask=band, enable_gqa=True),  # noqa: B023
                f"split by log-sum-exp, Q = {Q}": lambda: split_by_lse(q, k, v, W, Q)}  # noqa: B023
        expected = runs["attend"]()
        for name, run in runs.items():
            error = (run() - expected).abs().max().item()
            assert error < 1e-4, f"{name} differs from attend by {error:.1e}"
        _, _, r, others = ratios(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,  # noqa: B023
                                                                         enable_gqa=True),
                                 runs["attend"], repeats, *list(runs.values())[1:])
        print(f"  n_rep {n_rep}, head_dim {head_dim:>3}: " + ";  ".join(
            f"{name} {spread(x)}" for name, x in zip(runs, [r, *others], strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=16384)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--blocks", action="store_true", help="only part 3: the block size at head_dim 128")
    parser.add_argument("--alternatives", action="store_true", help="only part 4: mask-free alternatives")
    opts = parser.parse_args()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    T, W = opts.seq_len, opts.window
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ideal T / (2W) = {T / (2 * W):.1f}x")
    with torch.inference_mode():
        if opts.blocks:
            block_choice(T, W, opts.repeats)
            return
        if opts.alternatives:
            alternatives(T, W, opts.repeats)
            return
        alone = attention_alone(T, W, opts.repeats)
        window, hf = whole_pass(T, W, opts.repeats)
    print(f"lowest median: attention alone {min(alone):.2f}x, whole pass {min(window):.2f}x; "
          f"transformers / ours, full causal: {min(hf):.2f}x")


if __name__ == "__main__":
    main()
