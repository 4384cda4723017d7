"""Text to train on: files read, tokenized with Mistral's tokenizer, split, and cut into random windows.

Shapes: B batch, T tokens per window, N tokens in the corpus.

By default the text is the Python standard library's own source, which every Python installation carries,
so training needs no download. Held-out text is the corpus's last tenth, never trained on.

The yardstick is the **unigram entropy** of the held-out text: the loss of the best model that knows only
how often each token occurs (and always predicts those frequencies, whatever came before). A language
model whose held-out loss is below it has learned something about which token follows which.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from .tokenizer import Tokenizer
from .train import next_token_loss


def standard_library_files() -> list[Path]:
    """The .py files at the top of the Python standard library, sorted: text that every machine has."""
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def read_text(paths: Sequence[str | Path], max_chars: int | None = None) -> str:
    """The files' text, one after the other (at most ``max_chars`` characters); ValueError if unreadable."""
    if not paths:
        raise ValueError("no text files given")
    parts, total = [], 0
    for path in map(Path, paths):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"cannot read {path}: no such file") from None
        except IsADirectoryError:
            raise ValueError(f"cannot read {path}: it is a folder; pass the text files in it") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"cannot read {path}: it is not UTF-8 text ({err.reason} at byte {err.start})") from None
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror}") from None
        parts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    text = "\n".join(parts)[:max_chars]
    if not text.strip():
        raise ValueError(f"the text files hold no text (only whitespace or nothing): {', '.join(map(str, paths))}")
    return text


class TokenCorpus:
    """A text as token ids, split into training ids (the first 90%) and held-out ids (the last 10%)."""

    def __init__(self, text: str, tokenizer: Tokenizer, seq_len: int):
        ids = torch.tensor(tokenizer.encode(text, bos=False), dtype=torch.long)  # [N]
        split = int(0.9 * ids.numel())
        self.seq_len = seq_len
        self.train_ids, self.held_out_ids = ids[:split], ids[split:]
        if self.held_out_ids.numel() <= seq_len:
            raise ValueError(f"the text is too short: {ids.numel():,} tokens, and the held-out tenth must hold more "
                             f"than one window of {seq_len} tokens ({10 * (seq_len + 1):,} tokens or more in all)")

    def batches(self, batch_size: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless (inputs, targets) [B, T] from random places of the training ids; targets = inputs shifted."""
        generator = torch.Generator().manual_seed(seed)
        while True:
            starts = torch.randint(0, self.train_ids.numel() - self.seq_len, (batch_size,), generator=generator)
            windows = torch.stack([self.train_ids[s:s + self.seq_len + 1] for s in starts.tolist()])  # [B, T + 1]
            yield windows[:, :-1], windows[:, 1:]

    def held_out_windows(self, max_windows: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) [n, T]: consecutive windows of the held-out ids, at most ``max_windows``."""
        n = min(max_windows, (self.held_out_ids.numel() - 1) // self.seq_len)
        ids = self.held_out_ids[:n * self.seq_len + 1]
        return ids[:-1].view(n, self.seq_len), ids[1:].view(n, self.seq_len)  # [n, T] each

    def unigram_entropy(self) -> float:
        """Entropy in nats of the held-out tokens' own frequencies: -sum p log p."""
        counts = torch.bincount(self.held_out_ids).float()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())


def held_out_loss(model: torch.nn.Module, corpus: TokenCorpus, max_windows: int = 32) -> float:
    """The model's mean next-token loss (nats) on the held-out windows."""
    inputs, targets = corpus.held_out_windows(max_windows)
    with torch.no_grad():
        return float(next_token_loss(model, inputs, targets))
