"""Mistral 7B's tokenizer: text to token ids and back, plus the v1 ``[INST]`` chat template.

What a learner should know:

* **SentencePiece BPE.** The model never sees characters, only ids into a vocabulary of 32,000 *pieces*.
  SentencePiece treats text as a raw character stream in which a space is just the character ``▁``, so
  ``"Hello world"`` becomes ``['▁Hello', '▁world']``: a word's leading space is part of its piece. It also
  prepends one ``▁`` to the whole text (the "dummy prefix"), which is why the first word looks like every
  other word. The pieces were learned by byte-pair encoding: start from characters and keep merging the
  most frequent neighbouring pair.
* **Byte fallback.** A character with no piece of its own is not mapped to "unknown": it is spelled as its
  UTF-8 bytes, each a piece ``<0x00>``..``<0xFF>`` (ids 3..258). The parrot ``🦜`` is four bytes, so it
  becomes ``['▁', '<0xF0>', '<0x9F>', '<0xA6>', '<0x9C>']``. Frequent emoji such as ``🙂`` have a piece.
  Any string therefore encodes, and decoding gives back exactly the text that went in.
* **BOS and EOS.** Id 1 ``<s>`` (beginning of sequence) starts every document the model was trained on,
  so prompts start with it too; id 2 ``</s>`` (end of sequence) is what the model emits when it is done.
  They are control tokens: ``decode`` drops them.
* **The v1 chat template.** Mistral 7B Instruct was fine-tuned on conversations written as plain text::

      <s>[INST] What is 2+2? [/INST] 4</s>[INST] And 3+3? [/INST]

  One BOS at the very start. Each user turn is the text ``"[INST] " + content + " [/INST]"``, encoded on
  its own (so it gains a dummy-prefix ``▁``). Each assistant answer is encoded on its own and closed by
  EOS, which teaches the model to stop after answering. The conversation ends with a user turn: the
  model writes the next answer. In v1, ``[INST]`` is ordinary text, split into ``'▁['``, ``'INST'``,
  ``']'``; later Mistral tokenizers made it a single control token. The pieces of the example above::

      <s> ▁[ INST ] ▁What ▁is ▁ 2 + 2 ? ▁[ / INST ] ▁ 4 </s> ▁[ INST ] ▁And ▁ 3 + 3 ? ▁[ / INST ]

  (ids 1, 733, 16289, 28793, 1824, ...). Digits are always split one by one, so ``"2"`` is ``'▁'`` + ``'2'``.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from sentencepiece import SentencePieceProcessor

# Where mistral-common keeps the original Mistral 7B tokenizer (Mistral's own "v1" of the file).
DEFAULT_MODEL_PACKAGE = "mistral_common"
DEFAULT_MODEL_FILE = "data/tokenizer.model.v1"

# v1 knows only these two roles; a system prompt has no place of its own in the template.
ROLES = ("user", "assistant")


class Tokenizer:
    """Mistral 7B's SentencePiece tokenizer and its v1 chat template.

    ``Tokenizer()`` loads the tokenizer shipped inside mistral-common; ``Tokenizer(path)`` loads another
    SentencePiece ``tokenizer.model`` file, such as the one next to downloaded Mistral weights.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is not None:
            self._sp = load_sentencepiece(Path(path))
            return
        try:
            default_model = resources.files(DEFAULT_MODEL_PACKAGE).joinpath(DEFAULT_MODEL_FILE)
        except ModuleNotFoundError:
            raise FileNotFoundError(
                f"Tokenizer() loads {DEFAULT_MODEL_FILE} from the {DEFAULT_MODEL_PACKAGE!r} package, which "
                "is not installed: pip install mistral-common, or pass the path of a tokenizer.model"
            ) from None
        # as_file gives a real path even if the package is zipped; SentencePiece reads the file right away.
        with resources.as_file(default_model) as default_path:
            self._sp = load_sentencepiece(default_path)

    @property
    def vocab_size(self) -> int:
        """Number of pieces, hence valid ids are 0..vocab_size-1 (32,000 for Mistral 7B)."""
        return self._sp.vocab_size()

    @property
    def bos_id(self) -> int:
        """Id of ``<s>``, the beginning-of-sequence token (1)."""
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        """Id of ``</s>``, the end-of-sequence token (2)."""
        return self._sp.eos_id()

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        """Token ids of ``text``, with BOS first (prompts start like training documents) unless bos=False."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self._sp.encode(text, add_bos=bos, add_eos=eos)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; control tokens such as BOS and EOS decode to nothing."""
        return self._sp.decode(self._checked_ids(ids))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The piece behind each id, e.g. ``'▁Hello'``, ``'<0xF0>'`` (a byte-fallback piece) or ``'<s>'``."""
        return [self._sp.id_to_piece(token_id) for token_id in self._checked_ids(ids)]

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Ids of a conversation in the v1 template, ready for the model to write the next answer.

        ``messages`` alternate ``{"role": "user", "content": ...}`` and ``{"role": "assistant", ...}``,
        starting and ending with a user turn. The ids equal mistral-common's v1 instruct encoding.
        """
        check_conversation(messages)
        ids = [self.bos_id]
        for message in messages:
            ids += self._encode_turn(message["role"], message["content"])
        return ids

    def _encode_turn(self, role: str, content: str) -> list[int]:
        if role == "user":
            # The markers and the content are one string, so SentencePiece sees "[INST] Hi [/INST]" whole.
            return self._sp.encode(f"[INST] {content} [/INST]")
        # EOS ends each answer: in training this is where the model learned to stop talking.
        return self._sp.encode(content) + [self.eos_id]

    def _checked_ids(self, ids: Iterable[int]) -> list[int]:
        # SentencePiece would map a bad id to an empty string or crash; say which id is wrong instead.
        checked = []
        for index, token_id in enumerate(ids):
            try:
                # operator.index accepts ints, numpy integers and one-element integer tensors alike.
                token_id = operator.index(token_id)
            except TypeError:
                raise TypeError(f"ids[{index}] = {token_id!r} is not an integer token id") from None
            if not 0 <= token_id < self.vocab_size:
                raise ValueError(
                    f"ids[{index}] = {token_id} is outside the vocabulary: "
                    f"expected 0 <= id < {self.vocab_size}"
                )
            checked.append(token_id)
        return checked


