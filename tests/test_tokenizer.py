"""Tokenizer against its two references: SentencePiece itself and mistral-common's v1 tokenizer."""

from importlib import resources

import numpy as np
import pytest
import torch
from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from sentencepiece import SentencePieceProcessor

from mistral_mini.tokenizer import Tokenizer

DATA = resources.files("mistral_common") / "data"

TEXTS = {
    "empty": "",
    "one space": " ",
    "ascii": "Hello, world!",
    "leading spaces": "   indented by three",
    "trailing spaces": "trailing   ",
    "whitespace runs": "a  b   c\t\td",
    "newlines": "line one\nline two\n\n\nafter a gap\n",
    "accents": "Café naïve, déjà vu, ½ Ångström, Straße",
    "cjk": "日本語のテキスト、中文，한국어",
    "emoji": "parrot 🦜, robot 🤖, smile 🙂, wave 👋🏽",
    "math letters": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "code": 'def square(x: int) -> int:\n    """Square."""\n    return x ** 2  # {x}\n',
    "digits": "3.14159 and 2024-01-01",
    "markers": "[INST] looks special but is text [/INST]",
}


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


@pytest.fixture(scope="module")
def sp() -> SentencePieceProcessor:
    return SentencePieceProcessor(model_file=str(DATA / "tokenizer.model.v1"))


@pytest.fixture(scope="module")
def reference() -> MistralTokenizer:
    return MistralTokenizer.v1()


def test_documented_facts(tok):
    # Mistral 7B's params.json says vocab_size 32000; <s> is 1 and </s> is 2 as in Llama's tokenizer.
    assert (tok.vocab_size, tok.bos_id, tok.eos_id) == (32000, 1, 2)
    assert tok.pieces([0, 1, 2]) == ["<unk>", "<s>", "</s>"]


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
@pytest.mark.parametrize("bos, eos", [(True, False), (False, False), (True, True), (False, True)])
def test_encode_matches_mistral_common(tok, reference, text, bos, eos):
    expected = reference.instruct_tokenizer.tokenizer.encode(text, bos=bos, eos=eos)
    assert tok.encode(text, bos=bos, eos=eos) == expected


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_encode_adds_bos_and_eos_around_sentencepiece(tok, sp, text):
    plain = sp.encode(text)
    assert tok.encode(text, bos=False) == plain
    assert tok.encode(text) == [1, *plain]
    assert tok.encode(text, eos=True) == [1, *plain, 2]


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_decode_round_trips_and_matches_references(tok, sp, reference, text):
    ids = tok.encode(text, eos=True)
    assert tok.decode(ids) == text  # byte fallback makes every string round-trip, BOS/EOS vanish
    assert tok.decode(ids) == reference.decode(ids)
    assert tok.decode(ids) == sp.decode(ids)


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_pieces_match_sentencepiece(tok, sp, text):
    ids = tok.encode(text)
    assert tok.pieces(ids) == [sp.id_to_piece(i) for i in ids]


@pytest.mark.parametrize("char", ["🦜", "🤖", "𝔘"])
def test_byte_fallback_spells_utf8_bytes(tok, char):
    pieces = tok.pieces(tok.encode(char, bos=False))
    assert pieces[0] == "▁"  # the dummy prefix
    assert all(p.startswith("<0x") for p in pieces[1:])
    assert bytes(int(p[3:5], 16) for p in pieces[1:]) == char.encode("utf-8")


def test_decode_and_pieces_accept_numpy_and_torch_ids(tok):
    ids = tok.encode("Hello 🦜")
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == "Hello 🦜"
    assert tok.pieces(torch.tensor(ids)) == tok.pieces(ids)


@pytest.mark.parametrize("ids", [[-1], [32000], [1, 22557, 10**6]])
@pytest.mark.parametrize("method", ["decode", "pieces"])
def test_out_of_range_ids_raise(tok, ids, method):
    with pytest.raises(ValueError, match=r"outside the vocabulary: expected 0 <= id < 32000"):
        getattr(tok, method)(ids)


@pytest.mark.parametrize("ids", [["hello"], [1.5], [1, None]])
def test_non_integer_ids_raise(tok, ids):
    with pytest.raises(TypeError, match="not an integer token id"):
        tok.decode(ids)


