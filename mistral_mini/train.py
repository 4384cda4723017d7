"""Training a (tiny) Mistral: AdamW, a warmup then a cosine decay, gradient clipping. One loop, one screen.

Shapes: B batch, T tokens, V vocab_size.

The model predicts every next token at once: inputs [B, T] go in, logits [B, T, V] come out, and the loss
is the cross-entropy between logits[b, t] and targets[b, t], averaged over every position whose target is
not -100 (PyTorch's "ignore" value: a task can ask for a prediction at some positions only).

The learning rate climbs linearly from 0 to ``lr`` over ``warmup`` steps (AdamW's moment estimates are
noisy at first, and big early steps can wreck a fresh model), then follows half a cosine down to lr / 10 at
the last step::

    lr |   /----.
       |  /      `--.
       | /           `---.__
       |/                    `-- lr / 10
       +---------------------------> step
        warmup      steps

Command line: ``python -m mistral_mini.train --out DIR [--text PATH ...] [--steps N] [--preset NAME]`` trains
a small Mistral on text files (by default the Python standard library's source, see ``corpus.py``) with
Mistral's tokenizer, and saves it with ``save_model``: ``load_model(DIR)`` and ``generate`` then work on it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

IGNORE = -100  # a target that asks for no prediction (F.cross_entropy's ignore_index)


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """The learning rate at ``step`` (0-based): linear warmup to ``lr``, then a cosine down to lr / 10."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - 1 - warmup)  # 0 .. 1 over the steps after the warmup
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def next_token_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's predictions at every position whose target is not IGNORE."""
    logits = model(inputs)  # [B, T, V]
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)  # [B * T, V] vs [B * T]


