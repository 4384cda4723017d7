"""Reading a checkpoint folder: which files it holds, what its config says, one tensor at a time.

Two layouts hold the same numbers::

    Mistral's       params.json + consolidated.safetensors   (or consolidated.00.pth, a pickle)
    Hugging Face's  config.json + model.safetensors          (or model-00001-of-00003.safetensors, ... and
                    model.safetensors.index.json saying which shard holds which tensor)

Opening a checkpoint reads its config and its files' headers only; ``CheckpointReader.read(name)`` then reads
one tensor, renamed and un-permuted to Mistral's layout (``hf.py``). A pickled ``.pth`` is only ever opened
with ``weights_only=True``: a pickle can carry code, and reading must never run it.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .config import ModelArgs
from .hf import args_from_hf_config, hf_name_to_mistral, hf_tensor_to_mistral
from .safetensors_format import SAFETENSORS_DTYPES

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
        unknown = {s.get_dtype() for _, s in specs} - set(SAFETENSORS_DTYPES)
        if unknown:
            raise CheckpointError(f"{file} stores dtypes {sorted(unknown)} that torch cannot hold")
        return [(key, tuple(s.get_shape()), SAFETENSORS_DTYPES[s.get_dtype()]) for key, s in specs]

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
                f"  missing tensors: {some_names(missing)}\n  unexpected tensors: {some_names(unexpected)}")
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


def some_names(names: list[str], limit: int = 12) -> str:
    """A list of names for an error message, cut short past ``limit``."""
    if not names:
        return "none"
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
