"""Model hyper-parameters, named as in Mistral's ``params.json``.

A checkpoint from Mistral ships a ``params.json`` such as::

    {"dim": 4096, "n_layers": 32, "head_dim": 128, "hidden_dim": 14336, "n_heads": 32,
     "n_kv_heads": 8, "norm_eps": 1e-05, "sliding_window": 4096, "vocab_size": 32000}

``ModelArgs`` uses exactly those names, so that file maps onto it one to one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# Mistral 7B v0.2 and later have no window: their params.json leaves "sliding_window" out (or sets it to null).
# They were trained on 32K tokens, so a window of 32,768 gives identical results on every sequence they were
# made for.
NO_WINDOW_CONTEXT = 32768


@dataclass(frozen=True)
class ModelArgs:
    dim: int  # width of the residual stream (the token vector)
    n_layers: int  # number of TransformerBlocks
    head_dim: int  # width of one attention head; must be even for RoPE's pairs
    hidden_dim: int  # inner width of the SwiGLU feed-forward
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads; each serves n_heads // n_kv_heads query heads (GQA)
    norm_eps: float  # RMSNorm's epsilon
    vocab_size: int  # rows of the embedding and of the output projection
    sliding_window: int  # W: token i attends to key j iff 0 <= i - j < W
    rope_theta: float = 10000.0  # RoPE base; Mistral 7B v0.1 uses 10000, later models 1e6

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "head_dim", "hidden_dim", "n_heads", "n_kv_heads", "vocab_size",
                     "sliding_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelArgs.{name} must be a positive integer, got {value!r}")
        for name in ("norm_eps", "rope_theta"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelArgs.{name} must be a positive number, got {value!r}")
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}): "
                "each key/value head serves the same number of query heads"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs of features), got {self.head_dim}")

    @property
    def n_rep(self) -> int:
        """How many query heads share one key/value head (4 for Mistral 7B)."""
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_name(cls, name: str) -> ModelArgs:
        """A preset: ``"mistral-7b"`` (the real v0.1 hyper-parameters), ``"tiny"`` (for tests) or ``"mini"``
        (the real vocabulary, small enough to train on a CPU)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**PRESETS[name])

    @classmethod
    def from_dict(cls, params: dict) -> ModelArgs:
        """Build from a ``params.json`` dict.

        Unknown keys are ignored; a missing rope_theta is 10000.0 (v0.1); a missing or null sliding_window
        means no window (v0.2 and later), i.e. NO_WINDOW_CONTEXT.
        """
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in params.items() if k in known}
        if kwargs.get("sliding_window") is None:
            kwargs["sliding_window"] = NO_WINDOW_CONTEXT
        if kwargs.get("rope_theta") is None:
            kwargs.pop("rope_theta", None)
        missing = sorted(f.name for f in fields(cls) if f.name not in kwargs and f.name != "rope_theta")
        if missing:
            raise ValueError(f"params are missing {missing}; expected Mistral's params.json fields")
        return cls(**kwargs)

    @classmethod
    def from_params_json(cls, path: str | Path) -> ModelArgs:
        """Read Mistral's ``params.json``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no params.json at {path}")
        try:
            params = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(params, dict):
            raise ValueError(f"{path} should hold a JSON object of hyper-parameters")
        try:
            return cls.from_dict(params)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def to_dict(self) -> dict:
        """The ``params.json`` dict."""
        return asdict(self)


PRESETS: dict[str, dict] = {
    "mistral-7b": dict(dim=4096, n_layers=32, head_dim=128, hidden_dim=14336, n_heads=32, n_kv_heads=8,
                       norm_eps=1e-5, vocab_size=32000, sliding_window=4096, rope_theta=10000.0),
    "tiny": dict(dim=64, n_layers=2, head_dim=16, hidden_dim=128, n_heads=4, n_kv_heads=2,
                 norm_eps=1e-5, vocab_size=100, sliding_window=8, rope_theta=10000.0),
    # Trainable on a CPU in minutes (python -m mistral_mini.train), with the real tokenizer's 32,000 tokens.
    "mini": dict(dim=128, n_layers=4, head_dim=32, hidden_dim=384, n_heads=4, n_kv_heads=2,
                 norm_eps=1e-5, vocab_size=32000, sliding_window=64, rope_theta=10000.0),
}
