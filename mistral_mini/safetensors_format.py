"""The safetensors format, written one tensor at a time.

A .safetensors file is 8 bytes (little-endian) with the header's length N, N bytes of JSON header, then the
raw bytes of every tensor back to back::

    {"layers.0.attention.wq.weight": {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [0, 33554432]},
     ..., "__metadata__": {"format": "pt"}}

The safetensors library reads it (``checkpoint_reader``); writing is done here, so that a 14 GB checkpoint
never has to be in memory at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import torch
from tqdm import tqdm

# safetensors headers name dtypes with these codes.
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def write_safetensors(path: str | Path, layout: Mapping[str, torch.Tensor],
                      tensor_of: Callable[[str], torch.Tensor], progress: bool = False) -> None:
    """Write a .safetensors file one tensor at a time, so that only one needs to be in memory.

    layout: name -> a tensor with the shape and dtype to store (meta tensors will do): the header lists
    them all up front. tensor_of(name) then gives the tensor itself, asked for only when it is written.
    """
    codes = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}
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
    with replacing(Path(path)) as f, tqdm(total=offset, unit="B", unit_scale=True, unit_divisor=1024,
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
def replacing(path: Path) -> Iterator[BinaryIO]:
    """Write to a file beside ``path`` and move it into place once complete: a crash or an error half-way
    never leaves a truncated checkpoint behind, nor destroys the one that was there."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            yield f
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
