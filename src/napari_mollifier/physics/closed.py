"""Forward simulation in a closed nucleus: no-flux walls on a rectangle or any mask.

Masked finite-volume scheme on the cell grid of :mod:`napari_mollifier.physics.domains`:
``L`` is the 5-point Laplacian over the mask cells with zero flux across every wall face
(mirror ghost cells), so ``sum(L u) = 0`` for every field and nothing crosses the envelope.
The semi-implicit scheme is the one of :mod:`napari_mollifier.physics.simulate` with
``-k^2 -> L``:

    (I + dt(l^2 L^2 - S L + c)) phi_d^{n+1}
        = phi_d + dt(L(g - phi_e - h w - S phi_d) + 2(Gamma_me phi_e - Gamma_ac phi_h) + c phi_d)
    (I + dt(l^2 L^2 - S L)) phi_w^{n+1} = phi_w + dt L(-g - phi_e + h w - S phi_w)

Both matrices are constant: on a full rectangle the cosine transform (DCT-II, cell-centred)
diagonalises ``L`` exactly (eigenvalues ``-4 sin^2(pi m / 2N) / h^2`` per axis), elsewhere
they are factorised once (sparse LU). Both give the same discrete scheme.
``w = wall_faces / spacing`` is the wall's line density per cell and
``h = ModelParams.lamina_affinity``: the finite-volume form of the wall conditions
``l^2 n.grad(phi_d) = h`` and ``l^2 n.grad(phi_w) = -h``, i.e. ``l^2 n.grad(phi_h) = h`` and
``n.grad(phi_e) = 0`` (n the outward normal): heterochromatin is drawn to the lamina and
displaces nucleoplasm there (a LAD layer), euchromatin is neutral.
The flux conditions ``n.grad(mu_d) = n.grad(mu_w) = 0`` hold exactly (the outer ``L``).

Conservation is exact by construction and checked in the result: the mean of ``phi_w`` is
constant and the mean of ``phi_d`` changes only by the integrated reactions; what is left
over, divided by the wall length and the time, is the residual flux through the wall.
Outside the mask the fields are set to pure nucleoplasm (``phi_w = 1, phi_d = 0``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .chromatin import g as g_bulk
from .chromatin import phase_fractions
from .domains import check_domain_mask, masked_laplacian, wall_faces
from .params import ModelParams


def simulate_closed(
    lam: np.ndarray,
    mask: np.ndarray,
    spacing: float,
    dt: float,
    t_end: float,
    *,
    seed: int | None,
    params: ModelParams,
    stabilisation: float,
    noise: np.ndarray | None,
    tol: float | None,
    report_every: int,
    initial: tuple[np.ndarray, np.ndarray] | None,
) -> dict:
    """Run the closed-domain scheme; returns the keyword arguments of ``SimulationResult``.

    ``lam`` (H, W) is the rate ratio (only mask cells are used), ``mask`` (H, W) the nucleus,
    ``noise`` (2, H, W) the initial perturbation of (phi_d, phi_w) (ignored with ``initial``).
    Called by :func:`napari_mollifier.physics.simulate.simulate_chromatin`.
    """
    from scipy import sparse
    from scipy.sparse.linalg import splu

    t0 = time.perf_counter()
    mask = check_domain_mask(mask, lam.shape, "simulate_chromatin")
    lap, _ = masked_laplacian(mask, spacing)
    n_cells = lap.shape[0]
    faces = wall_faces(mask)
    phi_max, l2, gamma_ac = params.phi_max, params.interface_length**2, params.gamma_ac
    h_wall = float(params.lamina_affinity)
    gamma_me = lam[mask] * gamma_ac
    c = float(lam[mask].mean() * gamma_ac + gamma_ac)
    s = float(stabilisation)
    if mask.all():
        apply_lap, solve_d, solve_w = _cosine_operators(mask.shape, spacing, dt, l2, s, c)
    else:
        eye = sparse.identity(n_cells, format="csr")
        lap2 = lap @ lap
        lu_d = splu((eye + dt * (l2 * lap2 - s * lap + c * eye)).tocsc())
        lu_w = splu((eye + dt * (l2 * lap2 - s * lap)).tocsc())
        apply_lap, solve_d, solve_w = (lambda u: lap @ u), lu_d.solve, lu_w.solve
    w_line = faces[mask] / spacing  # wall length per cell area (model units^-1)
    wall_length = float(faces.sum()) * spacing

    if initial is not None:
        phi_w = np.asarray(initial[0], dtype=np.float64)[mask].copy()
        phi_d = np.asarray(initial[1], dtype=np.float64)[mask].copy()
    else:
        lam_bar = float(lam[mask].mean())
        chromatin = 1.0 - params.mean_nucleoplasm
        phi_d0 = 2 * chromatin * lam_bar / (lam_bar + 1) - chromatin
        nd = noise[0][mask] - noise[0][mask].mean()
        nw = noise[1][mask] - noise[1][mask].mean()
        phi_d = phi_d0 + nd
        phi_w = params.mean_nucleoplasm + nw
    sum_w0, sum_d0 = float(phi_w.sum()), float(phi_d.sum())
    reaction_total = 0.0

    steps_total = int(round(t_end / dt))
    history: list[tuple[float, float]] = []
    max_rate = rms_rate = float("nan")
    step = 0
    for step in range(1, steps_total + 1):
        phi_h, phi_e = phase_fractions(phi_w, phi_d)
        g = g_bulk(phi_h, phi_max)
        pot = np.stack(
            [g - phi_e - h_wall * w_line - s * phi_d, -g - phi_e + h_wall * w_line - s * phi_w], 1
        )
        flux_div = apply_lap(pot)
        reaction = 2 * (gamma_me * phi_e - gamma_ac * phi_h)
        new_d = solve_d(phi_d + dt * (flux_div[:, 0] + reaction + c * phi_d))
        new_w = solve_w(phi_w + dt * flux_div[:, 1])
        # the scheme's exact reaction source, implicit c term included
        reaction_total += dt * float(np.sum(reaction + c * (phi_d - new_d)))
        check = step % report_every == 0 or step == steps_total
        if check:
            rate = np.concatenate([np.abs(new_d - phi_d), np.abs(new_w - phi_w)]) / dt
            max_rate = float(rate.max())
            rms_rate = float(np.sqrt(np.mean(rate * rate)))
            history.append((step * dt, max_rate))
        phi_d, phi_w = new_d, new_w
        if check and not math.isfinite(max_rate):
            raise FloatingPointError(
                f"simulation diverged at t = {step * dt:.3g} (dt = {dt}); use a smaller dt"
            )
        if check and tol is not None and max_rate < tol:
            break
    t_sim = step * dt
    area_cell = spacing**2
    # mass budget: anything not explained by reactions went through the wall
    leak_w = (float(phi_w.sum()) - sum_w0) * area_cell
    leak_d = (float(phi_d.sum()) - sum_d0 - reaction_total) * area_cell
    conservation = {
        "mean_phi_w_start": sum_w0 / n_cells,
        "mean_phi_w_end": float(phi_w.mean()),
        "mean_drift_phi_w": abs(float(phi_w.sum()) - sum_w0) / n_cells,
        "mean_drift_phi_d_minus_reactions": abs(float(phi_d.sum()) - sum_d0 - reaction_total)
        / n_cells,
        "wall_flux": max(abs(leak_w), abs(leak_d)) / max(wall_length * t_sim, 1e-300),
        "wall_length_model_units": wall_length,
        "lamina_affinity": h_wall,
        "scheme": "masked finite volume, 5-point Laplacian, zero flux across wall faces",
    }
    out_w = np.ones(mask.shape)
    out_d = np.zeros(mask.shape)
    out_w[mask], out_d[mask] = phi_w, phi_d
    return {
        "phi_w": out_w,
        "phi_d": out_d,
        "t_end": t_sim,
        "steps": step,
        "max_rate": max_rate,
        "rms_rate": rms_rate,
        "history": history,
        "mask": mask,
        "conservation": conservation,
        "elapsed_s": time.perf_counter() - t0,
    }


def _cosine_operators(shape, spacing, dt, l2, s, c):
    """``L u`` and the two implicit solves on a full rectangle, by DCT-II (exact for ``L``).

    Vectors are the row-major mask cells (here every cell); ``apply_lap`` takes (N, k).
    """
    from scipy import fft

    h, w = shape
    ey = -4 * np.sin(np.pi * np.arange(h) / (2 * h)) ** 2 / spacing**2
    ex = -4 * np.sin(np.pi * np.arange(w) / (2 * w)) ** 2 / spacing**2
    eig = ey[:, None] + ex[None, :]
    denom_d = 1 + dt * (l2 * eig * eig - s * eig + c)
    denom_w = 1 + dt * (l2 * eig * eig - s * eig)

    def apply_lap(u):
        grids = u.T.reshape(-1, h, w)
        out = fft.idctn(
            eig * fft.dctn(grids, type=2, axes=(1, 2), norm="ortho"),
            type=2,
            axes=(1, 2),
            norm="ortho",
        )
        return out.reshape(-1, h * w).T

    def solver(denom):
        def solve(rhs):
            spec = fft.dctn(rhs.reshape(h, w), type=2, norm="ortho") / denom
            return fft.idctn(spec, type=2, norm="ortho").ravel()

        return solve

    return apply_lap, solver(denom_d), solver(denom_w)
