"""The exercise checks of notebooks 06-10: they pass a right answer, and fail a wrong one saying what differs."""

import pytest
import torch
import torch.nn.functional as F

from mistral_mini import RollingBufferCache
from mistral_mini.lessons import exercises
from mistral_mini.masks import sliding_window_mask
from tests.helpers import assert_check_fails

# Right answers, written independently of the package where the exercise asks for a formula.


def slot_and_evicted(position, window):
    return position % window, (position - window if position >= window else None)


def kv_cache_bytes(args, seq_len, itemsize, rolling):
    slots = args.sliding_window if rolling else seq_len
    return 2 * args.n_layers * slots * args.n_kv_heads * args.head_dim * itemsize


def slot_positions(n_seen, window):
    held = [-1] * window
    for p in range(n_seen):
        held[p % window] = p
    return held


def chunk_bounds(prompt_len, chunk_size):
    return [(s, min(s + chunk_size, prompt_len)) for s in range(0, prompt_len, chunk_size)]


def chunk_mask(start, end, window):
    # Position start - window is still cached, but outside every window of the chunk: keys start one later.
    return sliding_window_mask(torch.arange(start, end), torch.arange(max(0, start - window + 1), end), window)


def chunk_mask_old_rule(start, end, window):
    """Keys from max(0, start - window): one key (start - window) that no query of the chunk can see."""
    return sliding_window_mask(torch.arange(start, end), torch.arange(max(0, start - window), end), window)


def chunked_logits(model, tokens, chunk_size):
    cache = RollingBufferCache(model.args)
    return torch.cat([model(tokens[None, s:s + chunk_size], cache=cache)[0]
                      for s in range(0, tokens.numel(), chunk_size)])


