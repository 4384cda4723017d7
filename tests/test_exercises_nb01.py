"""Notebook 01's checks: RMSNorm with the features on axis 1, the embedding table's gradient, decoding pieces.
Each passes a right answer written independently of the package, names each classic mistake, and never
crashes on a wrong type."""

import pytest
import torch
import torch.nn.functional as F

from mistral_mini import Tokenizer
from mistral_mini.lessons import exercises as ex
from mistral_mini.lessons.exercises.nb01_tokens import TEXTS
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might
# ---------------------------------------------------------------------------------------------------------


def rms_norm_channels_first(x, weight, eps):
    x_last = x.transpose(1, 2)  # [B, T, dim]
    y = x_last * torch.rsqrt(x_last.pow(2).mean(-1, keepdim=True) + eps) * weight
    return y.transpose(1, 2)  # [B, dim, T]


def table_gradient(ids, grad, vocab_size):
    out = torch.zeros(vocab_size, grad.shape[-1])
    out.index_add_(0, ids.reshape(-1), grad.reshape(-1, grad.shape[-1]))  # repeated ids accumulate
    return out


def decode_pieces(pieces):
    text, pending = "", bytearray()
    for piece in pieces:
        if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            pending.append(int(piece[3:5], 16))
            continue
        text += pending.decode("utf-8") + piece.replace("▁", " ")
        pending.clear()
    text += pending.decode("utf-8")
    return text[1:] if text.startswith(" ") else text


RIGHT = [(ex.check_rms_norm_channels_first, rms_norm_channels_first),
         (ex.check_table_gradient, table_gradient),
         (ex.check_decode_pieces, decode_pieces)]
IDS = [c.__name__ for c, _ in RIGHT]


@pytest.mark.parametrize("check, answer", RIGHT, ids=IDS)
def test_right_answer_passes(check, answer, capsys):
    assert_check_passes(check, answer, capsys)


# ---------------------------------------------------------------------------------------------------------
# RMSNorm, features on axis 1
# ---------------------------------------------------------------------------------------------------------


def _ms(x, dims=1):
    return x.pow(2).mean(dims, keepdim=True)


RMS_MISTAKES = {
    "LayerNorm": (lambda x, w, eps: F.layer_norm(x.transpose(1, 2), w.shape, weight=w, eps=eps).transpose(1, 2),
                  "mistake: you subtracted the mean: that is LayerNorm"),
    "eps outside the root": (lambda x, w, eps: x / (_ms(x).sqrt() + eps) * w[:, None],
                             "mistake: eps sits outside the square root"),
    "no weight": (lambda x, w, eps: x * torch.rsqrt(_ms(x) + eps), "mistake: the gain `weight` is missing"),
    "last axis": (lambda x, w, eps: x * torch.rsqrt(_ms(x, -1) + eps) * w[:, None],
                  "mistake: the statistic was taken over the last axis"),
    "whole sequence": (lambda x, w, eps: x * torch.rsqrt(_ms(x, (1, 2)) + eps) * w[:, None],
                       "mistake: one statistic for the whole sequence"),
}


@pytest.mark.parametrize("name", RMS_MISTAKES)
def test_rms_norm_mistake_is_named(name, capsys):
    wrong, says = RMS_MISTAKES[name]
    assert_check_fails(ex.check_rms_norm_channels_first, wrong, [says], capsys)


def test_rms_norm_of_the_last_axis_is_a_shape_error_with_the_hint(capsys):
    # The notebook's rms_norm applied as is: weight [dim] cannot broadcast against [B, dim, T].
    last_axis = lambda x, w, eps: x * torch.rsqrt(_ms(x, -1) + eps) * w  # noqa: E731
    assert_check_fails(ex.check_rms_norm_channels_first, last_axis,
                       ["your code raised RuntimeError", "hint: print the shapes"], capsys)


def test_rms_norm_wrong_types(capsys):
    assert_check_fails(ex.check_rms_norm_channels_first, lambda x, w, eps: x.numpy(),
                       ["expected a torch.Tensor of shape (2, 16, 5), got a numpy.ndarray of shape (2, 16, 5)"],
                       capsys)
    assert_check_fails(ex.check_rms_norm_channels_first, lambda x, w, eps: x.tolist(),
                       ["expected a torch.Tensor of shape (2, 16, 5), got a list of 2 items"], capsys)


def test_rms_norm_in_place_edit_does_not_leak_into_later_cases(capsys):
    def in_place(x, w, eps):
        return x.mul_(torch.rsqrt(_ms(x) + eps)).mul_(w[:, None])

    assert_check_passes(ex.check_rms_norm_channels_first, in_place, capsys)


# ---------------------------------------------------------------------------------------------------------
# the embedding table's gradient
# ---------------------------------------------------------------------------------------------------------


def _assigned(ids, grad, V):
    out = torch.zeros(V, grad.shape[-1])
    out[ids.reshape(-1)] = grad.reshape(-1, grad.shape[-1])
    return out


def _averaged(ids, grad, V):
    counts = torch.bincount(ids.reshape(-1), minlength=V).clamp(min=1)
    return table_gradient(ids, grad, V) / counts[:, None]


