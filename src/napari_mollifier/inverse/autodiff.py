"""Derivatives of a coordinate network by nested autograd: the baseline the mollifier replaces.

For a pointwise network ``u(x)`` evaluated on N points ``x`` (N, 2) with columns (y, x) in model
units, each output row depends on its own input row only, so the gradient of ``u.sum()`` gives
every point's derivative at once. Fourth-order operators need four nested backward passes, each
keeping its graph for the next one and for the training backward pass: that is what makes this
slow and memory hungry, on purpose (``method="pinn-autodiff"``).
"""

from __future__ import annotations

import torch


def gradient(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) values of a pointwise function of ``x`` (N, 2) -> (N, 2) gradient (d/dy, d/dx)."""
    (grad,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    return grad


def laplacian(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N,) ``u_yy + u_xx`` by two nested autograd passes."""
    grad = gradient(u, x)
    u_yy = gradient(grad[:, 0], x)[:, 0]
    u_xx = gradient(grad[:, 1], x)[:, 1]
    return u_yy + u_xx


def biharmonic(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N,) ``lap(lap(u))`` (u_xxxx + 2 u_xxyy + u_yyyy) by four nested passes."""
    return laplacian(laplacian(u, x), x)


def derivatives(u: torch.Tensor, x: torch.Tensor, names) -> dict[str, torch.Tensor]:
    """Named derivatives of ``u`` (N,) with respect to ``x`` (N, 2), same names as the mollifier
    layer: value, dx, dy, dxx, dyy, dxy, laplacian, biharmonic."""
    out: dict[str, torch.Tensor] = {}
    grad = None
    for name in names:
        if name == "value":
            out[name] = u
            continue
        if name in ("dx", "dy", "dxx", "dyy", "dxy") and grad is None:
            grad = gradient(u, x)
        if name == "dy":
            out[name] = grad[:, 0]
        elif name == "dx":
            out[name] = grad[:, 1]
        elif name == "dyy":
            out[name] = gradient(grad[:, 0], x)[:, 0]
        elif name == "dxx":
            out[name] = gradient(grad[:, 1], x)[:, 1]
        elif name == "dxy":
            out[name] = gradient(grad[:, 1], x)[:, 0]
        elif name == "laplacian":
            out[name] = laplacian(u, x)
        elif name == "biharmonic":
            out[name] = biharmonic(u, x)
        else:
            raise ValueError(f"unknown derivative {name!r}")
    return out
