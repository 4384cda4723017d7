"""corpus.py and ``python -m mistral_mini.train``: text in, a saved model out, clear errors for bad input."""

import math
from collections import Counter

import pytest
import torch

from mistral_mini import generate, load_model
from mistral_mini.corpus import TokenCorpus, read_text, standard_library_files
from mistral_mini.tokenizer import Tokenizer
from mistral_mini.train import main

TEXT = "\n".join(f"def function_{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(300))


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


def test_the_standard_library_is_there_to_read():
    files = standard_library_files()
    assert len(files) > 50 and all(p.suffix == ".py" for p in files)
    assert "def " in read_text(files[:3])


def test_batches_are_windows_with_targets_one_token_ahead(tokenizer):
    corpus = TokenCorpus(TEXT, tokenizer, seq_len=16)
    inputs, targets = next(corpus.batches(batch_size=4, seed=0))
    assert inputs.shape == targets.shape == (4, 16)
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    train_text = " ".join(map(str, corpus.train_ids.tolist()))
    assert all(" ".join(map(str, row.tolist())) in train_text for row in inputs)  # never from the held-out part
    assert torch.equal(next(corpus.batches(4, seed=0))[0], inputs)  # same seed, same batches


def test_unigram_entropy_of_the_held_out_tokens(tokenizer):
    corpus = TokenCorpus(TEXT, tokenizer, seq_len=16)
    counts = Counter(corpus.held_out_ids.tolist())
    total = sum(counts.values())
    expected = -sum(c / total * math.log(c / total) for c in counts.values())
    assert corpus.unigram_entropy() == pytest.approx(expected, rel=1e-5)
    assert corpus.train_ids.numel() + corpus.held_out_ids.numel() == len(tokenizer.encode(TEXT, bos=False))


def test_train_saves_a_model_that_loads_and_generates(tmp_path, capsys):
    text = tmp_path / "code.py"
    text.write_text(TEXT)
    out = tmp_path / "model"
    assert main(["--out", str(out), "--text", str(text), "--steps", "4", "--seq-len", "16", "--batch-size", "2",
                 "--eval-every", "2"]) == 0
    printed = capsys.readouterr().out
    assert "unigram entropy of the held-out text" in printed and "step     2: training loss" in printed
    assert "held-out loss" in printed and "A sample" in printed
    model = load_model(out, progress=False)
    assert len(list(generate(model, [1, 755], max_new_tokens=3, stop_ids=()))) == 3


@pytest.mark.parametrize("content, message", [
    ("", "hold no text"),
    ("   \n\n", "hold no text"),
    (b"\xff\xfe\x00bad", "not UTF-8 text"),
    ("def f(): pass\n", "too short"),
])
def test_bad_text_is_a_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "input.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["--out", str(tmp_path / "model"), "--text", str(path), "--steps", "1"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_missing_text_file(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "model"), "--text", str(tmp_path / "nowhere.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_non_empty_out_folder_needs_force(tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "params.json").write_text("{}")
    assert main(["--out", str(out), "--steps", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "params.json").read_text() == "{}"  # nothing overwritten


def test_a_preset_with_another_vocabulary_is_refused(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "model"), "--preset", "tiny"]) == 2
    assert "choose one with the tokenizer's vocabulary" in capsys.readouterr().err
