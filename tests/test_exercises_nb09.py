"""The checks of notebook 09 (generation): right answers pass, each classic mistake is named, wrong types get
a message instead of a traceback, and the functions an exercise rules out are switched off."""

import numpy as np
import pytest
import torch

from mistral_mini import generation
from mistral_mini.generation import top_p_filter
from mistral_mini.lessons import exercises as ex
from mistral_mini.tokenizer import Tokenizer
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package
# ---------------------------------------------------------------------------------------------------------


def reheat(probs, temperature):
    powered = probs ** (1 / temperature)
    return powered / powered.sum(-1, keepdim=True)


def top_p(probs, p, keep=lambda before, sorted_probs, p: before < p, descending=True, back=True, normalize=True):
    """Top-p written out; the keyword arguments make the classic mistakes."""
    sorted_probs, order = probs.sort(dim=-1, descending=descending)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the likelier tokens
    kept = torch.where(keep(before, sorted_probs, p), sorted_probs, 0.0)
    kept[..., 0] = sorted_probs[..., 0]
    if back:
        kept = torch.zeros_like(probs).scatter(-1, order, kept)
    return kept / kept.sum(-1, keepdim=True) if normalize else kept


def top_p_loop(probs, p):
    """One row at a time, with a Python loop: the nucleus grows until it reaches p."""
    rows = probs.reshape(-1, probs.shape[-1])  # [B, V]
    out = torch.zeros_like(rows)
    for r, row in enumerate(rows):
        total = 0.0
        for i in sorted(range(len(row)), key=lambda i: -row[i].item()):
            out[r, i] = row[i]
            total += row[i].item()
            if total >= p:
                break
    return (out / out.sum(-1, keepdim=True)).reshape(probs.shape)


def min_p(probs, p_base):
    kept = probs * (probs >= p_base * probs.max(-1, keepdim=True).values)
    return kept / kept.sum(-1, keepdim=True)


def chat_ids(tok, system, messages):
    ids = [tok.bos_id]
    for i, m in enumerate(messages):
        if m["role"] == "user":
            text = m["content"] if not system or i > 0 else system + "\n\n" + m["content"]
            ids += tok.encode("[INST] " + text + " [/INST]", bos=False)
        else:
            ids += tok.encode(m["content"], bos=False) + [tok.eos_id]
    return ids


@pytest.mark.parametrize("check, right", [
    (ex.check_reheat, reheat),
    (ex.check_reheat, lambda p, t: torch.softmax(torch.log(p) / t, dim=-1)),
    (ex.check_top_p, top_p),
    (ex.check_top_p, top_p_loop),
    (ex.check_min_p, min_p),
    (ex.check_min_p, lambda p, b: torch.where(p >= b * p.amax(-1, keepdim=True), p, 0.0)
     / torch.where(p >= b * p.amax(-1, keepdim=True), p, 0.0).sum(-1, keepdim=True)),
    (ex.check_chat_ids, chat_ids),
    (ex.check_chat_ids, lambda tok, s, m: torch.tensor(chat_ids(tok, s, m))),  # a tensor of ids will do
    (ex.check_chat_ids, lambda tok, s, m: [np.int64(i) for i in chat_ids(tok, s, m)]),
])
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


def normalized(x, dim=-1):
    return x / x.sum(dim, keepdim=True)


REHEAT_WRONG = [
    ("softmax of probs", lambda p, t: torch.softmax(p / t, -1), "the probabilities were treated as logits"),
    ("probs / T", lambda p, t: normalized(p / t), "dividing probabilities by T and renormalizing changes nothing"),
    ("power T", lambda p, t: normalized(p ** t), "a power of T instead of 1/T"),
    ("log times T", lambda p, t: torch.softmax(p.log() * t, -1), "a power of T instead of 1/T"),
    ("not renormalized", lambda p, t: p ** (1 / t), "the result is not renormalized"),
    ("wrong axis", lambda p, t: normalized(p ** (1 / t), dim=0), "renormalized over the wrong axis"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in REHEAT_WRONG], ids=[n for n, _, _ in REHEAT_WRONG])
