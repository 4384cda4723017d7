"""Checkpoints: reading and writing Mistral's format and Hugging Face's, and planning their memory.

Two layouts hold the same numbers::

    Mistral's       params.json + consolidated.safetensors   (or consolidated.00.pth, a pickle)
    Hugging Face's  config.json + model.safetensors          (or model-00001-of-00003.safetensors, ... and
                    model.safetensors.index.json saying which shard holds which tensor)

Mistral's names are the model's own (``layers.0.attention.wq.weight``). Hugging Face renames every tensor and
also permutes the rows of wq and wk: its RoPE rotates the half-split pairs (x[k], x[k + D/2]) where
Mistral's rotates neighbours (x[2k], x[2k + 1]). Within each head the permutation sends row 2k to row k and
row 2k + 1 to row k + D/2; loading undoes it, saving to Hugging Face's layout does it.

Loading never holds the weights twice. The model is built on the ``meta`` device (shapes, no memory), the
file headers are checked against it (every name, every shape) before any data is read, then each tensor is
read on its own, moved to its device and dtype, and handed over with ``load_state_dict(assign=True)``, which
adopts the tensor instead of copying it into one allocated beforehand. A pickled ``.pth`` is only ever
opened with ``weights_only=True``: a pickle can carry code, and loading must never run it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from .config import NO_WINDOW_CONTEXT, ModelArgs
from .transformer import Transformer

# Hugging Face's tensor names -> Mistral's: the only place the Hugging Face names live.
_HF_GLOBAL = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}
_HF_LAYER = {
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3",
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
}
_HF_LAYER_NAME = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")
_MISTRAL_LAYER_NAME = re.compile(r"layers\.(\d+)\.(.+)\.weight")


def hf_name_to_mistral(name: str) -> str:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``layers.3.attention.wq.weight``."""
    if name in _HF_GLOBAL:
        return _HF_GLOBAL[name]
    match = _HF_LAYER_NAME.fullmatch(name)
    if match is None or match.group(2) not in _HF_LAYER:
        raise KeyError(f"{name!r} is not a Hugging Face Mistral tensor name")
    return f"layers.{match.group(1)}.{_HF_LAYER[match.group(2)]}.weight"


def mistral_name_to_hf(name: str) -> str:
    """``layers.3.attention.wq.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    for hf, ours in _HF_GLOBAL.items():
        if name == ours:
            return hf
    match = _MISTRAL_LAYER_NAME.fullmatch(name)
    inverse = {ours: hf for hf, ours in _HF_LAYER.items()}
    if match is None or match.group(2) not in inverse:
        raise KeyError(f"{name!r} is not a Mistral tensor name")
    return f"model.layers.{match.group(1)}.{inverse[match.group(2)]}.weight"


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Hugging Face's half-split rows of wq or wk [rows, cols] -> Mistral's interleaved rows."""
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def permute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Mistral's interleaved rows of wq or wk [rows, cols] -> Hugging Face's half-split rows."""
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def _rope_heads(name: str, args: ModelArgs) -> int | None:
    """How many heads a tensor's rows hold if RoPE rotates them (wq, wk), else None."""
    if name.endswith("attention.wq.weight"):
        return args.n_heads
    if name.endswith("attention.wk.weight"):
        return args.n_kv_heads
    return None


def hf_tensor_to_mistral(hf_name: str, w: torch.Tensor, args: ModelArgs) -> tuple[str, torch.Tensor]:
    """One Hugging Face tensor -> its Mistral name and layout."""
    name = hf_name_to_mistral(hf_name)
    heads = _rope_heads(name, args)
    return name, (unpermute_rope_rows(w, heads) if heads else w)


