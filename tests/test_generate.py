import math

import pytest
import torch

from mistral_mini import RollingBufferCache
from mistral_mini.generation import EOS_ID, compiled_step, decode_step, generate, prefill, sample, top_p_filter
from tests.helpers import hf_reference, random_model, small_args

W = 8
PROMPTS = {"shorter than the window": [5, 17, 3, 42, 11], "longer than the window": list(range(3, 23))}


def naive_greedy(model, prompt, n):
    """The textbook loop: run the whole sequence again for every token, no cache at all."""
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    return tokens[len(prompt):]


@pytest.fixture(scope="module")
def model():
    return random_model(small_args(sliding_window=W), seed=1)


@pytest.fixture(scope="module")
def hf_greedy(model):
    """transformers' greedy continuation of each prompt, 40 tokens: 5 windows past the prompt."""
    reference = hf_reference(model)
    continuations = {}
    for name, prompt in PROMPTS.items():
        # eos_token_id=None: transformers must not stop early either (its default EOS is 2, like ours).
        out = reference.generate(torch.tensor([prompt]), max_new_tokens=40, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        continuations[name] = out[0, len(prompt):].tolist()
        assert len(continuations[name]) == 40
    return continuations


@pytest.mark.parametrize("prompt_name", PROMPTS)
@pytest.mark.parametrize("chunk_size", [1, 3, W, 13, None])  # 13 > W: banded prefill
def test_greedy_matches_transformers_generate_far_past_the_window(model, hf_greedy, prompt_name, chunk_size):
    ours = list(generate(model, PROMPTS[prompt_name], max_new_tokens=40, chunk_size=chunk_size, stop_ids=()))
    assert ours == hf_greedy[prompt_name]


@pytest.mark.parametrize("prompt_name", PROMPTS)
def test_greedy_equals_the_uncached_loop(model, prompt_name):
    prompt = PROMPTS[prompt_name]
    assert list(generate(model, prompt, 30, stop_ids=())) == naive_greedy(model, prompt, 30)


def test_greedy_equals_the_uncached_loop_with_a_window_of_one():
    model = random_model(small_args(sliding_window=1), seed=2)
    assert list(generate(model, [7, 8, 9], 12, stop_ids=())) == naive_greedy(model, [7, 8, 9], 12)


def test_prompt_as_a_tensor_equals_prompt_as_a_list(model):
    prompt = PROMPTS["longer than the window"]
    assert list(generate(model, torch.tensor(prompt), 10)) == list(generate(model, prompt, 10))


def test_prefill_and_decode_step_match_a_full_pass(model):
    prompt = torch.tensor(PROMPTS["longer than the window"])
    cache = RollingBufferCache(model.args)
    with torch.inference_mode():
        full = model(torch.cat((prompt, torch.tensor([9])))[None])[0]  # [T + 1, V]
        torch.testing.assert_close(prefill(model, prompt, cache, chunk_size=3), full[-2])
        assert cache.position == len(prompt)
        torch.testing.assert_close(decode_step(model, 9, cache), full[-1])
    assert cache.position == len(prompt) + 1


def test_streams_one_model_call_per_token(model):
    """The prompt goes in ceil(T / chunk) calls asking for the last position only, then one call per token."""
    shapes = []  # the output projection runs once per model call, whichever entry point the call used
    handle = model.output.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
    try:
        stream = generate(model, list(range(3, 23)), max_new_tokens=4, chunk_size=6, stop_ids=())
        assert shapes == []  # nothing runs before the first token is asked for
        first = next(stream)
        assert isinstance(first, int)
        assert shapes == [(1, 1, 97)] * 4  # 20 prompt tokens in chunks of 6: 6 + 6 + 6 + 2
        next(stream)
        assert len(shapes) == 5
        assert len(list(stream)) == 2
        assert len(shapes) == 7  # no forward pass for logits after the last token
    finally:
        handle.remove()


def test_model_runs_in_inference_mode_but_the_caller_does_not(model):
    modes = []
    handle = model.output.register_forward_hook(lambda *_: modes.append(torch.is_inference_mode_enabled()))
    try:
        for _ in generate(model, [1, 2, 3], 5, stop_ids=()):
            assert not torch.is_inference_mode_enabled()
    finally:
        handle.remove()
    assert modes == [True] * 5


def test_cache_takes_the_model_dtype():
    model = random_model(small_args(sliding_window=W), seed=1, dtype=torch.bfloat16)
    ids = list(generate(model, [1, 2, 3], 12, temperature=1.0, seed=0, stop_ids=()))
    assert len(ids) == 12 and all(0 <= i < 97 for i in ids)


def test_stops_at_a_stop_id_without_yielding_it(model):
    prompt = PROMPTS["longer than the window"]
    full = list(generate(model, prompt, 40, stop_ids=()))
    stop = next(t for i, t in enumerate(full) if i > 0 and t not in full[:i])  # first occurs at index i
    index = full.index(stop)
    assert list(generate(model, prompt, 40, stop_ids={stop, 10_000})) == full[:index]
    assert list(generate(model, prompt, 40, stop_ids=[full[0]])) == []


def test_default_stop_id_is_eos():
    model = random_model(small_args(vocab_size=5), seed=0)
    # Find a prompt whose greedy continuation emits EOS (id 2) after at least one other token.
    for first in range(5):
        full = list(generate(model, [first, 4, 3], 30, stop_ids=()))
        if EOS_ID in full[1:] and full[0] != EOS_ID:
            break
    else:
        pytest.fail("no prompt led to EOS; pick another seed")
    assert list(generate(model, [first, 4, 3], 30)) == full[:full.index(EOS_ID)]


def test_max_new_tokens(model):
    assert list(generate(model, [1, 2], 0)) == []
    assert len(list(generate(model, [1, 2], 7, stop_ids=()))) == 7


def test_same_seed_same_tokens_other_seed_other_tokens(model):
    def run(seed):
        return list(generate(model, [1, 2, 3], 30, temperature=3.0, seed=seed, stop_ids=()))

    assert run(0) == run(0)
    assert run(0) != run(1)
    # seed=None draws a fresh seed each time (a bare torch.Generator would always start the same).
    assert list(generate(model, [1, 2, 3], 30, temperature=3.0, stop_ids=())) != list(
        generate(model, [1, 2, 3], 30, temperature=3.0, stop_ids=()))


def test_tiny_top_p_is_greedy(model):
    prompt = PROMPTS["longer than the window"]
    greedy = list(generate(model, prompt, 20, stop_ids=()))
    assert list(generate(model, prompt, 20, temperature=5.0, top_p=1e-6, seed=3, stop_ids=())) == greedy
    assert list(generate(model, prompt, 20, temperature=5.0, seed=3, stop_ids=())) != greedy


@pytest.mark.parametrize("top_p, kept", [
    (1e-6, [1]), (0.5, [1]), (0.51, [1, 3]), (0.75, [1, 3]), (0.9, [1, 3, 2]), (0.95, [0, 1, 2, 3]),
    (1.0, [0, 1, 2, 3]),
])
def test_top_p_filter_keeps_the_smallest_set_that_reaches_top_p(top_p, kept):
    probs = torch.tensor([0.0625, 0.5, 0.1875, 0.25])  # exact in binary: no rounding at the edges
    filtered = top_p_filter(probs, top_p)
    assert sorted(filtered.nonzero().flatten().tolist()) == sorted(kept)
    expected = torch.zeros(4)
    expected[kept] = probs[kept] / probs[kept].sum()
    torch.testing.assert_close(filtered, expected)


def test_top_p_filter_works_on_each_row():
    probs = torch.tensor([[0.5, 0.25, 0.1875, 0.0625], [0.0, 0.125, 0.125, 0.75]])
    torch.testing.assert_close(top_p_filter(probs, 0.7), torch.tensor([[2 / 3, 1 / 3, 0, 0], [0, 0, 0, 1.0]]))


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (2.0, 1.0), (0.5, 0.8)])
def test_sample_frequencies_follow_the_softmax(temperature, top_p):
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    expected = top_p_filter(torch.softmax(logits / temperature, dim=-1), top_p)
    generator = torch.Generator().manual_seed(0)
    n = 20_000
    counts = torch.bincount(torch.tensor([sample(logits, temperature, top_p, generator) for _ in range(n)]),
                            minlength=5)
    # 4 standard deviations of a binomial frequency, at most 0.014 here.
    tolerance = 4 * math.sqrt(0.25 / n)
    assert (counts / n - expected).abs().max() < tolerance
    assert counts[expected == 0].sum() == 0  # what top-p cut is never drawn


