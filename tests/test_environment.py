"""conftest.py: the test run is the same on every machine, GPU or not, with MISTRAL_MODEL_DIR exported or not."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from mistral_mini import save_model
from tests.helpers import random_model, small_args

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_10 = "notebooks/10_mistral_7b_on_a_gpu.ipynb"


def test_this_run_sees_no_gpu_and_no_weights():
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert "MISTRAL_MODEL_DIR" not in os.environ and "MISTRAL_ALLOW_CPU" not in os.environ
    assert not torch.cuda.is_available()


def test_notebook_10_ignores_real_weights_in_the_environment(tmp_path):
    """With MISTRAL_MODEL_DIR (and MISTRAL_ALLOW_CPU) set, notebook 10 would load those weights and print
    other outputs than the committed ones; run from a shell that exports them, nbval must still pass."""
    weights = save_model(random_model(small_args(vocab_size=32000)), tmp_path / "weights")  # the real vocabulary
    env = {name: value for name, value in os.environ.items() if name != "CUDA_VISIBLE_DEVICES"}  # as a shell's
    env.update(MISTRAL_MODEL_DIR=str(weights), MISTRAL_ALLOW_CPU="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval", NOTEBOOK_10, "-p", "no:cacheprovider",
                          "--nbval-sanitize-with", "notebooks/sanitize.cfg", "-q"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" in run.stdout  # the cells ran; the nbval-skip ones did not