def mistral_state_dict_to_hf(state_dict: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """A Mistral-named state dict -> Hugging Face's names and q/k row layout."""
    out = {}
    for name, w in state_dict.items():
        heads = _rope_heads(name, args)
        out[mistral_name_to_hf(name)] = permute_rope_rows(w, heads) if heads else w
    return out


def args_from_hf_config(config: dict) -> ModelArgs:
    """Hugging Face's ``config.json`` dict -> ModelArgs."""
    try:
        heads, dim = config["num_attention_heads"], config["hidden_size"]
        rope = config.get("rope_parameters") or {}
        return ModelArgs(
            dim=dim,
            n_layers=config["num_hidden_layers"],
            head_dim=config.get("head_dim") or dim // heads,
            hidden_dim=config["intermediate_size"],
            n_heads=heads,
            n_kv_heads=config.get("num_key_value_heads") or heads,
            norm_eps=config["rms_norm_eps"],
            vocab_size=config["vocab_size"],
            sliding_window=config.get("sliding_window") or NO_WINDOW_CONTEXT,
            rope_theta=float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0),
        )
    except KeyError as err:
        raise ValueError(f"config.json lacks {err.args[0]!r}; expected a Hugging Face Mistral config") from err


def hf_config_from_args(args: ModelArgs) -> dict:
    """ModelArgs -> the fields of a Hugging Face ``MistralConfig``."""
    return dict(
        model_type="mistral", architectures=["MistralForCausalLM"],
        hidden_size=args.dim, num_hidden_layers=args.n_layers, head_dim=args.head_dim,
        intermediate_size=args.hidden_dim, num_attention_heads=args.n_heads,
        num_key_value_heads=args.n_kv_heads, rms_norm_eps=args.norm_eps, vocab_size=args.vocab_size,
        sliding_window=args.sliding_window, max_position_embeddings=NO_WINDOW_CONTEXT * 4,
        rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
        tie_word_embeddings=False, hidden_act="silu",
    )


# --- Finding a checkpoint ---------------------------------------------------------------------------------

MISTRAL_PARAMS = "params.json"
MISTRAL_WEIGHTS = "consolidated.safetensors"
MISTRAL_PICKLE = "consolidated.00.pth"
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"

# What load_model looks for, in this order: (layout, config file, weights file). A folder may hold both
# formats (Mistral's own Hugging Face repositories do); Mistral's comes first since it needs no conversion.
_LAYOUTS = (
    ("mistral", MISTRAL_PARAMS, MISTRAL_WEIGHTS),
    ("mistral", MISTRAL_PARAMS, MISTRAL_PICKLE),
    ("hf", HF_CONFIG, HF_WEIGHTS),
    ("hf", HF_CONFIG, HF_INDEX),
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or whose tensors do not match its config."""


@dataclass(frozen=True)
class CheckpointFiles:
    """The files of one checkpoint: its layout ("mistral" or "hf"), its config and its weight files."""

    folder: Path
    layout: str
    config: Path
    weights: tuple[Path, ...]


def find_checkpoint(path: str | Path) -> CheckpointFiles:
    """Which of the supported layouts the folder ``path`` holds; FileNotFoundError if none."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"no such checkpoint folder: {folder}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is a file; pass the folder that holds the checkpoint ({folder.parent})")
    for layout, config, weights in _LAYOUTS:
        if (folder / config).is_file() and (folder / weights).is_file():
            files = _hf_shards(folder / weights) if weights == HF_INDEX else (folder / weights,)
            return CheckpointFiles(folder, layout, folder / config, files)
    looked_for = "; ".join(f"{config} + {weights}" for _, config, weights in _LAYOUTS)
    found = sorted(p.name for p in folder.iterdir())
    raise FileNotFoundError(f"{folder} holds no checkpoint: looked for {looked_for} "
                            f"(the index with its model-XXXXX-of-YYYYY.safetensors shards); found {found}")


def _hf_shards(index: Path) -> tuple[Path, ...]:
    """The shard files that Hugging Face's index names, each checked to exist."""
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index} has no \"weight_map\" from tensor names to shard files")
    shards = tuple(index.parent / name for name in sorted(set(weight_map.values())))
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{index} names shard(s) missing from {index.parent}: {missing}")
    return shards


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} should hold a JSON object")
    return value


