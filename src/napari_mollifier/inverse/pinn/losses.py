"""Residuals and loss terms of the PINN on one window of the padded grid.

Mollified (``"pinn"``): every derivative on the kernel, ``R = (lap eta) * (g - phi_e) - l^2
(lap lap eta) * phi_d + 2 eta * (lambda phi_e - phi_h)``. Autodiff (``"pinn-autodiff"``): the
strong form by nested autograd at every window pixel, then mollified by eta (for smooth fields
``eta * R_strong`` equals the weak form), so both minimise the same loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...physics.chromatin import g, phase_fractions
from .problem import PinnProblem


@dataclass
class LossTerms:
    """Unweighted loss terms on one patch (0-d tensors; ``residual_w`` None with one equation)."""

    residual: object
    residual_w: object
    data: object
    smooth: object


def strong_pieces(problem: PinnProblem, phi_w, phi_d, lam):
    """``phi_h, phi_e, g - phi_e, lambda phi_e - phi_h`` (any shape)."""
    phi_h, phi_e = phase_fractions(phi_w, phi_d)
    return phi_h, phi_e, g(phi_h, problem.params.phi_max) - phi_e, lam * phi_e - phi_h


def mollified_residuals(problem: PinnProblem, phi_w, phi_d, lam, at=(0, 0)):
    """Weak-form residuals on the window interior (rows - 2r, cols - 2r).

    Returns ``(R_rate, R_w, eta*phi_h)``: ``R_rate = eta * [lap(mu_d) + 2 (lambda phi_e -
    phi_h)]`` and ``R_w = eta * lap(mu_w)`` with every derivative on eta (``R_w`` is None
    when only the rate equation is used). ``at``: image-grid (top, left) of the first residual
    pixel (where the lamina wall term is read).
    """
    import torch

    phi_h, phi_e, _, c = strong_pieces(problem, phi_w, phi_d, lam)
    g_h = g(phi_h, problem.params.phi_max)
    l2 = problem.params.interface_length**2
    val = problem.layer_value(torch.stack([c, phi_h])[None])["value"][0]
    lap = problem.layer_lap(torch.stack([g_h, phi_e])[None])["laplacian"][0]
    if problem.both_equations:
        bih = problem.layer_bih(torch.stack([phi_d, phi_w])[None])["biharmonic"][0]
        res_w = -lap[0] - lap[1] - l2 * bih[1]
    else:
        bih = problem.layer_bih(phi_d[None, None])["biharmonic"][0]
        res_w = None
    res = lap[0] - lap[1] - l2 * bih[0] + 2.0 * val[0]
    wall = problem.wall(at[0], at[1], res.shape[-2], res.shape[-1])
    if wall is not None:  # mu_d gets -h w on the envelope, mu_w gets +h w
        res = res - wall
        res_w = None if res_w is None else res_w + wall
    return res, res_w, val[1]


def autodiff_residual(problem: PinnProblem, model, x, rows, cols, top, left):
    """Strong-form residuals by nested autograd at every window pixel, then mollified."""
    import torch

    from ..autodiff import biharmonic, laplacian

    if problem.options.fields_mode != "network":
        raise ValueError("pinn-autodiff needs fields_mode='network'")
    x = x.detach().requires_grad_(True)
    out = model(x)  # (N, 3)
    mean, std = problem.data_mean.reshape(2), problem.data_std.reshape(2)
    phi_w = mean[0] + std[0] * out[:, 0]
    phi_d = mean[1] + std[1] * out[:, 1]
    log_lam = problem.log_ref[top : top + rows, left : left + cols].reshape(-1) + out[:, 2]
    lam = torch.exp(log_lam)
    phi_h, phi_e, a, c = strong_pieces(problem, phi_w, phi_d, lam)
    l2 = problem.params.interface_length**2
    strong = [laplacian(a, x) - l2 * biharmonic(phi_d, x) + 2.0 * c]
    if problem.both_equations:
        g_h = g(phi_h, problem.params.phi_max)
        strong.append(laplacian(-g_h - phi_e, x) - l2 * biharmonic(phi_w, x))
    mol = problem.layer(torch.stack(strong).reshape(1, len(strong), rows, cols))["value"][0]
    res_w = mol[1] if problem.both_equations else None
    grid = lambda t: t.reshape(rows, cols)  # noqa: E731
    return mol[0], res_w, grid(phi_w), grid(phi_d), grid(log_lam)


def loss_terms(problem: PinnProblem, model, top: int, left: int, autodiff: bool) -> LossTerms:
    """Loss terms on the patch whose padded window starts at (top, left)."""
    import torch

    p, r = problem.patch, problem.radius
    rows = cols = p + 2 * r
    x = problem.coords(top, left, rows, cols)
    if autodiff:
        res, res_w, phi_w, phi_d, log_lam = autodiff_residual(
            problem, model, x, rows, cols, top, left
        )
    else:
        out = model(x).T.reshape(3, rows, cols)
        phi_w, phi_d, lam, log_lam = problem.fields_from_output(out, top, left, rows, cols)
        res, res_w, _ = mollified_residuals(problem, phi_w, phi_d, lam, at=(top, left))
    core = (slice(r, r + p), slice(r, r + p))
    window = (slice(top, top + rows), slice(left, left + cols))
    mask = problem.mask[window][core]
    centres = problem.centres[window][core]
    n = mask.sum().clamp_min(1.0)
    n_c = centres.sum().clamp_min(1.0)
    scale = 2.0 * problem.phi_e_mean
    loss_res = (centres * (res / scale) ** 2).sum() / n_c
    loss_res_w = None if res_w is None else (centres * (res_w / scale) ** 2).sum() / n_c
    fitted = torch.stack([phi_w[core], phi_d[core]])
    target = problem.data[:, window[0], window[1]][(slice(None), *core)]
    loss_data = (mask * ((fitted - target) / problem.noise) ** 2).sum() / (2 * n)
    return LossTerms(loss_res, loss_res_w, loss_data, _smoothness(problem, log_lam[core], mask, n))


def _smoothness(problem: PinnProblem, ll, mask, n):
    """``L^2 mean(|grad log lambda|^2) / 2`` over the mask (forward differences)."""
    gy = (ll[1:, :] - ll[:-1, :]) / problem.spacing
    gx = (ll[:, 1:] - ll[:, :-1]) / problem.spacing
    return (
        problem.options.prior_length**2
        * ((mask[1:, :] * gy**2).sum() + (mask[:, 1:] * gx**2).sum())
        / (2 * n)
    )
