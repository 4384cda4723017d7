"""How fast does a tiny Mistral train on this CPU, and does it learn more than token frequencies?

The same run as ``python -m mistral_mini.train`` with its defaults (preset "mini", the Python standard
library's source, windows of 128 tokens, batches of 8), timed: tokens per second of training, the held-out
loss at the end, and the unigram entropy of the held-out text to compare it with (see ``corpus.py``).

    .venv/bin/python benchmarks/train_speed.py [--steps 200] [--threads N]
"""

import argparse
import time

import torch

from mistral_mini import ModelArgs, Transformer
from mistral_mini.corpus import TokenCorpus, held_out_loss, read_text, standard_library_files
from mistral_mini.tokenizer import Tokenizer
from mistral_mini.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    opts = parser.parse_args()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    start = time.perf_counter()
    corpus = TokenCorpus(read_text(standard_library_files(), 2_000_000), Tokenizer(), opts.seq_len)
    prepared = time.perf_counter() - start
    torch.manual_seed(0)
    model = Transformer(ModelArgs.from_name("mini"))
    start = time.perf_counter()
    losses = train(model, corpus.batches(opts.batch_size), opts.steps, progress=True)
    seconds = time.perf_counter() - start
    tokens = opts.steps * opts.batch_size * opts.seq_len
    final, unigram = held_out_loss(model, corpus), corpus.unigram_entropy()
    print(f"preset mini ({sum(p.numel() for p in model.parameters()):,} parameters), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; text read and tokenized in {prepared:.1f} s")
    print(f"training: {opts.steps} steps x {opts.batch_size} x {opts.seq_len} tokens in {seconds:.0f} s = "
          f"{tokens / seconds:,.0f} tokens/s ({seconds / opts.steps:.2f} s/step)")
    print(f"loss: first step {losses[0]:.3f}, last step {losses[-1]:.3f}; held-out {final:.3f} nats/token "
          f"against the held-out text's unigram entropy {unigram:.3f}: "
          + ("below it" if final < unigram else "NOT below it"))


if __name__ == "__main__":
    main()
