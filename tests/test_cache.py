import pytest
import torch

from mistral_mini import ModelArgs, RollingBufferCache, Transformer
from mistral_mini.cache import chunk_key_positions, slot_of, slot_positions_after
from tests.helpers import random_model, relative_error, small_args

CONFIGS = {
    "mha, W 3": small_args(n_heads=4, n_kv_heads=4, sliding_window=3),
    "gqa 2, W 8": small_args(n_heads=4, n_kv_heads=2, sliding_window=8),
    "gqa 4, W 16": small_args(n_heads=8, n_kv_heads=2, head_dim=8, sliding_window=16, n_layers=3),
    "gqa 4, W 5, theta 1e6": small_args(n_heads=8, n_kv_heads=2, head_dim=8, sliding_window=5, rope_theta=1e6),
}


def feed(model, tokens, chunk_size):
    """Logits of ``tokens`` fed through a fresh cache ``chunk_size`` tokens at a time."""
    cache = RollingBufferCache(model.args, batch_size=tokens.shape[0])
    nbytes = cache.nbytes
    logits = [model(tokens[:, i:i + chunk_size], cache=cache) for i in range(0, tokens.shape[1], chunk_size)]
    assert cache.position == tokens.shape[1]
    assert cache.nbytes == nbytes  # memory is fixed, whatever the number of tokens
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("name", CONFIGS)
def test_any_chunking_gives_the_full_pass(name):
    args = CONFIGS[name]
    W = args.sliding_window
    model = random_model(args)
    tokens = torch.randint(0, args.vocab_size, (2, 6 * W + 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(tokens)
        for chunk_size in sorted({1, max(W - 1, 1), W, W + 3, 2 * W + 1}):
            assert relative_error(feed(model, tokens, chunk_size), full) < 1e-4, chunk_size


def test_uneven_chunks_mixing_decode_and_prefill():
    args = small_args(sliding_window=6)
    model = random_model(args)
    tokens = torch.randint(0, args.vocab_size, (1, 60))
    cache = RollingBufferCache(args)
    sizes, logits, i = [1, 13, 2, 1, 6, 7, 1, 1, 20, 8], [], 0
    with torch.no_grad():
        for size in sizes:
            logits.append(model(tokens[:, i:i + size], cache=cache))
            i += size
        assert relative_error(torch.cat(logits, 1), model(tokens)) < 1e-4


def test_slots_hold_position_mod_w_and_record_their_positions():
    args = small_args(sliding_window=4, n_layers=1)
    model = random_model(args)
    cache = RollingBufferCache(args)
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 3)), cache=cache)
        assert cache.slot_positions.tolist() == [0, 1, 2, -1]
        model(torch.randint(0, 97, (1, 3)), cache=cache)  # positions 3, 4, 5: 4 and 5 wrap around
        assert cache.slot_positions.tolist() == [4, 5, 2, 3]
        assert slot_of(5, 4) == 1 and cache.position == 6
        model(torch.randint(0, 97, (1, 9)), cache=cache)  # longer than W: only the last 4 land
        assert cache.slot_positions.tolist() == [12, 13, 14, 11]


def test_cached_keys_are_the_rotated_keys_of_their_positions():
    args = small_args(sliding_window=4, n_layers=1)
    model = random_model(args)
    tokens = torch.randint(0, 97, (1, 7))
    cache = RollingBufferCache(args)
    captured = {}
    model.layers[0].attention.wk.register_forward_hook(lambda m, i, o: captured.setdefault("k", o))
    with torch.no_grad():
        model(tokens, cache=cache)
    from mistral_mini.rope import apply_rope, rope_angles

    k = captured["k"].view(1, 7, args.n_kv_heads, args.head_dim)
    cos, sin = rope_angles(torch.arange(7), args.head_dim, args.rope_theta)
    rotated = apply_rope(k, cos, sin).transpose(1, 2)  # [1, Hkv, 7, D]
    for position in range(3, 7):
        torch.testing.assert_close(cache.keys[0][:, :, position % 4], rotated[:, :, position])


