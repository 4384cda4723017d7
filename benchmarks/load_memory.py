"""Peak host memory (RSS) while loading a checkpoint, against the checkpoint's size.

    python benchmarks/load_memory.py [--dir DIR]

Writes one random model of a few hundred MB (bf16, as Mistral ships its weights) in three layouts: Mistral's
consolidated.safetensors, Mistral's consolidated.00.pth, and Hugging Face's sharded model-XXXXX-of-YYYYY
files. Each is loaded in a fresh interpreter, so that its peak RSS (VmHWM) belongs to that load alone, and
compared with a fresh interpreter that only imports torch and mistral_mini, and with one that also builds
the model on the meta device (no weights, but torch imports sympy for it: about 80 MB).

Loading holds the weights once when   peak - skeleton  ~  checkpoint size.
A loader that read a whole file and then copied it out would show about twice the size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from mistral_mini import ModelArgs, Transformer
from mistral_mini.checkpoint import load_model, save_model
from mistral_mini.hf import to_transformers
from mistral_mini.memory import meta_model

# ~175M parameters: 349 MB in bf16.
ARGS = ModelArgs(dim=1024, n_layers=8, head_dim=128, hidden_dim=3584, n_heads=8, n_kv_heads=2, norm_eps=1e-5,
                 vocab_size=32000, sliding_window=4096)
# What a child process measures besides a checkpoint folder.
BARE = "bare"  # only the imports (torch, mistral_mini)
SKELETON = "skeleton"  # the imports and the model built on meta: torch's meta init pulls in sympy
TARGET = 1.3  # peak RSS must stay below TARGET * size + bare
MB = 10**6


def peak_rss_bytes() -> int:
    """This process's peak resident memory.

    On Linux, ru_maxrss survives fork + exec: a child started by a big parent would report the parent's
    peak. VmHWM ("high water mark") belongs to the current address space, which exec replaces.
    """
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # macOS reports bytes


def measure(what: str) -> None:
    """In the child process: load the folder ``what`` (or only build the SKELETON, or nothing for BARE),
    touch every weight, and print the peak RSS as JSON."""
    if what == SKELETON:
        meta_model(ARGS)
    elif what != BARE:
        model = load_model(what, progress=False)
        # max() reads every element in place: memory-mapped pages (the .pth) become resident and count.
        for p in model.parameters():
            p.detach().max()
    print(json.dumps({"peak_rss": peak_rss_bytes()}))


def in_fresh_interpreter(what: str | Path) -> int:
    done = subprocess.run([sys.executable, __file__, "--child", str(what)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss"]


def write_checkpoints(root: Path) -> dict[str, Path]:
    """The same random bf16 model in three layouts; returns label -> folder."""
    torch.manual_seed(0)
    model = Transformer(ARGS).to(torch.bfloat16)
    save_model(model, root / "mistral_safetensors")
    (root / "mistral_pth").mkdir()
    torch.save(model.state_dict(), root / "mistral_pth" / "consolidated.00.pth")
    (root / "mistral_pth" / "params.json").write_text(json.dumps(ARGS.to_dict()))
    write_hf_sharded(model, root / "hf_sharded")
    return {"Mistral consolidated.safetensors": root / "mistral_safetensors",
            "Mistral consolidated.00.pth": root / "mistral_pth",
            "Hugging Face sharded safetensors": root / "hf_sharded"}


def write_hf_sharded(model: Transformer, folder: Path) -> None:
    """transformers' own writer, so the layout is exactly what the Hub serves."""
    to_transformers(model).save_pretrained(folder, max_shard_size="100MB")


def weights_size(folder: Path) -> tuple[int, int]:
    """(bytes, number of files) of the weight files in ``folder``."""
    files = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".pth")]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="where to write the checkpoints (default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child is not None:
        measure(options.child)
        return
    with tempfile.TemporaryDirectory(dir=options.dir) as tmp:
        folders = write_checkpoints(Path(tmp))
        bare, skeleton = in_fresh_interpreter(BARE), in_fresh_interpreter(SKELETON)
        print(f"bare interpreter, torch + mistral_mini imported:     peak RSS {bare / MB:,.0f} MB")
        print(f"... and the model skeleton built on meta (no weights): peak RSS {skeleton / MB:,.0f} MB")
        print(f"{'checkpoint':34} {'files':>5} {'size MB':>8} {'peak RSS MB':>12} {'peak - bare':>12} "
              f"{'(peak - skeleton) / size':>25}  peak < {TARGET} x size + bare ?")
        for label, folder in folders.items():
            size, n_files = weights_size(folder)
            peak = in_fresh_interpreter(folder)
            verdict = "yes" if peak < TARGET * size + bare else "NO"
            print(f"{label:34} {n_files:5} {size / MB:8,.0f} {peak / MB:12,.0f} {(peak - bare) / MB:12,.0f} "
                  f"{(peak - skeleton) / size:25.2f}  {verdict}")


if __name__ == "__main__":
    main()
