"""Checks of notebook 09 (generation): temperature on probabilities, top-p, min-p, and a chat with a system prompt.

Shapes: V vocabulary, B batch. The filters work on probabilities [..., V] over the last axis.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral

import torch

from ...generation import top_p_filter
from .checking import check_cases
from .compare import describe, tensor_difference

__all__ = ["check_reheat", "check_top_p", "check_min_p", "check_chat_ids"]

WORKED = torch.tensor([0.5, 0.25, 0.1875, 0.0625])  # the worked example of generation.py's docstring
SHUFFLED = torch.tensor([0.0625, 0.25, 0.5, 0.1875])  # the same, not sorted


def _batch(seed: int, shape: tuple[int, ...] = (3, 12)) -> torch.Tensor:
    return torch.softmax(torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2, dim=-1)


def _probabilities(got, expected: torch.Tensor) -> str | None:
    """``tensor_difference``, after refusing what is not a float tensor of probabilities (a bool mask, a list)."""
    if isinstance(got, torch.Tensor) and not got.dtype.is_floating_point:
        return (f"expected probabilities (a float tensor of shape {tuple(expected.shape)}), got {describe(got)}: "
                "return the filtered probabilities themselves, not which tokens are kept")
    return tensor_difference(got, expected)


def _normalized(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / x.sum(dim, keepdim=True)


# ---------------------------------------------------------------------------------------------------------
# Exercise 1: temperature, given probabilities instead of logits
# ---------------------------------------------------------------------------------------------------------

REHEAT_MISTAKES = [
    ("the probabilities were treated as logits (a softmax of probs / T): a logit is a log-probability, up "
     "to a constant that the softmax ignores.", lambda p, t: torch.softmax(p / t, dim=-1)),
    ("dividing probabilities by T and renormalizing changes nothing: the T cancels. Temperature divides the "
     "logits, and what does dividing a log do to the probability?", lambda p, t: _normalized(p / t)),
    ("a power of T instead of 1/T: a temperature below 1 must sharpen the distribution, not flatten it.",
     lambda p, t: _normalized(p ** t)),
    ("the result is not renormalized: after the change each row must add up to 1 again.", lambda p, t: p ** (1 / t)),
    ("renormalized over the wrong axis: each row (the last axis) is one distribution and must add up to 1.",
     lambda p, t: _normalized(p ** (1 / t), dim=0)),
]


def check_reheat(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(probs, temperature)`` -> softmax(logits / temperature) for any logits whose softmax is ``probs``."""
    cases = []
    for label, probs, temperature in (
            ("probs of shape (3, 12), temperature 0.5", _batch(1), 0.5),
            ("probs [0.5, 0.25, 0.1875, 0.0625], temperature 2.0", WORKED, 2.0),
            ("probs with zeros (after a top-p filter), temperature 0.7", top_p_filter(_batch(2, (8,)), 0.8), 0.7),
            ("probs [0.5, 0.25, 0.1875, 0.0625], temperature 1.0", WORKED, 1.0)):
        cases.append((label, (probs, temperature), torch.softmax(probs.log() / temperature, dim=-1)))
    check_cases("reheat(probs, temperature)", fn, cases, compare=_probabilities, mistakes=REHEAT_MISTAKES,
                hint="if all you have is the probabilities, what were the logits, up to a constant that the "
                     "softmax does not see?")


# ---------------------------------------------------------------------------------------------------------
# Exercise 2: top-p
# ---------------------------------------------------------------------------------------------------------


def _nucleus(probs: torch.Tensor, p: float, keep: Callable, descending: bool = True, back: bool = True,
             renormalize: Callable = _normalized) -> torch.Tensor:
    """Top-p with the switches that the classic mistakes flip; keep(sorted, p) says which sorted tokens stay."""
    sorted_probs, order = probs.sort(dim=-1, descending=descending)  # [..., V]
    kept = torch.where(keep(sorted_probs, p), sorted_probs, torch.zeros_like(sorted_probs))
    kept[..., 0] = sorted_probs[..., 0]  # the likeliest is always kept
    if back:
        kept = torch.zeros_like(probs).scatter(-1, order, kept)  # back to vocabulary order
    return renormalize(kept)