def read_args(files: CheckpointFiles) -> ModelArgs:
    """The ModelArgs that the checkpoint's params.json or config.json describes."""
    if files.layout == "mistral":
        return ModelArgs.from_params_json(files.config)
    try:
        return args_from_hf_config(_read_json(files.config))
    except CheckpointError:
        raise
    except ValueError as err:
        raise CheckpointError(f"{files.config}: {err}") from err


# --- Reading tensors one at a time ------------------------------------------------------------------------

# safetensors headers name dtypes with these codes.
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class StoredTensor:
    """Where one tensor lives and what its file's header says about it (no data read)."""

    file: Path
    key: str  # its name inside the file: Hugging Face's name in their checkpoints
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@contextmanager
def _reading(file: Path) -> Iterator[None]:
    """Re-raise a library's error about ``file`` as a CheckpointError that names the file."""
    try:
        yield
    except pickle.UnpicklingError as err:
        # torch's message is long; keep the sentence that says what the pickle asked for.
        reason = re.search(r"WeightsUnpickler error: (.*?\.)(\s|$)", str(err))
        raise CheckpointError(
            f"{file} was refused by torch.load(weights_only=True): its pickle holds something other than "
            "tensors (code that loading would run, or corrupt data), and it is never loaded any other way. "
            f"({reason.group(1) if reason else str(err).splitlines()[0]})"
        ) from err
    except (SafetensorError, RuntimeError, OSError, EOFError) as err:
        raise CheckpointError(f"{file} could not be read; is it truncated or corrupt? ({err})") from err