def swiglu(x, w1, w2, w3):
    return (F.silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def parameter_count(a):
    per_layer = (2 * a.dim * a.n_heads * a.head_dim + 2 * a.dim * a.n_kv_heads * a.head_dim
                 + 3 * a.dim * a.hidden_dim + 2 * a.dim)
    return 2 * a.vocab_size * a.dim + a.n_layers * per_layer + a.dim


# Hugging Face's name pieces -> Mistral's, written out here rather than taken from mistral_mini.hf.
HF_PIECES = [("model.embed_tokens.", "tok_embeddings."), ("model.norm.", "norm."), ("lm_head.", "output."),
             ("model.layers.", "layers."), ("self_attn.q_proj", "attention.wq"), ("self_attn.k_proj", "attention.wk"),
             ("self_attn.v_proj", "attention.wv"), ("self_attn.o_proj", "attention.wo"),
             ("mlp.gate_proj", "feed_forward.w1"), ("mlp.down_proj", "feed_forward.w2"),
             ("mlp.up_proj", "feed_forward.w3"), ("post_attention_layernorm", "ffn_norm"),
             ("input_layernorm", "attention_norm")]


def hf_to_mistral(name):
    for hf, ours in HF_PIECES:
        name = name.replace(hf, ours)
    return name


def apply_temperature(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def top_p(probs, p):
    """Sort, and keep each token whose likelier neighbours add up to less than p; renormalize."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the strictly likelier tokens
    kept = torch.where(before < p, sorted_probs, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, kept)
    return kept / kept.sum(-1, keepdim=True)


def chat_ids(tok, messages):
    ids = [tok.bos_id]
    for m in messages:
        if m["role"] == "user":
            ids += tok.encode(f"[INST] {m['content']} [/INST]", bos=False)
        else:
            ids += tok.encode(m["content"], bos=False) + [tok.eos_id]
    return ids


def weight_bytes(args, itemsize):
    return parameter_count(args) * itemsize


def max_sequences(free_bytes, args, itemsize):
    return max(0, (free_bytes - weight_bytes(args, itemsize)) // kv_cache_bytes(args, 0, itemsize, True))


RIGHT = {
    "check_slot_and_evicted": slot_and_evicted,
    "check_kv_cache_bytes": kv_cache_bytes,
    "check_slot_positions": slot_positions,
    "check_chunk_bounds": chunk_bounds,
    "check_chunk_mask": chunk_mask,
    "check_chunked_logits": chunked_logits,
    "check_swiglu": swiglu,
    "check_parameter_count": parameter_count,
    "check_hf_name": hf_to_mistral,
    "check_temperature": apply_temperature,
    "check_top_p": top_p,
    "check_chat_ids": chat_ids,
    "check_weight_bytes": weight_bytes,
    "check_max_sequences": max_sequences,
}


@pytest.mark.parametrize("check", RIGHT)
def test_a_right_answer_passes(check, capsys):
    result = getattr(exercises, check)(RIGHT[check])
    assert result is None
    assert capsys.readouterr().out.startswith("PASS: ")


def nucleus_one_token_short(probs, p):
    """The classic top-p bug: stop *before* the token that carries the total past p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    kept = torch.where(sorted_probs.cumsum(-1) <= p, sorted_probs, 0.0)
    kept[..., 0] = sorted_probs[..., 0]
    kept = torch.zeros_like(probs).scatter(-1, order, kept)
    return kept / kept.sum(-1, keepdim=True)


def _without_final_norm(a):
    return parameter_count(a) - a.dim


WRONG = [
    ("check_slot_and_evicted", lambda p, w: (p % w, p - w),
     ["on position=0, window=1:", "first wrong position [1]: got -1, expected None", "hint: position p goes"]),
    ("check_slot_and_evicted", lambda p, w: (p // w, None), ["first wrong position [0]"]),
    ("check_kv_cache_bytes", lambda a, t, i, r: kv_cache_bytes(a, t, i, r) // 2,
     ["on the 7B, rolling, itemsize 2", "expected 536,870,912", "hint: keys and values (2)"]),
    ("check_kv_cache_bytes", lambda a, t, i, r: kv_cache_bytes(a, t, i, True),
     ["full, itemsize 2, seq_len 10", "got 536,870,912, expected 1,310,720"]),
    ("check_kv_cache_bytes", lambda a, t, i, r: kv_cache_bytes(a, t, i, r) + 0.5, ["expected a whole number"]),
    ("check_slot_positions", lambda n, w: list(range(w)),
     ["on n_seen=0, window=1", "first wrong position [0]: got 0, expected -1"]),
    ("check_slot_positions", lambda n, w: slot_positions(n, w)[:-1], ["length: got 0, expected 1"]),
    ("check_chunk_bounds", lambda t, c: chunk_bounds(t, c)[:-1], ["on prompt_len=10, chunk_size=5", "length"]),
    ("check_chunk_bounds", lambda t, c: [(s, s + c) for s in range(0, t, c)],
     ["on prompt_len=23, chunk_size=5", "first wrong position [4]: got [20, 25], expected [20, 23]"]),
    ("check_chunk_mask",
     lambda s, e, w: sliding_window_mask(torch.arange(s, e), torch.arange(max(0, s - w + 1), e), w + 1),
     ["on start=10, end=15, window=8", "first wrong position [1, 0]: got True, expected False"]),
    ("check_chunk_mask", lambda s, e, w: sliding_window_mask(torch.arange(s, e), torch.arange(s, e), w),
     ["on start=10, end=15, window=8", "shape: got (5, 5), expected (5, 12)", "hint: build q_pos"]),
    ("check_chunk_mask", chunk_mask_old_rule,
     ["on start=10, end=15, window=8", "shape: got (5, 13), expected (5, 12)", "hint: one key too many",
      "max(0, start - W + 1)"]),
    ("check_chunked_logits", lambda m, t, c: m(t[None])[0][:-1], ["shape: got (22, 97), expected (23, 97)"]),
    ("check_chunked_logits", lambda m, t, c: chunked_logits(m, t, c) * 1.01, ["max difference"]),
    ("check_swiglu", lambda x, w1, w2, w3: (F.relu(x @ w1.T) * (x @ w3.T)) @ w2.T,
     ["on dim=8, hidden_dim=12", "max difference", "first wrong position"]),
    ("check_swiglu", lambda x, w1, w2, w3: (F.silu(x @ w3.T) * (x @ w1.T)) @ w2.T, ["max difference"]),
    ("check_parameter_count", _without_final_norm,
     ["on the tiny preset", "got 86,784, expected 86,848 (off by -64)"]),
    ("check_hf_name", lambda name: name,
     ["on 'model.embed_tokens.weight'", "got 'model.embed_tokens.weight', expected 'tok_embeddings.weight'"]),
    ("check_temperature", lambda logits, t: torch.softmax(logits * t, -1),
     ["temperature 0.5", "hint: you multiplied by the temperature"]),
    ("check_temperature", lambda logits, t: logits / t, ["hint: these are the scaled logits"]),
    ("check_temperature", lambda logits, t: torch.softmax(logits / t, 0),
     ["of shape (3, 10)", "hint: divide the logits"]),
    ("check_top_p", lambda probs, p: probs, ["top_p 0.7", "hint: nothing was removed"]),
    ("check_top_p", nucleus_one_token_short, ["first wrong position [0]", "hint: one token too few"]),
    ("check_top_p", lambda probs, p: torch.where(probs >= probs.max() / 2, probs, 0.0),
     ["hint: the kept probabilities must add up to 1"]),
    ("check_chat_ids", lambda tok, m: chat_ids(tok, m)[1:],
     ["on 1 message(s)", "length: got 9, expected 10"]),
    ("check_chat_ids", lambda tok, m: tok.encode(" ".join(x["content"] for x in m)),
     ["length: got 3, expected 10", "got      [1, 22557, 28808]"]),
    ("check_weight_bytes", lambda a, i: parameter_count(a) * 2, ["itemsize 4", "off by"]),
    ("check_max_sequences", lambda f, a, i: (f - weight_bytes(a, i)) // kv_cache_bytes(a, 0, i, True),
     ["on 8 GiB free", "got -11, expected 0", "never below 0"]),
]


@pytest.mark.parametrize("check, wrong, expected_lines", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_a_wrong_answer_fails_and_says_what_differs(check, wrong, expected_lines, capsys):
    assert_check_fails(getattr(exercises, check), wrong, expected_lines, capsys)


@pytest.mark.parametrize("check", ["check_slot_and_evicted", "check_swiglu", "check_chat_ids"])
def test_a_stub_or_a_crash_is_reported_not_raised(check, capsys):
    def stub(*args):
        raise NotImplementedError()

    result = getattr(exercises, check)(stub)
    out = capsys.readouterr().out
    assert result is None
    assert out.startswith("FAIL: ") and "not implemented yet" in out

    def crash(*args):
        return 1 / 0

    result = getattr(exercises, check)(crash)
    out = capsys.readouterr().out
    assert result is None
    assert out.startswith("FAIL: ") and "your code raised ZeroDivisionError" in out


def test_value_difference():
    assert exercises.value_difference((3, None), [3, None]) is None
    assert exercises.value_difference(torch.tensor([1, 2]), [1, 2]) is None
    assert exercises.value_difference([(0, 5), (5, 7)], [(0, 5), (5, 7)]) is None
    assert exercises.value_difference(7, 8) == "got 7, expected 8"
    assert "expected a list or tuple" in exercises.value_difference(7, [7])
    message = exercises.value_difference(list(range(20)), list(range(19)) + [99])
    assert message.startswith("first wrong position [19]: got 19, expected 99") and ", ...]" in message