@pytest.mark.parametrize("text", [None, b"bytes", 42, ["a list"]])
def test_encode_rejects_non_str(tok, text):
    with pytest.raises(TypeError, match="encode expects a str"):
        tok.encode(text)


def as_request(messages: list[dict]) -> ChatCompletionRequest:
    classes = {"user": UserMessage, "assistant": AssistantMessage}
    return ChatCompletionRequest(messages=[classes[m["role"]](content=m["content"]) for m in messages])


def chat(*contents: str) -> list[dict]:
    """A conversation from its contents: user, assistant, user, ..."""
    return [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(contents)]


CHATS = {
    "one user turn": chat("What is 2+2?"),
    "empty user turn": chat(""),
    "two user turns": chat("What is 2+2?", "4", "And 3+3?"),
    "three user turns": chat("Bonjour ! Ça va ?", "Oui, très bien 🙂", "写一首诗", "春眠不觉晓\n处处闻啼鸟",
                             "🦜?"),
    "whitespace": chat("  leading\n\ntrailing  ", "\tanswer with tab\n", " x "),
    "code": chat(TEXTS["code"], "```python\nprint(1)\n```", TEXTS["markers"]),
}


@pytest.mark.parametrize("messages", CHATS.values(), ids=CHATS.keys())
def test_encode_chat_matches_mistral_common_v1(tok, reference, messages):
    expected = reference.encode_chat_completion(as_request(messages)).tokens
    assert tok.encode_chat(messages) == expected


def test_chat_template_layout(tok):
    messages = chat("Hi", "Hello!", "Bye")
    ids = tok.encode_chat(messages)
    assert ids.count(tok.bos_id) == 1 and ids[0] == tok.bos_id
    assert ids.count(tok.eos_id) == 1  # one per assistant answer, none after the last user turn
    assert tok.decode(ids) == "[INST] Hi [/INST] Hello! [INST] Bye [/INST]"
    user_turn = ["▁[", "INST", "]", "▁Hi", "▁[", "/", "INST", "]"]
    assert tok.pieces(ids[:12]) == ["<s>", *user_turn, "▁Hello", "!", "</s>"]


BAD_CHATS = {
    "empty": ([], "conversation is empty"),
    "not a list": ("Hello", "must be a list"),
    "starts with assistant": ([{"role": "assistant", "content": "Hi"}], "alternate user, assistant"),
    "two users in a row": (chat("a") + chat("b"), "alternate user, assistant"),
    "ends with assistant": (chat("a", "b"), "must end with a user turn"),
    "system role": ([{"role": "system", "content": "Be nice"}] + chat("a"), "only 'user' and 'assistant'"),
    "unknown role": ([{"role": "tool", "content": "a"}], "only 'user' and 'assistant'"),
    "content None": ([{"role": "user", "content": None}], "must be a str"),
    "content int": (chat("a", "b") + [{"role": "user", "content": 3}], "must be a str"),
    "content list": ([{"role": "user", "content": ["a"]}], "must be a str"),
    "missing content": ([{"role": "user"}], "must be a dict with 'role' and 'content'"),
    "message not a dict": (["Hello"], "must be a dict with 'role' and 'content'"),
    "empty assistant answer": (chat("a", "", "c"), "empty content"),
}


@pytest.mark.parametrize("messages, message", BAD_CHATS.values(), ids=BAD_CHATS.keys())
def test_encode_chat_rejects_bad_conversations(tok, messages, message):
    with pytest.raises(ValueError, match=message):
        tok.encode_chat(messages)


def test_other_model_file_is_used():
    # mistral-common also ships the v3 tokenizer (32,768 pieces), so a path really changes the vocabulary.
    path = DATA / "mistral_instruct_tokenizer_240323.model.v3"
    expected = SentencePieceProcessor(model_file=str(path))
    tok = Tokenizer(path)
    assert tok.vocab_size == expected.vocab_size() != 32000
    assert tok.encode("Hello 🦜") == expected.encode("Hello 🦜", add_bos=True)


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a SentencePiece tokenizer.model file"):
        Tokenizer(tmp_path / "tokenizer.model")


def test_folder_instead_of_model_file(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        Tokenizer(tmp_path)


def test_invalid_model_file(tmp_path):
    path = tmp_path / "tokenizer.model"
    path.write_text("not a sentencepiece model")
    with pytest.raises(ValueError, match="is not a SentencePiece model file"):
        Tokenizer(path)