def _load_pickle(file: Path) -> dict[str, torch.Tensor]:
    """A consolidated.00.pth: memory-mapped (tensors read from disk when touched), never running code."""
    with _reading(file):
        tensors = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    if not isinstance(tensors, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise CheckpointError(f"{file} should hold a dict of tensor name -> tensor, "
                              f"found a {type(tensors).__name__}")
    return tensors


class CheckpointReader:
    """A checkpoint folder opened for reading: its ModelArgs, and for every tensor where it is stored.

    Opening reads the config and the files' headers only. ``read(name)`` then reads one tensor, in Mistral's
    name and layout. Use it as a context manager so the files are closed afterwards.
    """

    def __init__(self, path: str | Path):
        self.files = find_checkpoint(path)
        self.args = read_args(self.files)
        self.tensors: dict[str, StoredTensor] = {}  # Mistral name -> where it is stored, in file order
        self.foreign: list[str] = []  # names in the files that belong to no Mistral model
        self._getters: dict[Path, Callable[[str], torch.Tensor]] = {}
        self._stack = ExitStack()
        try:
            for file in self.files.weights:
                self._index(file)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._getters.clear()

    def _index(self, file: Path) -> None:
        for key, shape, dtype in self._open(file):
            if self.files.layout == "mistral":
                name = key
            else:
                try:
                    name = hf_name_to_mistral(key)
                except KeyError:
                    self.foreign.append(key)
                    continue
            if name in self.tensors:
                raise CheckpointError(f"{key} is stored twice: in {self.tensors[name].file} and in {file}")
            self.tensors[name] = StoredTensor(file, key, shape, dtype)

    def _open(self, file: Path) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        """Open one weights file; return (key, shape, dtype) of its tensors in the order they are stored."""
        if file.suffix == ".pth":
            tensors = _load_pickle(file)
            self._getters[file] = tensors.__getitem__
            return [(key, tuple(t.shape), t.dtype) for key, t in tensors.items()]
        with _reading(file):
            # "pread" reads each tensor into memory of its own when asked, and nothing else stays. The default,
            # "mmap", maps the whole file: every page read stays resident beside the converted or moved copy.
            handle = self._stack.enter_context(safe_open(file, framework="pt", backend="pread"))
            specs = [(key, handle.get_slice(key)) for key in handle.offset_keys()]
        self._getters[file] = handle.get_tensor
        unknown = {s.get_dtype() for _, s in specs} - set(_SAFETENSORS_DTYPES)
        if unknown:
            raise CheckpointError(f"{file} stores dtypes {sorted(unknown)} that torch cannot hold")
        return [(key, tuple(s.get_shape()), _SAFETENSORS_DTYPES[s.get_dtype()]) for key, s in specs]

    @property
    def nbytes(self) -> int:
        """Bytes of all the model's tensors as stored."""
        return sum(stored.nbytes for stored in self.tensors.values())

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the weights are stored in (read from the embedding: checkpoints use one dtype)."""
        return self.tensors["tok_embeddings.weight"].dtype

    def check(self, expected: Mapping[str, torch.Size]) -> None:
        """Raise CheckpointError unless the files hold exactly the tensors in ``expected``, with those shapes."""
        missing = [name for name in expected if name not in self.tensors]
        unexpected = self.foreign + [name for name in self.tensors if name not in expected]
        config = self.files.config.name
        if missing or unexpected:
            raise CheckpointError(
                f"{self.files.folder}: the weights do not match the model {config} describes "
                f"({self.args.n_layers} layers); nothing was loaded.\n"
                f"  missing tensors: {_some(missing)}\n  unexpected tensors: {_some(unexpected)}")
        wrong = [f"{self._describe(name)}: {config} implies {tuple(shape)}, the file holds "
                 f"{self.tensors[name].shape}"
                 for name, shape in expected.items() if tuple(shape) != self.tensors[name].shape]
        if wrong:
            raise CheckpointError(f"{self.files.folder}: {config} does not match the weights' shapes:\n  "
                                  + "\n  ".join(wrong))

    def _describe(self, name: str) -> str:
        stored = self.tensors[name]
        where = stored.file.name if stored.key == name else f"{stored.key} in {stored.file.name}"
        return f"{name} ({where})"

    def read(self, name: str) -> torch.Tensor:
        """One tensor, in Mistral's layout, on the CPU and in its stored dtype."""
        stored = self.tensors[name]
        with _reading(stored.file):
            tensor = self._getters[stored.file](stored.key)
        if self.files.layout == "hf":
            tensor = hf_tensor_to_mistral(stored.key, tensor, self.args)[1]
        return tensor


def _some(names: list[str], limit: int = 12) -> str:
    """A list of names for an error message, cut short past ``limit``."""
    if not names:
        return "none"
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# --- How much memory a model needs ------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryPlan:
    """Bytes for a model's weights and for one rolling-buffer cache."""

    weights_bytes: int
    cache_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.cache_bytes

    def __str__(self) -> str:
        return (f"weights {format_bytes(self.weights_bytes)} + rolling cache {format_bytes(self.cache_bytes)} "
                f"= {format_bytes(self.total_bytes)}")


def format_bytes(n: float) -> str:
    """1536 -> '1.50 KiB', 2**29 -> '512 MiB': binary units, as memory is counted and GPU tools report it."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}".replace(".00 ", " ")
        n /= 1024
    raise AssertionError("unreachable")


def meta_model(args: ModelArgs) -> Transformer:
    """The model with every tensor on ``meta``: all the shapes, no memory, built in an instant even for 7B."""
    with torch.device("meta"):
        return Transformer(args)


def memory_plan(args: ModelArgs, dtype: torch.dtype, batch_size: int = 1) -> MemoryPlan:
    """Bytes that the weights and a cache for ``batch_size`` sequences take in ``dtype``.

    The cache holds keys and values (2) for every layer, sequence and slot of the window:
    2 * n_layers * batch_size * sliding_window * n_kv_heads * head_dim * itemsize, however long the text.
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n_params = sum(p.numel() for p in meta_model(args).parameters())
    cache_items = 2 * args.n_layers * batch_size * args.sliding_window * args.n_kv_heads * args.head_dim
    return MemoryPlan(weights_bytes=n_params * dtype.itemsize, cache_bytes=cache_items * dtype.itemsize)


# --- Loading ----------------------------------------------------------------------------------------------

def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               progress: bool = True) -> Transformer:
    """Load a checkpoint folder in Mistral's or Hugging Face's layout; return the Transformer in eval mode.

    dtype: convert every weight to it (torch.bfloat16 halves float32); None keeps the checkpoint's dtype.
    device: where the weights go, read one tensor at a time so that host memory holds them only once.
    progress: a progress bar over the bytes read.

    Everything is checked before any weight is read: the config against the tensors (names and shapes) and,
    for a GPU, that the weights and a one-sequence cache fit in its free memory.
    """
    device = torch.device(device)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError("dtype must be a floating-point torch.dtype such as torch.bfloat16, or None to keep the "
                        f"checkpoint's, got {dtype!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} asks for a CUDA GPU, but torch finds none "
                           "(torch.cuda.is_available() is False: no GPU, no driver, or a CPU-only torch build). "
                           "Load on the CPU with device='cpu'.")
    with CheckpointReader(path) as checkpoint:
        model = meta_model(checkpoint.args)
        checkpoint.check({name: t.shape for name, t in model.state_dict().items()})
        if device.type == "cuda":
            _check_fits_on_gpu(checkpoint, device, dtype)
        state = _read_all(checkpoint, device, dtype, progress)
    model.load_state_dict(state, strict=True, assign=True)
    still_meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:  # a tensor that is computed, not stored, would have to be created here
        raise RuntimeError(f"after loading, these tensors are still on meta (hold no data): {still_meta}")
    return model.eval()


