"""Plain PINN backbone: a tanh MLP on coordinates, with optional random Fourier features.

Every backbone in :mod:`napari_mollifier.nets` maps coordinates ``x`` of shape (N, in_dim)
(model units) to raw outputs of shape (N, out_dim) and exposes ``features(x)`` (the last hidden
representation) and ``head`` (the final ``nn.Linear``) so that the trainer can zero- or
least-squares-initialise the output layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FourierFeatures(nn.Module):
    """Random Fourier embedding ``[cos(2 pi B x), sin(2 pi B x)]``.

    Parameters
    ----------
    in_dim : int
        Coordinate dimension.
    n_features : int
        Number of frequencies; the output has ``2 * n_features`` channels.
    sigma : float
        Standard deviation of the frequencies in cycles per model unit (domains are about one
        unit apart, so sigma ~ 1-2 resolves them).
    trainable : bool
        Whether ``B`` is a trainable parameter (PirateNet) or a fixed buffer (classic RFF).
    generator : torch.Generator or None
        Source of randomness (seeded by the caller for reproducibility).
    """

    def __init__(
        self,
        in_dim: int,
        n_features: int,
        sigma: float = 1.0,
        trainable: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_features < 1:
            raise ValueError(f"FourierFeatures: n_features must be >= 1, found {n_features}")
        freqs = torch.randn(in_dim, n_features, generator=generator) * float(sigma)
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs)
        self.out_dim = 2 * n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, 2 * n_features)."""
        proj = 2.0 * math.pi * x @ self.freqs
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)


class MLP(nn.Module):
    """Tanh multilayer perceptron on coordinates (the classic PINN backbone).

    Parameters
    ----------
    in_dim, out_dim : int
        Coordinate and output dimensions.
    width : int
        Hidden units per layer.
    depth : int
        Number of hidden layers (>= 1).
    fourier_features : int
        Number of random Fourier frequencies (0 = raw coordinates).
    fourier_sigma : float
        Frequency scale of the Fourier features, cycles per model unit.
    generator : torch.Generator or None
        Seeded randomness for the Fourier frequencies (weights use the global torch RNG,
        which the trainer seeds).
    """

    def __init__(
        self,
        in_dim: int = 2,
        out_dim: int = 3,
        width: int = 64,
        depth: int = 4,
        fourier_features: int = 64,
        fourier_sigma: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"MLP: width and depth must be >= 1, found {width=}, {depth=}")
        self.embedding = (
            FourierFeatures(in_dim, fourier_features, fourier_sigma, generator=generator)
            if fourier_features
            else None
        )
        dim = self.embedding.out_dim if self.embedding is not None else in_dim
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(dim, width), nn.Tanh()]
            dim = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, width): the representation before the output layer."""
        if self.embedding is not None:
            x = self.embedding(x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) coordinates in model units -> (N, out_dim) raw outputs."""
        return self.head(self.features(x))