def _per_sequence(ids, grad, V):
    one_hot = F.one_hot(ids, V).float()  # [..., T, V]
    return one_hot.transpose(-1, -2) @ grad  # [..., V, dim]: not summed over the batch


GRADIENT_MISTAKES = {
    "assigned": (_assigned, "mistake: a repeated id keeps only one of its gradients"),
    "averaged": (_averaged, "mistake: repeated ids are averaged"),
    "transposed": (lambda ids, g, V: table_gradient(ids, g, V).T, "mistake: rows and columns swapped"),
    "per sequence": (_per_sequence, "mistake: one gradient per sequence"),
}


@pytest.mark.parametrize("name", GRADIENT_MISTAKES)
def test_gradient_mistake_is_named(name, capsys):
    wrong, says = GRADIENT_MISTAKES[name]
    assert_check_fails(ex.check_table_gradient, wrong, [says], capsys)


def test_autograd_is_switched_off(capsys):
    def with_autograd(ids, grad, V):
        table = torch.zeros(V, grad.shape[-1], requires_grad=True)
        (F.embedding(ids, table) * grad).sum().backward()
        return table.grad

    def with_grad(ids, grad, V):
        table = torch.zeros(V, grad.shape[-1], requires_grad=True)
        return torch.autograd.grad((F.embedding(ids, table) * grad).sum(), table)[0]

    assert_check_fails(ex.check_table_gradient, with_autograd, ["torch.Tensor.backward is switched off"], capsys)
    assert_check_fails(ex.check_table_gradient, with_grad, ["torch.autograd.grad is switched off"], capsys)
    # and both work again afterwards
    assert with_autograd(torch.tensor([1, 1]), torch.ones(2, 3), 3)[1].tolist() == [2.0, 2.0, 2.0]


def test_gradient_wrong_type(capsys):
    assert_check_fails(ex.check_table_gradient, lambda ids, g, V: g.tolist(),
                       ["expected a torch.Tensor of shape (6, 3), got a list of 5 items"], capsys)


# ---------------------------------------------------------------------------------------------------------
# decoding pieces
# ---------------------------------------------------------------------------------------------------------


def test_the_check_texts_round_trip_through_the_tokenizer():
    tok = Tokenizer()
    for text in TEXTS:
        ids = tok.encode(text, bos=False)
        assert tok.decode(ids) == text
    assert any(piece.startswith("<0x") for piece in tok.pieces(tok.encode(TEXTS[0], bos=False)))


def _bytes_one_by_one(pieces):
    out = ""
    for piece in pieces:
        out += chr(int(piece[3:5], 16)) if piece.startswith("<0x") else piece.replace("▁", " ")
    return out.removeprefix(" ")


DECODE_MISTAKES = {
    "one character per byte": (_bytes_one_by_one, "mistake: each byte piece was turned into a character"),
    "byte pieces kept": (lambda p: "".join(p).replace("▁", " ").removeprefix(" "),
                         "mistake: the byte pieces are left as they are"),
    "▁ kept": (lambda p: "▁" + decode_pieces(p).replace(" ", "▁"), "mistake: the ▁ are still there"),
    "▁ kept, the first dropped": (lambda p: decode_pieces(p).replace(" ", "▁"), "mistake: the ▁ are still there"),
    "leading space kept": (lambda p: " " + decode_pieces(p), "mistake: the text starts with a space"),
    "all leading spaces stripped": (lambda p: decode_pieces(p).lstrip(), "mistake: all leading spaces removed"),
}


@pytest.mark.parametrize("name", DECODE_MISTAKES)
def test_decode_mistake_is_named(name, capsys):
    wrong, says = DECODE_MISTAKES[name]
    assert_check_fails(ex.check_decode_pieces, wrong, [says], capsys)


def test_bytes_decoded_one_at_a_time_crash_is_reported(capsys):
    def one_at_a_time(pieces):
        return "".join(bytes([int(p[3:5], 16)]).decode() if p.startswith("<0x") else p.replace("▁", " ")
                       for p in pieces).removeprefix(" ")

    assert_check_fails(ex.check_decode_pieces, one_at_a_time, ["your code raised UnicodeDecodeError", "hint:"],
                       capsys)


def test_the_tokenizers_decoding_is_switched_off(capsys):
    tok = Tokenizer()
    via_ids = lambda pieces: tok.decode([tok._sp.piece_to_id(p) for p in pieces])  # noqa: E731
    via_sentencepiece = lambda pieces: tok._sp.decode_pieces(pieces)  # noqa: E731
    assert_check_fails(ex.check_decode_pieces, via_ids, ["Tokenizer.decode is switched off"], capsys)
    assert_check_fails(ex.check_decode_pieces, via_sentencepiece, ["is switched off"], capsys)
    assert tok.decode(tok.encode("back on")) == "back on"


def test_decode_wrong_type(capsys):
    status, out = verdict(ex.check_decode_pieces, lambda pieces: pieces, capsys)
    assert status == "fail" and "expected 'Go 🐙 go!'" in out
    assert_check_fails(ex.check_decode_pieces, lambda pieces: None, ["got None, expected 'Go 🐙 go!'"], capsys)