def test_reset_starts_a_new_sequence():
    args = small_args()
    model = random_model(args)
    tokens = torch.randint(0, 97, (1, 20))
    cache = RollingBufferCache(args)
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 11)), cache=cache)
        cache.reset()
        assert cache.position == 0 and (cache.slot_positions == -1).all()
        assert relative_error(model(tokens, cache=cache), model(tokens)) < 1e-5


def test_reset_after_inference_mode():
    args = small_args()
    model, cache = random_model(args), RollingBufferCache(args)
    with torch.inference_mode():
        model(torch.randint(0, 97, (1, 5)), cache=cache)
    cache.reset()
    assert cache.position == 0 and (cache.slot_positions == -1).all()


def test_nbytes_formula_and_the_7b_figures():
    args = ModelArgs.from_name("mistral-7b")
    cache = RollingBufferCache(args, batch_size=1, device="meta", dtype=torch.bfloat16)
    assert cache.nbytes == 2 * 32 * 1 * 4096 * 8 * 128 * 2 == 512 * 2**20
    # A full cache of 32,768 tokens is a rolling buffer whose window holds all of them.
    full_args = ModelArgs(**{**args.to_dict(), "sliding_window": 32768})
    full_cache_32k = RollingBufferCache(full_args, batch_size=1, device="meta", dtype=torch.bfloat16).nbytes
    assert full_cache_32k == 4 * 2**30 and full_cache_32k // cache.nbytes == 8
    assert RollingBufferCache(args, batch_size=3, device="meta", dtype=torch.bfloat16).nbytes == 3 * 512 * 2**20


def test_bf16_cache_matches_bf16_full_pass():
    args = small_args(sliding_window=5)
    model = random_model(args, dtype=torch.bfloat16)
    tokens = torch.randint(0, 97, (1, 23))
    cache = RollingBufferCache(args, dtype=torch.bfloat16)
    with torch.no_grad():
        stepped = torch.cat([model(tokens[:, i:i + 4], cache=cache) for i in range(0, 23, 4)], 1)
        assert relative_error(stepped, model(tokens)) < 2e-2


@pytest.mark.parametrize("make_cache, message", [
    (lambda a: RollingBufferCache(a, batch_size=2), "batch size"),
    (lambda a: RollingBufferCache(a, dtype=torch.float64), "dtype="),
    (lambda a: RollingBufferCache(small_args(sliding_window=4)), "other ModelArgs"),
])
def test_mismatched_cache_is_rejected(make_cache, message):
    args = small_args()
    with pytest.raises(ValueError, match=message):
        Transformer(args)(torch.zeros(1, 2, dtype=torch.long), cache=make_cache(args))


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        RollingBufferCache(small_args(), batch_size=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when there is no GPU")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="finds none"):
        RollingBufferCache(small_args(), device="cuda")


@pytest.mark.parametrize("window", [1, 3, 8])
def test_slot_positions_after_matches_writing_one_position_at_a_time(window):
    held = [-1] * window
    for n_seen in range(4 * window + 2):
        assert slot_positions_after(n_seen, window).tolist() == held, n_seen
        held[slot_of(n_seen, window)] = n_seen


def test_a_chunk_sees_only_the_cached_keys_inside_its_first_window():
    q_pos, k_pos = chunk_key_positions(10, 13, 4)
    assert q_pos.tolist() == [10, 11, 12]
    assert k_pos.tolist() == [7, 8, 9, 10, 11, 12]  # 7 = 10 - 4 + 1: the oldest key the query at 10 sees
    assert chunk_key_positions(2, 5, 4)[1].tolist() == [0, 1, 2, 3, 4]  # nothing before position 0


def test_past_keys_are_exactly_the_visible_cached_positions():
    args = small_args(sliding_window=4, n_layers=1)
    model = random_model(args)
    cache = RollingBufferCache(args)
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 9)), cache=cache)
        (view,) = cache.views(cache.chunk(3))
        past_k, _ = view.past()
        # Positions 6, 7, 8 (not 5: it is outside the window of position 9) in position order.
        assert view.chunk.past_start == 6 and past_k.shape[2] == 3
        assert [cache.slot_positions[s].item() for s in view.chunk.past_slots] == [6, 7, 8]