def train(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], steps: int = 600, lr: float = 3e-3,
          warmup: int = 50, weight_decay: float = 0.0, grad_clip: float | None = 1.0, seed: int = 0,
          progress: bool = False, callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` in place for ``steps`` steps, one batch each; return the loss at every step.

    batches: (inputs, targets) long tensors [B, T]; a target of -100 means "no loss here".
    lr, warmup: the peak learning rate and the steps to reach it (see the module's picture).
    weight_decay: AdamW's decay of the weight matrices (norms and other vectors are never decayed).
    grad_clip: the gradients' total norm is scaled down to at most this; None never clips.
    seed: seeds torch's generator for the duration, so the same seed and data give the same losses.
    progress: a progress bar with the current loss. callback(step, loss): called after every step.
    The model is left in eval mode.
    """
    _check_arguments(steps, lr, warmup, weight_decay, grad_clip, seed)
    matrices = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay},
                                   {"params": vectors, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    losses: list[float] = []
    batch_iter = iter(batches)
    with torch.random.fork_rng(devices=[]), tqdm(total=steps, disable=not progress, unit="step") as bar:
        torch.manual_seed(seed)
        model.train()
        for step in range(steps):
            inputs, targets = _next_batch(batch_iter, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup)
            loss = next_token_loss(model, inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            bar.update(1)
            if callback is not None:
                callback(step, losses[-1])
    model.eval()
    return losses


def _next_batch(batch_iter, step: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        inputs, targets = next(batch_iter)
    except StopIteration:
        raise ValueError(f"batches ran out after {step} of {steps} steps; pass at least `steps` batches "
                         "(itertools.cycle repeats a list)") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"each batch must be a pair (inputs, targets) of long tensors [B, T]: {err}") from None
    if not (isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor)):
        raise ValueError(f"batch {step}: inputs and targets must be tensors, got {type(inputs).__name__} and "
                         f"{type(targets).__name__}")
    if inputs.dim() != 2 or inputs.shape != targets.shape or inputs.dtype != torch.long or targets.dtype != torch.long:
        raise ValueError(f"batch {step}: inputs and targets must be long tensors of one shape [B, T], got "
                         f"{inputs.dtype} {tuple(inputs.shape)} and {targets.dtype} {tuple(targets.shape)}")
    if bool((targets == IGNORE).all()):
        raise ValueError(f"batch {step}: every target is {IGNORE} (ignored), so there is nothing to learn from")
    return inputs, targets


def _check_arguments(steps, lr, warmup, weight_decay, grad_clip, seed) -> None:
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(steps) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not number(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number (e.g. 3e-3), got {lr!r}")
    if not whole(warmup) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0 (steps of linear warmup), got {warmup!r}")
    if not number(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if grad_clip is not None and (not number(grad_clip) or grad_clip <= 0):
        raise ValueError(f"grad_clip must be a positive number or None (no clipping), got {grad_clip!r}")
    if not whole(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")


# --- The command line: train your own tiny Mistral ------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from .checkpoint import save_model
    from .config import PRESETS, ModelArgs
    from .corpus import TokenCorpus, held_out_loss, read_text, standard_library_files
    from .generation import generate
    from .tokenizer import Tokenizer
    from .transformer import Transformer

    tokenizer = Tokenizer()
    parser = argparse.ArgumentParser(prog="python -m mistral_mini.train",
                                     description="Train a small Mistral on text files, on the CPU, and save it.")
    parser.add_argument("--out", required=True, help="folder to save the model in (params.json + safetensors)")
    parser.add_argument("--text", nargs="+", help="UTF-8 text files (default: the Python standard library's .py)")
    parser.add_argument("--steps", type=_positive, default=200, help="training steps (default 200)")
    parser.add_argument("--preset", default="mini", help="a ModelArgs preset with the tokenizer's vocabulary: "
                        + ", ".join(n for n, p in PRESETS.items() if p["vocab_size"] == tokenizer.vocab_size))
    parser.add_argument("--seq-len", type=_positive, default=128, help="tokens per training window (default 128)")
    parser.add_argument("--batch-size", type=_positive, default=8)
    parser.add_argument("--eval-every", type=_positive, default=100, help="steps between held-out losses")
    parser.add_argument("--max-chars", type=_positive, default=2_000_000, help="read at most this much text")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="write into --out even if it is not empty")
    options = parser.parse_args(argv)
    out = Path(options.out)
    try:
        if out.is_file() or (out.is_dir() and any(out.iterdir()) and not options.force):
            raise ValueError(f"{out} is not an empty folder; choose another --out, or add --force to overwrite "
                             "the model in it")
        args = ModelArgs.from_name(options.preset)
        if args.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"preset {options.preset!r} has {args.vocab_size} tokens, the tokenizer "
                             f"{tokenizer.vocab_size}; choose one with the tokenizer's vocabulary, e.g. mini")
        text = read_text(options.text or standard_library_files(), options.max_chars)
        corpus = TokenCorpus(text, tokenizer, options.seq_len)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(options.seed)
    model = Transformer(args)
    unigram = corpus.unigram_entropy()
    print(f"{len(text):,} characters -> {corpus.train_ids.numel():,} training tokens, "
          f"{corpus.held_out_ids.numel():,} held out; {sum(p.numel() for p in model.parameters()):,} parameters "
          f"({options.preset}); unigram entropy of the held-out text {unigram:.3f} nats/token")

    def report(step: int, loss: float) -> None:
        if (step + 1) % options.eval_every == 0 or step + 1 == options.steps:
            tqdm.write(f"step {step + 1:5d}: training loss {loss:.3f}, held-out loss "
                       f"{held_out_loss(model, corpus):.3f} nats/token")

    train(model, corpus.batches(options.batch_size, options.seed), options.steps, seed=options.seed,
          progress=True, callback=report)
    final = held_out_loss(model, corpus)
    verdict = "below" if final < unigram else "NOT below"
    print(f"held-out loss {final:.3f} nats/token, {verdict} the unigram entropy {unigram:.3f}: "
          + ("the model learned more than token frequencies" if final < unigram else "train longer"))
    save_model(model, out)
    prompt = tokenizer.encode("def ")
    sample = tokenizer.decode(prompt + list(generate(model, prompt, max_new_tokens=40, temperature=0.8,
                                                     seed=options.seed)))
    print(f"saved to {out}; load_model({str(out)!r}) and generate work on it. A sample (temperature 0.8):\n{sample}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