def test_reheat_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_reheat, wrong, ["mistake: " + says], capsys)


TOP_P_WRONG = [
    # The issue: `mass_before <= p` used to pass; p = 0.75 on the worked example now tells it apart.
    ("mass before <= p", lambda pr, p: top_p(pr, p, keep=lambda b, s, p: b <= p),
     ["on probs [0.5, 0.25, 0.1875, 0.0625], top_p 0.75", "mistake: one token too many when the total lands"]),
    ("total <= p", lambda pr, p: top_p(pr, p, keep=lambda b, s, p: b + s <= p), ["mistake: one token too few"]),
    ("nothing removed", lambda pr, p: pr, ["mistake: nothing was removed"]),
    ("not renormalized", lambda pr, p: top_p(pr, p, normalize=False), ["mistake: the kept probabilities are not"]),
    ("left sorted", lambda pr, p: top_p(pr, p, back=False), ["(not sorted)", "mistake: the result is still in sorted"]),
    ("ascending", lambda pr, p: top_p(pr, p, descending=False), ["mistake: sorted ascending"]),
    ("renormalized over the batch", lambda pr, p: (lambda k: k / k.sum())(top_p(pr, p, normalize=False)),
     ["of shape (3, 12)", "mistake: renormalized over the whole batch"]),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in TOP_P_WRONG], ids=[n for n, _, _ in TOP_P_WRONG])
def test_top_p_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_top_p, wrong, says, capsys)


def min_p_with(probs, p_base, rule=lambda p, top, b: p >= b * top, top=lambda p: p.amax(-1, keepdim=True),
               normalize=normalized):
    return normalize(torch.where(rule(probs, top(probs), p_base), probs, 0.0))


MIN_P_WRONG = [
    ("absolute threshold", lambda p, b: min_p_with(p, b, rule=lambda p, top, b: p >= b), "the threshold is p_base"),
    ("strictly above", lambda p, b: min_p_with(p, b, rule=lambda p, top, b: p > b * top),
     "a token exactly at the threshold was dropped"),
    ("not renormalized", lambda p, b: min_p_with(p, b, normalize=lambda x: x),
     "the kept probabilities are not renormalized"),
    ("the batch's top", lambda p, b: min_p_with(p, b, top=lambda p: p.max()), "the likeliest token of the whole batch"),
    ("share of the top", lambda p, b: min_p_with(p, b, normalize=lambda x: x / x.amax(-1, keepdim=True)),
     "that is the tokens' *share* of the top probability"),
]


@pytest.mark.parametrize("wrong, says", [(w, s) for _, w, s in MIN_P_WRONG], ids=[n for n, _, _ in MIN_P_WRONG])
def test_min_p_names_the_mistake(wrong, says, capsys):
    assert_check_fails(ex.check_min_p, wrong, ["mistake: " + says], capsys)


def chat_with(tok, system, messages, bos=True, bos_each=False, eos=True, eos_text=False, inst="[INST] {} [/INST]",
              where="first", sep="\n\n", system_apart=False, system_turn=False):
    """chat_ids written with the classic mistakes as switches."""
    ids = [tok.bos_id] if bos else []
    if system and system_apart:
        ids += tok.encode(system, bos=False)
    if system and system_turn:
        ids += tok.encode(inst.format(system), bos=False)
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            ids += tok.encode(m["content"] + ("</s>" if eos_text else ""), bos=False) + ([tok.eos_id] * eos)
            continue
        text = m["content"]
        chosen = {"first": users[:1], "last": users[-1:], "every": users, "after": users[:1]}.get(where, [])
        if system and not (system_apart or system_turn) and i in chosen:
            text = text + sep + system if where == "after" else system + sep + text
        ids += tok.encode(inst.format(text), bos=bos_each)
    return ids