def test_sample_at_temperature_zero_is_argmax():
    assert sample(torch.tensor([0.1, 3.0, -2.0, 2.9]), 0.0, 1.0, None) == 1


def test_progress_bar(model, capsys):
    list(generate(model, [1, 2], 6, stop_ids=(), progress=True))
    assert "6/6" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt_ids=[]), "prompt_ids is empty"),
    (dict(prompt_ids=torch.zeros(0, dtype=torch.long)), "prompt_ids is empty"),
    (dict(prompt_ids=[1, 97]), r"token id 97, outside the vocabulary \[0, 97\)"),
    (dict(prompt_ids=torch.tensor([-1, 3])), r"token id -1, outside the vocabulary"),
    (dict(prompt_ids=[1.0, 2.0]), "list of integer token ids"),
    (dict(prompt_ids="hello"), "list of integer token ids"),
    (dict(prompt_ids=torch.tensor([[1, 2]])), "must be 1-D"),
    (dict(prompt_ids=torch.tensor([1.0])), "integer token ids"),
    (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be an integer >= 0"),
    (dict(temperature=-0.1), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number >= 0"),
    (dict(top_p=0.0), r"top_p must be a number in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be a number in \(0, 1\]"),
    (dict(top_p=float("nan")), r"top_p must be a number in \(0, 1\]"),
    (dict(chunk_size=0), "chunk_size must be a positive integer"),
    (dict(chunk_size=2.0), "chunk_size must be a positive integer"),
    (dict(seed=1.5), "seed must be an integer or None"),
    (dict(stop_ids=2), "stop_ids must be a collection of integer token ids"),
    (dict(compile="yes"), "compile must be True or False"),
])
def test_invalid_arguments_raise_at_the_call(model, kwargs, message):
    arguments = {**dict(prompt_ids=[1, 2, 3], max_new_tokens=5), **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, **arguments)  # no next(): the check must not wait for the first token