def _mass_before(s: torch.Tensor) -> torch.Tensor:
    return s.cumsum(-1) - s


TOP_P_MISTAKES = [
    ("one token too many when the total lands exactly on p: a token whose likelier tokens already add up "
     "to p is not needed (try p = 0.75 on [0.5, 0.25, 0.1875, 0.0625] by hand).",
     lambda pr, p: _nucleus(pr, p, lambda s, p: _mass_before(s) <= p)),
    ("one token too few: you stop *before* the token that carries the total past p; the nucleus is the "
     "smallest set that reaches p, so that token belongs to it.",
     lambda pr, p: _nucleus(pr, p, lambda s, p: s.cumsum(-1) <= p)),
    ("nothing was removed: every token outside the nucleus must get probability 0.", lambda pr, p: pr.clone()),
    ("the kept probabilities are not renormalized: they must add up to 1 again.",
     lambda pr, p: _nucleus(pr, p, lambda s, p: _mass_before(s) < p, renormalize=lambda x: x)),
    ("the result is still in sorted order: put each kept probability back at its token's place in the "
     "vocabulary.", lambda pr, p: _nucleus(pr, p, lambda s, p: _mass_before(s) < p, back=False)),
    ("sorted ascending: the nucleus starts from the likeliest token, so sort in descending order.",
     lambda pr, p: _nucleus(pr, p, lambda s, p: _mass_before(s) < p, descending=False)),
    ("renormalized over the whole batch: each row (the last axis) is one distribution.",
     lambda pr, p: _nucleus(pr, p, lambda s, p: _mass_before(s) < p, renormalize=lambda x: x / x.sum())),
]


def check_top_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(probs, p)`` -> probabilities with only the nucleus kept, renormalized (like top_p_filter)."""
    cases = [(f"probs {label}, top_p {p}", (probs, p), top_p_filter(probs, p)) for label, probs, p in (
        ("[0.5, 0.25, 0.1875, 0.0625]", WORKED, 0.7),
        ("[0.0625, 0.25, 0.5, 0.1875] (not sorted)", SHUFFLED, 0.7),
        ("[0.5, 0.25, 0.1875, 0.0625]", WORKED, 0.75),  # lands exactly on p after two tokens
        ("of shape (3, 12)", _batch(0), 0.9),
        ("[0.5, 0.25, 0.1875, 0.0625]", WORKED, 0.01),
        ("[0.5, 0.25, 0.1875, 0.0625]", WORKED, 1.0),
    )]
    check_cases("top_p(probs, p)", fn, cases, compare=_probabilities, mistakes=TOP_P_MISTAKES,
                forbidden=["mistral_mini.generation.top_p_filter"],
                hint="do the worked example [0.5, 0.25, 0.1875, 0.0625] by hand at p = 0.7 and p = 0.75: which "
                     "tokens are in the smallest set that reaches p? Then compare with your function.")


# ---------------------------------------------------------------------------------------------------------
# Exercise 3: min-p
# ---------------------------------------------------------------------------------------------------------


def _min_p(probs: torch.Tensor, p_base: float, rule: Callable = lambda pr, top, p: pr >= p * top,
           top: Callable = lambda pr: pr.amax(-1, keepdim=True), renormalize: Callable = _normalized) -> torch.Tensor:
    return renormalize(torch.where(rule(probs, top(probs), p_base), probs, torch.zeros_like(probs)))


MIN_P_MISTAKES = [
    ("the threshold is p_base itself: min-p scales it by the likeliest token's probability, so that it "
     "follows how sure the model is.", lambda pr, p: _min_p(pr, p, rule=lambda pr, top, p: pr >= p)),
    ("a token exactly at the threshold was dropped: the rule keeps probabilities *at least* p_base times "
     "the top one.", lambda pr, p: _min_p(pr, p, rule=lambda pr, top, p: pr > p * top)),
    ("the kept probabilities are not renormalized: they must add up to 1 again.",
     lambda pr, p: _min_p(pr, p, renormalize=lambda x: x)),
    ("the likeliest token of the whole batch set every row's threshold: each row has its own top token.",
     lambda pr, p: _min_p(pr, p, top=lambda pr: pr.max())),
    ("that is the tokens' *share* of the top probability, not the filtered distribution: zero the tokens "
     "under the threshold and renormalize the rest.",
     lambda pr, p: _min_p(pr, p, renormalize=lambda x: x / x.amax(-1, keepdim=True))),
]


def check_min_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(probs, p_base)`` -> keep the tokens with probability >= p_base x the likeliest one's; renormalize."""
    peaked = torch.tensor([[0.9, 0.05, 0.03, 0.02], [0.3, 0.28, 0.22, 0.2]])  # a sure row and an unsure one
    cases = [(f"probs {label}, p_base {p}", (probs, p), _min_p(probs, p)) for label, probs, p in (
        ("of shape (3, 12)", _batch(3), 0.1),
        ("[[0.9, 0.05, 0.03, 0.02], [0.3, 0.28, 0.22, 0.2]]", peaked, 0.5),
        ("[0.5, 0.25, 0.1875, 0.0625]", WORKED, 0.5),  # 0.25 is exactly half the top: kept
        ("[0.0625, 0.25, 0.5, 0.1875] (not sorted)", SHUFFLED, 0.3),
        ("[0.5, 0.25, 0.1875, 0.0625]", WORKED, 0.0),
    )]
    check_cases("min_p(probs, p_base)", fn, cases, compare=_probabilities, mistakes=MIN_P_MISTAKES,
                hint="work the sure row [0.9, 0.05, 0.03, 0.02] and the unsure row [0.3, 0.28, 0.22, 0.2] by "
                     "hand at p_base 0.5: what is each row's threshold, and which tokens clear it?")


