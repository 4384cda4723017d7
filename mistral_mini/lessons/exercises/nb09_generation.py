"""Checks of notebook 09 (generation): temperature, top-p, and the chat template's token ids."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...generation import top_p_filter
from .checking import check_cases
from .compare import matches, value_difference

__all__ = ["check_temperature", "check_top_p", "check_chat_ids"]


def check_temperature(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(logits, temperature)`` -> probabilities softmax(logits / temperature) over the last axis."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for shape, temperature in (((6,), 1.0), ((6,), 0.5), ((10,), 2.0), ((3, 10), 0.7)):
        logits = torch.randn(shape, generator=generator) * 3
        cases.append((f"logits of shape {shape}, temperature {temperature}", (logits, temperature),
                      torch.softmax(logits / temperature, dim=-1)))

    def diagnose(args, got) -> str | None:
        logits, temperature = args
        if matches(got, torch.softmax(logits * temperature, dim=-1)):
            return "you multiplied by the temperature: divide instead, so that a low temperature sharpens"
        if matches(got, logits / temperature):
            return "these are the scaled logits: finish with torch.softmax(..., dim=-1)"
        return None

    check_cases("apply_temperature(logits, temperature)", fn, cases,
                "divide the logits by the temperature first, then softmax over the last axis",
                diagnose=diagnose)


def _one_token_short(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The classic top-p bug: keep tokens while the total *including* them is <= top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)  # [..., V]
    short = torch.where(sorted_probs.cumsum(-1) <= top_p, sorted_probs, 0.0)
    short = torch.zeros_like(probs).scatter_(-1, order, short)  # back to vocabulary order
    return short / short.sum(-1, keepdim=True)


def check_top_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(probs, p)`` -> probabilities with only the nucleus kept, renormalized (like top_p_filter)."""
    worked = torch.tensor([0.5, 0.25, 0.1875, 0.0625])
    shuffled = torch.tensor([0.0625, 0.25, 0.5, 0.1875])
    batch = torch.softmax(torch.randn(3, 12, generator=torch.Generator().manual_seed(0)) * 2, dim=-1)
    cases = [(f"probs {label}, top_p {p}", (probs, p), top_p_filter(probs, p)) for label, probs, p in (
        ("[0.5, 0.25, 0.1875, 0.0625]", worked, 0.7),
        ("[0.0625, 0.25, 0.5, 0.1875] (not sorted)", shuffled, 0.7),
        ("[0.5, 0.25, 0.1875, 0.0625]", worked, 0.01),
        ("[0.5, 0.25, 0.1875, 0.0625]", worked, 1.0),
        ("of shape (3, 12)", batch, 0.9),
    )]

    def diagnose(args, got) -> str | None:
        probs, top_p = args
        if not isinstance(got, torch.Tensor) or got.shape != probs.shape:
            return None
        if matches(got, probs) and top_p < 1:
            return "nothing was removed: zero every token outside the nucleus"
        if not torch.allclose(got.sum(-1), torch.ones(()), atol=1e-4):
            return "the kept probabilities must add up to 1 again: divide by their sum"
        short = _one_token_short(probs, top_p)  # NaN where the bug keeps nothing at all
        if not short.isnan().any() and matches(got, short):
            return ("one token too few: keep the token whose probability carries the total past top_p, i.e. "
                    "keep a token while the mass *before* it is below top_p")
        return None

    check_cases("top_p(probs, p)", fn, cases,
                "sort descending; keep a token while the mass of the tokens before it is < top_p (the "
                "likeliest is always kept); zero the rest, put them back in vocabulary order, renormalize",
                diagnose=diagnose)


def check_chat_ids(fn: Callable) -> None:
    """``fn(tok, messages)`` -> the v1 chat template's token ids, equal to mistral-common's."""
    # Imported here: mistral-common and the tokenizer file are needed by this check only.
    from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from ...tokenizer import Tokenizer

    reference = MistralTokenizer.v1()
    kinds = {"user": UserMessage, "assistant": AssistantMessage}
    tok = Tokenizer()
    cases = []
    for messages in ([{"role": "user", "content": "Hello!"}],
                     [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                      {"role": "user", "content": "And 3+3?"}]):
        request = ChatCompletionRequest(messages=[kinds[m["role"]](content=m["content"]) for m in messages])
        cases.append((f"{len(messages)} message(s)", (tok, messages),
                      reference.encode_chat_completion(request).tokens))
    check_cases("chat_ids(tok, messages)", fn, cases,
                "one BOS (tok.bos_id) first; each user turn is tok.encode(f'[INST] {content} [/INST]', "
                "bos=False); each assistant turn is tok.encode(content, bos=False) + [tok.eos_id]",
                compare=value_difference)