def load_sentencepiece(path: Path) -> SentencePieceProcessor:
    """Load a SentencePiece model file, with errors that say what was expected."""
    if not path.exists():
        raise FileNotFoundError(f"No tokenizer at {path}: expected a SentencePiece tokenizer.model file")
    if path.is_dir():
        raise ValueError(f"{path} is a folder: expected the SentencePiece tokenizer.model file itself")
    try:
        sp = SentencePieceProcessor(model_file=str(path))
    except RuntimeError as error:
        raise ValueError(f"{path} is not a SentencePiece model file ({error})") from None
    # The chat template and generation both need BOS and EOS; SentencePiece reports a missing one as -1.
    if sp.bos_id() < 0 or sp.eos_id() < 0:
        raise ValueError(f"{path} has no BOS or EOS token: expected a model with <s> and </s>")
    return sp


def check_conversation(messages: Sequence[Mapping[str, str]]) -> None:
    """Raise ValueError unless ``messages`` is a conversation the v1 template can write."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {messages!r}"
        )
    if not messages:
        raise ValueError("the conversation is empty: expected at least one user message")
    for index, message in enumerate(messages):
        check_message(index, message)
    if messages[-1]["role"] != "user":
        raise ValueError(
            "the conversation ends with an assistant turn: it must end with a user turn, the one the model "
            "will answer"
        )


def check_message(index: int, message: Mapping[str, str]) -> None:
    """Raise ValueError unless ``message`` is a valid turn at position ``index`` of a v1 conversation."""
    if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
        raise ValueError(f"messages[{index}] must be a dict with 'role' and 'content', got {message!r}")
    role, content = message["role"], message["content"]
    if role not in ROLES:
        raise ValueError(
            f"messages[{index}] has role {role!r}: the v1 template allows only 'user' and 'assistant'"
        )
    # Turns alternate user, assistant, user, ... so even positions are users and odd ones assistants.
    expected = ROLES[index % 2]
    if role != expected:
        raise ValueError(
            f"messages[{index}] is a {role!r} turn where a {expected!r} turn was expected: turns must "
            "alternate user, assistant, user, ... starting with user"
        )
    if not isinstance(content, str):
        raise ValueError(f"messages[{index}]['content'] must be a str, got {type(content).__name__}")
    if role == "assistant" and not content:
        # An answer with no text would be a bare EOS; mistral-common refuses it too.
        raise ValueError(f"messages[{index}] is an assistant turn with empty content: expected some text")
