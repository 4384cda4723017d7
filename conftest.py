"""The test run sees the same machine everywhere: no GPU, no real weights.

Notebook 10 takes another path on a GPU or with MISTRAL_MODEL_DIR set, and its committed outputs are those of
the CPU path, so under nbval it would fail on a machine with either. The notebook kernels nbval starts inherit
this process's environment, so it is set here, at the repository root, where pytest reads it first whether
it runs everything or a single notebook, and before anything imports torch (which reads
CUDA_VISIBLE_DEVICES when it first looks for a GPU).
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # no GPU, in this process and in every kernel it starts
for name in ("MISTRAL_MODEL_DIR", "MISTRAL_ALLOW_CPU"):  # notebook 10's switches to the real weights
    os.environ.pop(name, None)