# ---------------------------------------------------------------------------------------------------------
# Exercise 4: the chat template, with a system prompt
# ---------------------------------------------------------------------------------------------------------


def _chat(tok, system: str | None, messages: list[dict], *, bos: str = "once", eos: str = "id",
          inst: str = "[INST] {} [/INST]", system_at: str = "first", sep: str = "\n\n"
          ) -> list[int]:
    """The v1 template with a system prompt, and the switches that the classic mistakes flip."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    ids = [tok.bos_id] if bos in ("once", "again") else []
    if system and system_at == "separate":
        ids += tok.encode(system, bos=False)
    if system and system_at == "own turn":
        ids += tok.encode(inst.format(system), bos=False)
    for i, m in enumerate(messages):
        content = m["content"]
        if m["role"] == "assistant":
            ids += tok.encode(content + ("</s>" if eos == "text" else ""), bos=False)
            ids += [tok.eos_id] if eos == "id" else []
            continue
        if system and (system_at == "every" or (system_at, i) in (("first", users[0]), ("last", users[-1]))):
            content = system + sep + content
        if system and system_at == "after" and i == users[0]:
            content = content + sep + system
        ids += [tok.bos_id] if bos in ("every turn", "again") else []
        ids += tok.encode(inst.format(content), bos=False)
    return ids


CHAT_MISTAKES = [
    ("BOS (tok.bos_id) is missing: the ids start with exactly one BOS.", dict(bos="none")),
    ("BOS before every user turn: tok.encode adds one unless bos=False, and the template has a single BOS "
     "at the very start.", dict(bos="every turn")),
    ("BOS again before every user turn: tok.encode adds one unless bos=False, and the template has a single "
     "BOS at the very start.", dict(bos="again")),
    ("EOS (tok.eos_id) is missing after an assistant turn: each answer ends with it.", dict(eos="none")),
    ("'</s>' written as text is three ordinary pieces ('</', 's', '>'), not the EOS token: end each answer "
     "with the id tok.eos_id.", dict(eos="text")),
    ("[INST] spacing: v1 writes '[INST] ' + content + ' [/INST]', a space inside each marker.",
     dict(inst="[INST]{}[/INST]")),
    ("[INST] spacing: v1 writes '[INST] ' + content + ' [/INST]', a space inside each marker.",
     dict(inst="[INST] {}[/INST]")),
    ("[INST] spacing: v1 writes '[INST] ' + content + ' [/INST]', a space inside each marker.",
     dict(inst="[INST]{} [/INST]")),
    ("the system prompt was encoded on its own, outside [INST]: it belongs inside the first user turn.",
     dict(system_at="separate")),
    ("the system prompt got an [INST] turn of its own: v1 has none, it goes inside the first user turn.",
     dict(system_at="own turn")),
    ("the system prompt is repeated in every user turn: it goes in the first one only.", dict(system_at="every")),
    ("the system prompt went into the last user turn: mistral-common's v1 puts it in the first one.",
     dict(system_at="last")),
    ("the system prompt comes after the user's text: it comes first, then the blank line.", dict(system_at="after")),
    ("the separator is not a blank line: system prompt, '\\n\\n', then the user's text.", dict(sep="\n")),
    ("the separator is not a blank line: system prompt, '\\n\\n', then the user's text.", dict(sep=" ")),
]


def _piece(tok, token_id: int) -> str:
    try:
        return tok.pieces([token_id])[0]
    except Exception:  # an id outside the vocabulary
        return f"<id {token_id}?>"


def _around(tok, ids: list[int], at: int, width: int = 4) -> str:
    """The pieces around index ``at``, the one at ``at`` marked: ``... ▁[ INST ] «▁Hi» ▁[ / ...``."""
    start, end = max(0, at - width), min(len(ids), at + width + 1)
    pieces = [f"«{_piece(tok, ids[i])}»" if i == at else _piece(tok, ids[i]) for i in range(start, end)]
    if at >= len(ids):
        pieces.append("«(end)»")
    return ("... " if start > 0 else "") + " ".join(pieces) + (" ..." if end < len(ids) else "")


def _ids_difference(tok) -> Callable[[object, list[int]], str | None]:
    """Compare token ids and show the pieces around the first difference (both lists, side by side)."""

    def compare(got, expected: list[int]) -> str | None:
        if isinstance(got, torch.Tensor) and got.dim() == 1 and not got.dtype.is_floating_point:
            got = got.tolist()
        if not isinstance(got, (list, tuple)) or not all(
                isinstance(i, Integral) and not isinstance(i, bool) for i in got):
            return f"expected a list of int token ids like {expected[:4]}..., got {describe(got)}"
        got = [int(i) for i in got]
        if got == expected:
            return None
        shorter = min(len(got), len(expected))
        at = next((i for i in range(shorter) if got[i] != expected[i]), shorter)
        return (f"{len(got)} ids, expected {len(expected)}; the first difference is at index {at}, marked « »:\n"
                f"got      {_around(tok, got, at)}\nexpected {_around(tok, expected, at)}")

    return compare


def check_chat_ids(fn: Callable) -> None:
    """``fn(tok, system, messages)`` -> the v1 template's ids with ``system`` (or None) in the first user turn,
    equal to mistral-common's."""
    # Imported here: mistral-common and the tokenizer file are needed by this check only.
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from ...tokenizer import Tokenizer

    reference, tok = MistralTokenizer.v1(), Tokenizer()
    kinds = {"user": UserMessage, "assistant": AssistantMessage}
    two_turns = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                 {"role": "user", "content": "And 3+3?"}]
    cases = []
    for label, system, messages in (
            ("a system prompt and 3 messages", "Answer in French.", two_turns),
            ("a system prompt and 1 message", "You are a pirate.", [{"role": "user", "content": "Hello!"}]),
            ("no system prompt (None) and 3 messages", None, two_turns)):
        turns = [SystemMessage(content=system)] if system else []
        turns += [kinds[m["role"]](content=m["content"]) for m in messages]
        cases.append((label, (tok, system, messages), reference.encode_chat_completion(
            ChatCompletionRequest(messages=turns)).tokens))
    mistakes = [(says, lambda t, s, m, _switches=switches: _chat(t, s, m, **_switches))
                for says, switches in CHAT_MISTAKES]
    check_cases("chat_ids(tok, system, messages)", fn, cases, compare=_ids_difference(tok), mistakes=mistakes,
                forbidden=["mistral_mini.tokenizer.Tokenizer.encode_chat",
                           "mistral_common.tokens.tokenizers.mistral.MistralTokenizer.encode_chat_completion"],
                hint="print tok.pieces(...) of your ids next to the template above: where does the first "
                     "difference come from?")
