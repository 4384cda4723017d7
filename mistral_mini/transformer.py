"""The decoder: token embeddings, n_layers pre-norm blocks, a final RMSNorm and the output projection.

Shapes: B batch, T tokens, V vocab_size.

Every parameter is named as in Mistral's consolidated checkpoint (``tok_embeddings.weight``,
``layers.0.attention.wq.weight``, ``layers.0.feed_forward.w1.weight``, ``norm.weight``, ``output.weight``, ...),
so such a state dict loads with a plain ``load_state_dict``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .cache import CacheView, RollingBufferCache
from .config import ModelArgs
from .feed_forward import FeedForward
from .norm import RMSNorm
from .rope import rope_angles


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache_view: CacheView | None = None) -> torch.Tensor:
        # Pre-norm residual: each sub-layer reads a normalized copy and adds its answer to the stream.
        h = x + self.attention(self.attention_norm(x), cos, sin, cache_view)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, cache: RollingBufferCache | None = None,
                last_only: bool = False) -> torch.Tensor:
        """tokens [B, T] -> float32 logits [B, T, V] ([B, 1, V] with ``last_only``).

        Without a cache the tokens sit at positions 0..T-1. With one they continue at ``cache.position``,
        attend to what the cache holds, and are written into it.
        """
        self._check_tokens(tokens)
        if cache is None:
            return self.forward_embeddings(self.tok_embeddings(tokens), last_only=last_only)
        self._check_cache(cache, tokens)
        logits = self.step(tokens, cache, last_only)
        cache.advance(tokens.shape[1])
        return logits

    def step(self, tokens: torch.Tensor, cache: RollingBufferCache, last_only: bool = False) -> torch.Tensor:
        """``forward`` with a cache, minus the checks and the count: tokens [B, T] -> logits [B, T or 1, V].

        Reads and writes the cache's tensors but leaves ``cache.advance`` to the caller. For one token it is
        tensor work only, with no Python branch on the position: what ``torch.compile`` captures as a decode
        step (``generation.decode_step``).
        """
        return self.forward_embeddings(self.tok_embeddings(tokens), cache, last_only)

    def forward_embeddings(self, h: torch.Tensor, cache: RollingBufferCache | None = None,
                           last_only: bool = False, n_layers: int | None = None) -> torch.Tensor:
        """The layers, the final norm and the output: h [B, T, dim] -> float32 logits [B, T, V].

        Without a cache, positions 0..T-1; with one, the next T positions (the cache is written, not advanced).
        n_layers: run only the first n blocks, e.g. to study what a shallower stack can see; only without a
        cache, which every layer must fill.
        """
        if n_layers is not None and cache is not None:
            raise ValueError("n_layers needs cache=None: a cache must be filled by every layer")
        layers = self.layers[:n_layers] if n_layers is not None else self.layers
        if cache is None:
            positions = torch.arange(h.shape[1], device=h.device)
            views = [None] * len(layers)
        else:
            chunk = cache.chunk(h.shape[1])
            positions, views = chunk.positions, cache.views(chunk)
        cos, sin = rope_angles(positions, self.args.head_dim, self.args.rope_theta)  # [T, D/2] each
        for layer, view in zip(layers, views, strict=True):
            h = layer(h, cos, sin, view)
        if last_only:
            h = h[:, -1:]  # [B, 1, dim]: generation needs only the next-token distribution
        return self.output(self.norm(h)).float()

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor of token ids [batch, seq], got {type(tokens).__name__}")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must hold integer ids (torch.long), got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be 2-D [batch, seq], got shape {tuple(tokens.shape)}; "
                             "for one sequence use tokens[None]")
        if tokens.shape[1] == 0:
            raise ValueError("tokens must hold at least one token per sequence, got shape "
                             f"{tuple(tokens.shape)}")
        if tokens.device.type != "meta":
            # One combined test: on a GPU each value read back to Python waits for the device.
            outside = (tokens < 0) | (tokens >= self.args.vocab_size)
            if bool(outside.any()):
                raise ValueError(f"token id {tokens[outside][0].item()} is outside the vocabulary "
                                 f"[0, {self.args.vocab_size})")

    def _check_cache(self, cache: RollingBufferCache, tokens: torch.Tensor) -> None:
        a, c = self.args, cache.args
        if (c.n_layers, c.n_kv_heads, c.head_dim, c.sliding_window) != (
                a.n_layers, a.n_kv_heads, a.head_dim, a.sliding_window):
            raise ValueError("the cache was built for other ModelArgs; build it with RollingBufferCache(model.args)")
        if cache.batch_size != tokens.shape[0]:
            raise ValueError(f"the cache holds {cache.batch_size} sequence(s) but tokens have batch size "
                             f"{tokens.shape[0]}")
        weight = self.tok_embeddings.weight
        if cache.dtype != weight.dtype or cache.device != weight.device:
            raise ValueError(f"the cache is {cache.dtype} on {cache.device} but the model is {weight.dtype} on "
                             f"{weight.device}; pass device= and dtype= to RollingBufferCache")
