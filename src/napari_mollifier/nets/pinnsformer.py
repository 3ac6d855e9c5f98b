"""PINNsFormer backbone (Zhao, Ding, Prakash 2024, "PINNsFormer: a transformer-based framework
for physics-informed neural networks").

Each coordinate point ``(y, x)`` is expanded into a pseudo-sequence of ``k`` tokens shifted along
the **x axis (columns, the last coordinate)**: ``(y, x + i * token_shift)`` for i = 0..k-1. (The
original shifts along time; a steady-state image has no time axis, so one spatial axis plays that
role.) Tokens are embedded linearly to ``d_model``, pass through one encoder layer
(self-attention) and one decoder layer (cross-attention on the encoder output), both with the
wavelet activation ``w1 sin(x) + w2 cos(x)`` in place of layer norm as in the reference code, and
an output MLP. The output of token 0 (the point itself) is returned. Attention is written out
explicitly so nested autograd (the autodiff baseline) works through it. It is the most
expensive backbone: cost is about ``k**2`` times an MLP of the same width.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Wavelet(nn.Module):
    """Wavelet activation ``w1 * sin(x) + w2 * cos(x)`` with trainable scalars (init 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.ones(()))
        self.w2 = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w1 * torch.sin(x) + self.w2 * torch.cos(x)


class _Attention(nn.Module):
    """Multi-head attention on (N, k, d) tokens (explicit, twice differentiable)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(
                f"PINNsFormer: d_model ({d_model}) must be divisible by heads ({heads})"
            )
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        n, k, d = query.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, -1, h, d // h).transpose(1, 2)  # (N, heads, tokens, d/h)

        q, kk, v = split(self.q(query)), split(self.k(memory)), split(self.v(memory))
        weights = torch.softmax(q @ kk.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(n, k, d)
        return self.out(mixed)


class _Layer(nn.Module):
    """Attention + feed-forward, each with a wavelet pre-activation and a residual."""

    def __init__(self, d_model: int, heads: int, d_ff: int) -> None:
        super().__init__()
        self.act1 = Wavelet()
        self.act2 = Wavelet()
        self.attention = _Attention(d_model, heads)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), Wavelet(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        x2 = self.act1(x)
        mem = x2 if memory is None else memory
        x = x + self.attention(x2, mem)
        return x + self.ff(self.act2(x))


class PINNsFormer(nn.Module):
    """PINNsFormer mapping coordinates (N, in_dim) to raw outputs (N, out_dim).

    Parameters
    ----------
    in_dim, out_dim : int
    d_model : int
        Token embedding size (paper: 32).
    heads : int
        Attention heads (paper: 2).
    tokens : int
        Pseudo-sequence length k (paper: 5).
    token_shift : float
        Shift between tokens along the x axis, model units.
    d_ff : int
        Hidden size of the feed-forward blocks.
    hidden : int
        Hidden size of the output MLP (paper: 512).
    """

    def __init__(
        self,
        in_dim: int = 2,
        out_dim: int = 3,
        *,
        d_model: int = 32,
        heads: int = 2,
        tokens: int = 5,
        token_shift: float = 0.05,
        d_ff: int = 64,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        if tokens < 1:
            raise ValueError(f"PINNsFormer: tokens must be >= 1, found {tokens}")
        shifts = torch.zeros(tokens, in_dim)
        shifts[:, -1] = torch.arange(tokens, dtype=torch.float32) * float(token_shift)
        self.register_buffer("shifts", shifts)
        self.embed = nn.Linear(in_dim, d_model)
        self.encoder = _Layer(d_model, heads, d_ff)
        self.decoder = _Layer(d_model, heads, d_ff)
        self.out_mlp = nn.Sequential(
            nn.Linear(d_model, hidden), Wavelet(), nn.Linear(hidden, hidden), Wavelet()
        )
        self.head = nn.Linear(hidden, out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, hidden): the representation before the output layer."""
        seq = x[:, None, :] + self.shifts[None].to(x.dtype)  # (N, k, in_dim)
        emb = self.embed(seq)
        memory = self.encoder(emb)
        dec = self.decoder(emb, memory)
        return self.out_mlp(dec[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) coordinates in model units -> (N, out_dim) raw outputs."""
        return self.head(self.features(x))
