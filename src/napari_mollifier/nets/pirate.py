"""PirateNet backbone (Wang, Li, Chen, Perdikaris 2024, "PirateNets: physics-informed deep
learning with residual adaptive networks").

Layout, for coordinates ``x`` (N, in_dim) in model units::

    phi = [cos(2 pi B x), sin(2 pi B x)]           trainable random Fourier embedding (d)
    U = act(W_u phi), V = act(W_v phi)             two gates, computed once
    per block, starting from x_0 = phi:
        f  = act(W1 x);  z1 = f * U + (1 - f) * V
        g  = act(W2 z1); z2 = g * U + (1 - g) * V
        h  = act(W3 z2); x_next = alpha * h + (1 - alpha) * x    (alpha trainable, init 0)
    out = W_out x_L

act is tanh, computed as ``2 sigmoid(2 x) - 1`` together with the dense layer in front of it
(:func:`.activations.tanh_linear`, 4.5x cheaper than ``torch.tanh`` on a CPU).

Dense layers use random weight factorisation (W = diag(exp(s)) V, s ~ N(1, 0.1)). Because every
alpha starts at 0 the network starts as a linear model on the embedding, so the final layer can
be initialised by least squares on data (:meth:`PirateNet.least_squares_init`).
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import tanh_linear
from .mlp import FourierFeatures


class RWFLinear(nn.Module):
    """Dense layer with random weight factorisation ``W = diag(exp(s)) @ V``.

    Parameters
    ----------
    in_dim, out_dim : int
    mu, sigma : float
        Mean and spread of the log-scale factors ``s`` (paper: 1.0, 0.1).
    """

    def __init__(self, in_dim: int, out_dim: int, mu: float = 1.0, sigma: float = 0.1) -> None:
        super().__init__()
        weight = torch.empty(out_dim, in_dim)
        nn.init.xavier_normal_(weight)
        scale = mu + sigma * torch.randn(out_dim)
        self.log_scale = nn.Parameter(scale)
        self.direction = nn.Parameter(weight / torch.exp(scale)[:, None])
        self.bias = nn.Parameter(torch.zeros(out_dim))

    @property
    def weight(self) -> torch.Tensor:
        return torch.exp(self.log_scale)[:, None] * self.direction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight, self.bias)

    def tanh(self, x: torch.Tensor) -> torch.Tensor:
        """``tanh(self(x))``, the product and the activation fused (:func:`.tanh_linear`)."""
        return tanh_linear(x, self.weight, self.bias)


class PirateBlock(nn.Module):
    """One residual block of three gated dense layers with a trainable skip weight alpha."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dense1 = RWFLinear(dim, dim)
        self.dense2 = RWFLinear(dim, dim)
        self.dense3 = RWFLinear(dim, dim)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, v: torch.Tensor, u_minus_v: torch.Tensor) -> torch.Tensor:
        # f U + (1 - f) V written as V + f (U - V), and the skip as a lerp: the same function
        # in half the elementwise passes (forward and backward), which dominate on a CPU
        f = self.dense1.tanh(x)
        z1 = torch.addcmul(v, f, u_minus_v)
        g = self.dense2.tanh(z1)
        z2 = torch.addcmul(v, g, u_minus_v)
        h = self.dense3.tanh(z2)
        return torch.lerp(x, h, self.alpha)


class PirateNet(nn.Module):
    """PirateNet mapping coordinates (N, in_dim) to raw outputs (N, out_dim).

    Parameters
    ----------
    in_dim, out_dim : int
    width : int
        Embedding and hidden dimension (even; the paper uses 256).
    blocks : int
        Number of residual blocks (paper: 3).
    fourier_sigma : float
        Initial frequency scale of the trainable embedding, cycles per model unit.
    generator : torch.Generator or None
        Seeded randomness for the embedding frequencies.
    """

    def __init__(
        self,
        in_dim: int = 2,
        out_dim: int = 3,
        width: int = 64,
        blocks: int = 2,
        fourier_sigma: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError(f"PirateNet: width must be an even number >= 2, found {width}")
        if blocks < 1:
            raise ValueError(f"PirateNet: blocks must be >= 1, found {blocks}")
        self.embedding = FourierFeatures(
            in_dim, width // 2, fourier_sigma, trainable=True, generator=generator
        )
        self.gate_u = RWFLinear(width, width)
        self.gate_v = RWFLinear(width, width)
        self.blocks = nn.ModuleList(PirateBlock(width) for _ in range(blocks))
        self.head = nn.Linear(width, out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, width): the representation before the output layer."""
        phi = self.embedding(x)
        u = self.gate_u.tanh(phi)
        v = self.gate_v.tanh(phi)
        u_minus_v = u - v
        h = phi
        for block in self.blocks:
            h = block(h, v, u_minus_v)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) coordinates in model units -> (N, out_dim) raw outputs."""
        return self.head(self.features(x))

    @torch.no_grad()
    def least_squares_init(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-6) -> float:
        """Set the output layer to the ridge least-squares fit of ``y`` (N, out_dim) on the
        features of ``x`` (N, in_dim); returns the relative residual of the fit."""
        feats = self.features(x)
        design = torch.cat([feats, torch.ones_like(feats[:, :1])], dim=1).double()
        gram = design.T @ design
        eye = torch.eye(gram.shape[0], dtype=gram.dtype)
        gram += ridge * torch.trace(gram) / gram.shape[0] * eye
        coef = torch.linalg.solve(gram, design.T @ y.double())
        self.head.weight.copy_(coef[:-1].T.to(self.head.weight.dtype))
        self.head.bias.copy_(coef[-1].to(self.head.bias.dtype))
        fit = design @ coef
        denom = torch.linalg.norm(y.double()).clamp_min(1e-30)
        return float(torch.linalg.norm(fit - y.double()) / denom)
