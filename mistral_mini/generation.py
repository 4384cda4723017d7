"""Generation: from a prompt to a stream of new tokens, through the rolling-buffer cache.

Shapes: T prompt tokens, V vocab_size, W window.

Generating has two phases.

* **Prefill.** The whole prompt is known up front, so it goes through the model in chunks of up to
  ``chunk_size`` tokens (W by default). Each chunk attends to what the cache holds plus itself, then leaves
  its keys and values in the cache. Only the very last position matters, since its logits predict the
  first new token, so every chunk asks the model for its last position alone (``last_only=True``).
* **Decode.** One token per step: the token just sampled goes in, its logits come out, and the next token
  is sampled from them. Without a cache, step t would run the whole sequence again: O(t) tokens of work
  for the t-th token, O(t^2) for a text. With the rolling buffer a step runs one token, whose query meets
  the at most W keys the cache holds, so each token costs O(W) however long the text grows, and memory
  stays flat.

Choosing the next token from the logits (``sample``):

* **temperature** divides the logits before the softmax. Below 1 it sharpens the distribution towards the
  likeliest tokens, above 1 it flattens it. 0 means "always take the likeliest": greedy decoding (argmax).
* **top-p**, or nucleus sampling, keeps the smallest set of likeliest tokens whose probabilities add up to
  at least top_p and renormalizes them (``top_p_filter``). The long tail of unlikely tokens, each one rare
  but many together, can no longer be drawn. top_p = 1 keeps every token. For example::

      probabilities      0.5   0.25   0.1875   0.0625
      running total      0.5   0.75   (top_p = 0.7 is reached at 0.75: stop)
      kept, renormalized 2/3   1/3    0        0

``generate`` strings these together as an iterator, so a caller can print each token as it arrives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Sequence
from numbers import Integral, Real

import torch
from tqdm.auto import tqdm

from .cache import RollingBufferCache
from .transformer import Transformer

# The end-of-sequence id of Mistral 7B's tokenizer: the model's way of saying "I am done".
EOS_ID = 2


def prefill(model: Transformer, prompt: torch.Tensor, cache: RollingBufferCache,
            chunk_size: int) -> torch.Tensor:
    """Run the prompt [T] through the model in chunks, filling ``cache``; return the last logits [V].

    Any chunk size gives the same logits: each chunk sees the cached keys plus its own, under the window.
    Smaller chunks bound the memory of the attention scores, at the price of more (smaller) calls.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if prompt.numel() == 0:
        raise ValueError("the prompt is empty; prefill needs at least one token")
    for start in range(0, prompt.numel(), chunk_size):
        chunk = prompt[None, start:start + chunk_size]  # [1, chunk]
        logits = model(chunk, cache=cache, last_only=True)  # [1, 1, V]
    return logits[0, -1]