def test_decode_step_rejects_a_token_outside_the_vocabulary(model):
    cache = RollingBufferCache(model.args)
    with pytest.raises(ValueError, match=r"token id 97 is outside the vocabulary \[0, 97\)"):
        decode_step(model, 97, cache)
    assert cache.position == 0


def test_compiled_decode_step_is_one_graph_for_every_position():
    """Compiled once, the decode step runs past 3 windows (the buffer wraps around three times) without a
    recompile or a graph break, and gives the eager step's logits at every position."""
    from torch._dynamo.utils import counters

    args = small_args(n_layers=1, sliding_window=4)
    model = random_model(args)
    eager_cache, compiled_cache = RollingBufferCache(args), RollingBufferCache(args)
    torch._dynamo.reset()
    counters.clear()
    step = compiled_step(model, compiled_cache)
    tokens = torch.randint(0, args.vocab_size, (3 * args.sliding_window + 3,),
                           generator=torch.Generator().manual_seed(0)).tolist()
    with torch.inference_mode():
        for token in tokens:  # every position from 0 (empty slots masked) to 3W + 2
            torch.testing.assert_close(decode_step(model, token, compiled_cache, step),
                                       decode_step(model, token, eager_cache), rtol=1e-4, atol=1e-4)
    assert compiled_cache.position == len(tokens)
    assert counters["stats"]["unique_graphs"] == 1  # a recompile would add a graph
    assert not counters["graph_break"]  # fullgraph=True would raise on one, but say it plainly


def test_generate_with_compile_gives_the_eager_tokens(model):
    torch._dynamo.reset()
    prompt = PROMPTS["longer than the window"]
    assert list(generate(model, prompt, 12, compile=True)) == list(generate(model, prompt, 12))