def _check_fits_on_gpu(checkpoint: CheckpointReader, device: torch.device, dtype: torch.dtype | None) -> None:
    dtype = dtype or checkpoint.dtype
    plan = memory_plan(checkpoint.args, dtype)
    free, total = torch.cuda.mem_get_info(device)
    if plan.total_bytes > free:
        raise RuntimeError(
            f"{checkpoint.files.folder} does not fit on {device}: in {dtype} it needs {plan} (one sequence), "
            f"but only {format_bytes(free)} of {format_bytes(total)} is free. Load in bfloat16 "
            "(dtype=torch.bfloat16, half of float32), use a smaller batch, free other GPU memory, "
            "or load on the CPU with device='cpu'.")


def _read_all(checkpoint: CheckpointReader, device: torch.device, dtype: torch.dtype | None,
              progress: bool) -> dict[str, torch.Tensor]:
    """Every tensor, read and moved one at a time: host memory holds at most one beyond what is kept."""
    state = {}
    with tqdm(total=checkpoint.nbytes, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"loading {checkpoint.files.folder.name}", disable=not progress) as bar:
        for name, stored in checkpoint.tensors.items():
            state[name] = checkpoint.read(name).to(device=device, dtype=dtype)
            bar.update(stored.nbytes)
    return state


# --- Saving -----------------------------------------------------------------------------------------------

def save_model(model: Transformer, path: str | Path) -> Path:
    """Write ``model`` in Mistral's format: ``path/params.json`` + ``path/consolidated.safetensors``."""
    if not isinstance(model, Transformer):
        raise TypeError(f"save_model expects a mistral_mini Transformer, got {type(model).__name__}")
    state = model.state_dict()
    on_meta = [name for name, t in state.items() if t.is_meta]
    if on_meta:
        raise ValueError(f"the model has no data to save: {_some(on_meta)} are on the meta device")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / MISTRAL_WEIGHTS, state, state.__getitem__)
    _write_json(folder / MISTRAL_PARAMS, model.args.to_dict())
    return folder