CHAT_WRONG = [
    ("no BOS", dict(bos=False), "BOS (tok.bos_id) is missing"),
    ("BOS again every turn", dict(bos_each=True), "BOS again before every user turn"),
    ("BOS only from encode", dict(bos=False, bos_each=True), "BOS before every user turn"),
    ("no EOS", dict(eos=False), "EOS (tok.eos_id) is missing after an assistant turn"),
    ("</s> as text", dict(eos=False, eos_text=True), "'</s>' written as text"),
    ("no spaces in [INST]", dict(inst="[INST]{}[/INST]"), "[INST] spacing"),
    ("no space before [/INST]", dict(inst="[INST] {}[/INST]"), "[INST] spacing"),
    ("system apart", dict(system_apart=True), "the system prompt was encoded on its own"),
    ("system turn", dict(system_turn=True), "the system prompt got an [INST] turn of its own"),
    ("system everywhere", dict(where="every"), "the system prompt is repeated in every user turn"),
    ("system last", dict(where="last"), "the system prompt went into the last user turn"),
    ("system after", dict(where="after"), "the system prompt comes after the user's text"),
    ("one newline", dict(sep="\n"), "the separator is not a blank line"),
]


@pytest.mark.parametrize("switches, says", [(w, s) for _, w, s in CHAT_WRONG], ids=[n for n, _, _ in CHAT_WRONG])
def test_chat_ids_names_the_mistake(switches, says, capsys):
    assert_check_fails(ex.check_chat_ids, lambda t, s, m: chat_with(t, s, m, **switches), ["mistake: " + says], capsys)


def test_chat_ids_shows_the_pieces_around_the_first_difference(capsys):
    """The issue: a missing id showed the first 12 ids of each list, which were the same."""
    tok = Tokenizer()
    status, out = verdict(ex.check_chat_ids, lambda t, s, m: chat_with(t, s, m, eos=False), capsys)
    assert status == "fail"
    assert "the first difference is at index 23" in out, out
    eos = tok.pieces([tok.eos_id])[0]
    assert f"«{eos}»" in out and "«▁[»" in out, out  # got "▁[" where EOS was expected, both marked


# ---------------------------------------------------------------------------------------------------------
# wrong types and forbidden functions
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, says", [
    # The issue: a bool mask crashed the top_p check.
    (ex.check_top_p, lambda pr, p: top_p(pr, p) > 0, "got a torch.Tensor of shape (4,), dtype torch.bool"),
    (ex.check_top_p, lambda pr, p: top_p(pr, p).tolist(), "expected a torch.Tensor of shape (4,), got a list"),
    (ex.check_top_p, lambda pr, p: top_p(pr, p).numpy(), "numpy.ndarray"),
    (ex.check_min_p, lambda pr, b: min_p(pr, b) > 0, "return the filtered probabilities themselves"),
    (ex.check_reheat, lambda pr, t: 1.0, "expected a torch.Tensor of shape (3, 12), got float 1.0"),
    (ex.check_reheat, lambda pr, t: pr.argmax(-1), "dtype torch.int64"),
    (ex.check_chat_ids, lambda tok, s, m: tok.decode(chat_ids(tok, s, m)), "expected a list of int token ids"),
    (ex.check_chat_ids, lambda tok, s, m: [float(i) for i in chat_ids(tok, s, m)], "expected a list of int token"),
    (ex.check_chat_ids, lambda tok, s, m: [10**9], "<id 1000000000?>"),
    (ex.check_chat_ids, 42, "expected a function"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)


def calls_top_p_filter(probs, p):
    return top_p_filter(probs, p)  # bound in this module's globals, as a notebook's import would be


def test_top_p_filter_is_switched_off(capsys):
    """The issue: an answer that called top_p_filter passed although the exercise rules it out."""
    assert_check_fails(ex.check_top_p, calls_top_p_filter, ["switched off", "top_p_filter"], capsys)
    assert_check_fails(ex.check_top_p, lambda pr, p: generation.top_p_filter(pr, p), ["switched off"], capsys)
    assert generation.top_p_filter is top_p_filter and calls_top_p_filter.__globals__["top_p_filter"] is top_p_filter


def test_encode_chat_is_switched_off(capsys):
    assert_check_fails(ex.check_chat_ids, lambda tok, s, m: tok.encode_chat(m), ["switched off", "encode_chat"],
                       capsys)
