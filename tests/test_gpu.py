"""gpu.py: the dtype per GPU generation, the preflight, and each reason to fall back, on a pretend GPU."""

from pathlib import Path

import nbformat
import pytest
import torch

from mistral_mini import ModelArgs, save_model
from mistral_mini.gpu import (
    CUDA_ALLOWANCE,
    INSTALL_CUDA_TORCH,
    choose_dtype,
    choose_quantize,
    fallback_reason,
    gpu_problem,
    preflight,
)
from mistral_mini.memory import activation_bytes, memory_plan
from tests.helpers import random_model, small_args

SEVEN_B = ModelArgs.from_name("mistral-7b")
GiB = 2**30
ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"


def pretend_gpu(monkeypatch, capability=(8, 0), free=80 * GiB, cuda="12.8"):
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 141 * GiB))


# --- choose_dtype ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("capability, dtype", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                               ((8, 0), torch.bfloat16), ((8, 9), torch.bfloat16),
                                               ((9, 0), torch.bfloat16)])
def test_bf16_from_ampere_on_fp16_before(capability, dtype, monkeypatch):
    pretend_gpu(monkeypatch, capability)  # V100, T4, A100, L4, H100
    assert choose_dtype("cuda") == dtype
    assert choose_dtype(torch.device("cuda", 0)) == dtype


def test_float32_off_the_gpu():
    assert choose_dtype("cpu") == torch.float32
    assert choose_dtype(torch.device("meta")) == torch.float32


# --- gpu_problem --------------------------------------------------------------------------------------------

def test_a_cpu_only_torch_says_how_to_install_a_cuda_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    problem = gpu_problem()
    assert "CPU-only build (torch.version.cuda is None)" in problem
    assert INSTALL_CUDA_TORCH in problem
    pinned = next(line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("torch=="))
    assert f".venv/bin/pip install {pinned} --index-url https://download.pytorch.org/whl/cu" in problem


def test_a_cuda_torch_without_a_visible_gpu(monkeypatch):
    pretend_gpu(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "built for CUDA 12.8 but sees no GPU" in gpu_problem()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu_problem() is None


# --- preflight ----------------------------------------------------------------------------------------------

def test_preflight_adds_activations_and_the_allowance():
    check = preflight(SEVEN_B, torch.bfloat16, free_bytes=24 * GiB)
    plan = memory_plan(SEVEN_B, torch.bfloat16)
    assert check.chunk_size == SEVEN_B.sliding_window  # generate's default chunk
    assert check.activation_bytes == activation_bytes(SEVEN_B, 4096, torch.bfloat16)
    assert check.total_bytes == plan.total_bytes + check.activation_bytes + CUDA_ALLOWANCE
    assert check.fits
    assert str(check) == ("bf16 needs 15.41 GiB (weights 13.49 GiB + cache 512 MiB + activations 434.09 MiB at "
                          "chunk 4096 + allowance 1 GiB); this card has 24 GiB free")
    assert preflight(SEVEN_B, torch.bfloat16, 24 * GiB, chunk_size=512).total_bytes < check.total_bytes


def test_a_card_too_small_is_told_what_int8_needs():
    needed = preflight(SEVEN_B, torch.float16, 0).total_bytes
    assert preflight(SEVEN_B, torch.float16, needed).fits
    check = preflight(SEVEN_B, torch.float16, needed - 1)
    int8 = preflight(SEVEN_B, torch.float16, needed - 1, quantize="int8")
    assert not check.fits and int8.fits and check.int8_bytes == int8.total_bytes < 10 * GiB
    assert str(check).startswith("fp16 needs 15.41 GiB")
    assert str(check).endswith("; int8 would need 8.80 GiB: load_model(..., quantize='int8')")
    assert str(int8).startswith("fp16 with int8 weights needs 8.80 GiB (weights 6.87 GiB + cache 512 MiB")
    assert "int8 would" not in str(int8)
    assert str(preflight(SEVEN_B, torch.float16, 8 * GiB)).endswith("quantize='int8'), which does not fit either")


# --- fallback_reason ----------------------------------------------------------------------------------------

@pytest.fixture
def weights(tmp_path):
    return save_model(random_model(small_args()), tmp_path / "weights")


def test_no_weights(tmp_path, monkeypatch):
    pretend_gpu(monkeypatch)
    assert fallback_reason(None).startswith("MISTRAL_MODEL_DIR is not set")
    assert "no such checkpoint folder" in fallback_reason(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not weights")
    reason = fallback_reason(tmp_path)
    assert reason.startswith("MISTRAL_MODEL_DIR is not a checkpoint folder") and "notes.txt" in reason


def test_weights_without_a_gpu(weights, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    assert "CPU-only build" in fallback_reason(weights) and "MISTRAL_ALLOW_CPU=1" in fallback_reason(weights)
    assert fallback_reason(weights, allow_cpu=True) is None


def test_weights_and_a_gpu_large_enough(weights, monkeypatch):
    pretend_gpu(monkeypatch, free=GiB + 2**26)  # the allowance and 64 MiB for a model of a few MiB
    assert fallback_reason(weights) is None
    pretend_gpu(monkeypatch, free=GiB)
    assert fallback_reason(weights).startswith("not enough GPU memory: bf16 needs")
    pretend_gpu(monkeypatch, capability=(7, 5), free=GiB)
    assert fallback_reason(weights).startswith("not enough GPU memory: fp16 needs")


def test_int8_when_only_int8_fits(weights, monkeypatch):
    check = preflight(small_args(), torch.bfloat16, free_bytes=0)  # what the pretend Ampere card will be asked
    assert check.int8_bytes < check.total_bytes
    pretend_gpu(monkeypatch, free=(check.int8_bytes + check.total_bytes) // 2)
    assert fallback_reason(weights) is None and choose_quantize(weights) == "int8"
    pretend_gpu(monkeypatch, free=check.total_bytes)
    assert choose_quantize(weights) is None
    pretend_gpu(monkeypatch, free=check.int8_bytes - 1)
    assert fallback_reason(weights).startswith("not enough GPU memory") and "does not fit either" in fallback_reason(
        weights)


def test_no_int8_without_a_gpu(weights, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    assert choose_quantize(weights) is None


def test_a_tilde_means_home(weights, tmp_path, monkeypatch):
    pretend_gpu(monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fallback_reason("~/weights") is None
    assert "no such checkpoint folder" in fallback_reason("~/elsewhere")


def test_readme_and_notebook_10_give_the_same_commands():
    pinned = next(line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("torch=="))
    install = f".venv/bin/pip install {pinned} --index-url https://download.pytorch.org/whl/cu"
    download = ('hf download mistralai/Mistral-7B-v0.1 --include "model-*.safetensors" --include "*.json" '
                "--local-dir ~/models/mistral-7b")
    notebook = nbformat.read(ROOT / "notebooks/10_mistral_7b_on_a_gpu.ipynb", as_version=4)
    for name, text in (("README.md", (ROOT / "README.md").read_text()),
                       ("notebook 10", "\n".join(cell.source for cell in notebook.cells))):
        assert install in text and download in text, name
        assert "huggingface-cli" not in text, name  # gone from huggingface_hub 2.x