def decode_step(model: Transformer, token_id: int, cache: RollingBufferCache,
                step: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Feed one token at position ``cache.position``; return the logits [V] of the token after it.

    step: ``model.step`` (the default) or a compiled copy of it (``compiled_step``). The token id is checked
    here, as a Python int, so that the step itself never waits for the device to answer a question.
    """
    if not 0 <= token_id < model.args.vocab_size:
        raise ValueError(f"token id {token_id} is outside the vocabulary [0, {model.args.vocab_size})")
    tokens = torch.tensor([[token_id]], dtype=torch.long, device=cache.device)  # [1, 1]
    logits = (step or model.step)(tokens, cache)  # [1, 1, V]
    cache.advance(1)
    return logits[0, -1]


def compiled_step(model: Transformer, cache: RollingBufferCache) -> Callable[..., torch.Tensor]:
    """``model.step`` under ``torch.compile(fullgraph=True)``, for decode steps with ``cache``.

    A decode step reads its position from ``cache.next_position`` (a tensor) and has no Python branch on
    it, so one compilation serves every position, before and after the buffer wraps around. On a GPU the
    compiled step is also captured as a CUDA graph ("reduce-overhead"): one launch per token instead of
    some 2,000 small kernels. The cache's tensors are updated in place, at fixed addresses, which is what
    such a graph needs.
    """
    if cache.device.type == "cuda":
        for tensor in (cache.keys, cache.values, cache.next_position):
            torch._dynamo.mark_static_address(tensor)
        return torch.compile(model.step, fullgraph=True, mode="reduce-overhead")
    return torch.compile(model.step, fullgraph=True)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of likeliest tokens whose probabilities reach ``top_p``; renormalize.

    probs [..., V] -> [..., V], zero outside the kept set. The likeliest token is always kept.
    """
    if top_p >= 1.0:
        # Keep everything; summing first could drop tail tokens to rounding (a total of 0.9999999 < 1).
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)  # [..., V], likeliest first
    # Mass of the strictly likelier tokens: a token is needed while the total before it is short of top_p.
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    kept = torch.where(mass_before < top_p, sorted_probs, torch.zeros_like(sorted_probs))
    kept[..., 0] = sorted_probs[..., 0]  # even for a tiny top_p there is something to sample
    filtered = torch.zeros_like(probs).scatter_(-1, order, kept)  # back to vocabulary order
    return filtered / filtered.sum(dim=-1, keepdim=True)


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Pick the next token id from logits [V]: argmax when temperature is 0, else a top-p draw."""
    _check_sampling(temperature, top_p)
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [V]
    probs = top_p_filter(probs, top_p)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


def generate(model: Transformer, prompt_ids: Sequence[int] | torch.Tensor, max_new_tokens: int,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
             chunk_size: int | None = None, stop_ids: Collection[int] | None = None,
             compile: bool = False, progress: bool = False) -> Iterator[int]:
    """Stream up to ``max_new_tokens`` new token ids (python ints), each one as soon as it is sampled.

    prompt_ids: one sequence, a list of ids or a 1-D integer tensor.
    temperature, top_p: see ``sample``; 0 is greedy, and then top_p plays no part.
    seed: seeds the sampler, so that the same seed gives the same tokens; None draws a fresh seed.
    chunk_size: prompt tokens per prefill call; None means the model's sliding window.
    stop_ids: generation ends when one of these is sampled, and the stop id itself is **not** yielded.
      None means ``{EOS_ID}``, the tokenizer's end of sequence; an empty collection never stops early.
    compile: run each decode step through ``compiled_step`` (torch.compile; a CUDA graph on a GPU). The first
      step pays for the compilation; the tokens are those of the eager model.
    progress: show a progress bar over the new tokens.

    The arguments are checked here, at the call, so a mistake raises ValueError before any token is asked for.
    The model runs under ``torch.inference_mode``, with a fresh cache on the model's device and in its dtype.
    """
    vocab_size = model.args.vocab_size
    prompt = _prompt_tensor(prompt_ids, vocab_size)
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    _check_sampling(temperature, top_p)
    if seed is not None and not _is_int(seed):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    if chunk_size is None:
        chunk_size = model.args.sliding_window
    if not _is_int(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None (the window), got {chunk_size!r}")
    if stop_ids is None:
        stop_ids = {EOS_ID}
    if isinstance(stop_ids, (str, bytes)) or not isinstance(stop_ids, Collection) or not all(
            _is_int(i) for i in stop_ids):
        raise ValueError(f"stop_ids must be a collection of integer token ids (e.g. {{2}}) or None, "
                         f"got {stop_ids!r}")
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    return _stream(model, prompt, max_new_tokens, temperature, top_p, seed, chunk_size,
                   frozenset(int(i) for i in stop_ids), compile, progress)


def _stream(model: Transformer, prompt: torch.Tensor, max_new_tokens: int, temperature: float, top_p: float,
            seed: int | None, chunk_size: int, stop_ids: frozenset[int], compile: bool,
            progress: bool) -> Iterator[int]:
    """The lazy part of ``generate``: prefill, then sample / yield / decode until done."""
    if max_new_tokens == 0:
        return
    weight = next(model.parameters())
    cache = RollingBufferCache(model.args, batch_size=1, device=weight.device, dtype=weight.dtype)
    generator = torch.Generator(device=weight.device)
    if seed is None:
        generator.seed()  # a fresh non-deterministic seed; a new Generator alone always starts the same
    else:
        generator.manual_seed(seed)
    # inference_mode is entered around each model call, never around a yield: the caller's own code runs
    # between two tokens and must not find itself in inference mode (nor stay there if it stops early).
    step = compiled_step(model, cache) if compile else None
    with torch.inference_mode():
        logits = prefill(model, prompt.to(weight.device), cache, chunk_size)
    with tqdm(total=max_new_tokens, unit="tok", disable=not progress) as bar:
        for n in range(max_new_tokens):
            token = sample(logits, temperature, top_p, generator)
            if token in stop_ids:
                return
            bar.update(1)
            yield token
            if n + 1 < max_new_tokens:  # the last token's logits would never be used
                with torch.inference_mode():
                    logits = decode_step(model, token, cache, step)


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_sampling(temperature: float, top_p: float) -> None:
    if not isinstance(temperature, Real) or isinstance(temperature, bool) or not (
            math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature!r}")
    if not isinstance(top_p, Real) or isinstance(top_p, bool) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1] (1 keeps every token), got {top_p!r}")


def _prompt_tensor(prompt_ids: Sequence[int] | torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Check the prompt and return it as a 1-D long tensor [T] on the CPU."""
    if isinstance(prompt_ids, torch.Tensor):
        dtype = prompt_ids.dtype
        if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            raise ValueError(f"prompt_ids must hold integer token ids, got a tensor of dtype {dtype}")
        if prompt_ids.dim() != 1:
            raise ValueError(f"prompt_ids must be 1-D (one sequence), got shape {tuple(prompt_ids.shape)}")
        prompt = prompt_ids.detach().to("cpu", torch.long)
    else:
        if isinstance(prompt_ids, (str, bytes)) or not isinstance(prompt_ids, Sequence) or not all(
                _is_int(i) for i in prompt_ids):
            raise ValueError("prompt_ids must be a list of integer token ids or a 1-D integer tensor, got "
                             f"{type(prompt_ids).__name__}; encode text with Tokenizer.encode first")
        prompt = torch.tensor([int(i) for i in prompt_ids], dtype=torch.long)
    if prompt.numel() == 0:
        raise ValueError("prompt_ids is empty; the model needs at least one token (e.g. the BOS id, 1)")
    low, high = int(prompt.min()), int(prompt.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"prompt_ids holds token id {low if low < 0 else high}, outside the vocabulary "
                         f"[0, {vocab_size})")
    return prompt