def write_safetensors(path: str | Path, layout: Mapping[str, torch.Tensor],
                      tensor_of: Callable[[str], torch.Tensor], progress: bool = False) -> None:
    """Write a .safetensors file one tensor at a time, so that only one needs to be in memory.

    layout: name -> a tensor with the shape and dtype to store (meta tensors will do): the header lists
    them all up front. tensor_of(name) then gives the tensor itself, asked for only when it is written.

    The format: 8 bytes (little-endian) with the header's length N, N bytes of JSON header, then the raw
    bytes of every tensor back to back::

        {"layers.0.attention.wq.weight": {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [0, 33554432]},
         ..., "__metadata__": {"format": "pt"}}
    """
    codes = {dtype: code for code, dtype in _SAFETENSORS_DTYPES.items()}
    # Widest dtypes first: the header is padded to 8 bytes, so every tensor then starts at a multiple of its
    # item size and can be read in place. (sorted is stable: within a dtype the given order stays.)
    names = sorted(layout, key=lambda name: -layout[name].dtype.itemsize)
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in names:
        t = layout[name]
        size = t.numel() * t.dtype.itemsize
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with _replacing(Path(path)) as f, tqdm(total=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                           desc=f"writing {Path(path).name}", disable=not progress) as bar:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for name in names:
            f.write(_raw_bytes(name, tensor_of(name), layout[name]))
            bar.update(header[name]["data_offsets"][1] - header[name]["data_offsets"][0])


def _raw_bytes(name: str, tensor: torch.Tensor, expected: torch.Tensor) -> memoryview:
    """The tensor's bytes in memory order, on the CPU (safetensors is little-endian, as are x86 and ARM)."""
    if tensor.shape != expected.shape or tensor.dtype != expected.dtype:
        raise ValueError(f"{name}: the header promised {tuple(expected.shape)} {expected.dtype}, "
                         f"got {tuple(tensor.shape)} {tensor.dtype}")
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


@contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """Write to a file beside ``path`` and move it into place once complete: a crash or an error half-way
    never leaves a truncated checkpoint behind, nor destroys the one that was there."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            yield f
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_json(path: Path, value: dict) -> None:
    with _replacing(path) as f:
        f.write(json.dumps(value, indent=2).encode() + b"\n")


# --- Converting -------------------------------------------------------------------------------------------

def convert_checkpoint(source: str | Path, target: str | Path, dtype: torch.dtype | None = None,
                       progress: bool = True) -> Path:
    """Rewrite a checkpoint (Hugging Face's, or any layout load_model reads) in Mistral's format.

    Streams: each tensor is read, renamed, un-permuted and written before the next is read.
    """
    target = Path(target)
    with CheckpointReader(source) as checkpoint:
        checkpoint.check({name: t.shape for name, t in meta_model(checkpoint.args).state_dict().items()})
        layout = {name: torch.empty(stored.shape, dtype=dtype or stored.dtype, device="meta")
                  for name, stored in checkpoint.tensors.items()}
        target.mkdir(parents=True, exist_ok=True)
        write_safetensors(target / MISTRAL_WEIGHTS, layout, lambda name: checkpoint.read(name).to(dtype=dtype),
                          progress)
        _write_json(target / MISTRAL_PARAMS, checkpoint.args.to_dict())
    return target


def main(argv: list[str] | None = None) -> None:
    """``python -m mistral_mini.checkpoint convert HF_DIR OUT_DIR``"""
    parser = argparse.ArgumentParser(prog="python -m mistral_mini.checkpoint",
                                     description="Tools for Mistral checkpoints.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="rewrite a Hugging Face checkpoint as Mistral's params.json + consolidated.safetensors")
    convert.add_argument("source", help="folder with config.json + model.safetensors or sharded "
                                        "model-XXXXX-of-YYYYY.safetensors (any layout load_model reads)")
    convert.add_argument("target", help="folder to write params.json and consolidated.safetensors into")
    convert.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                         help="store the weights in this dtype (default: as stored in the source)")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    options = parser.parse_args(argv)
    dtype = getattr(torch, options.dtype) if options.dtype else None
    try:
        target = convert_checkpoint(options.source, options.target, dtype, progress=not options.quiet)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from err
    print(f"wrote {target / MISTRAL_PARAMS} and {target / MISTRAL_WEIGHTS}")


if __name__ == "__main__":
    main()
