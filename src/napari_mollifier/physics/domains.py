"""Closed nucleus domains: masks of a rectangle, an ellipse or a random kidney-shaped outline,
and the finite-volume operators of a grid restricted to a mask with no-flux walls.

Grid convention (shared with :mod:`napari_mollifier.physics.simulate`): an ``(H, W)`` grid of
square cells of side ``spacing`` model units, cell ``[i, j]`` centred at
``((i + 0.5) h, (j + 0.5) h)``. The wall (nuclear envelope) runs along the cell faces that
separate mask cells from non-mask cells, and along the image border where the mask touches it.
"""

from __future__ import annotations

import numpy as np


def cell_centres(shape: tuple[int, int], spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinates in model units of the cell centres, each (H, W)."""
    ys = (np.arange(shape[0]) + 0.5) * spacing
    xs = (np.arange(shape[1]) + 0.5) * spacing
    return np.meshgrid(ys, xs, indexing="ij")


def ellipse_mask(
    shape: tuple[int, int],
    spacing: float,
    semi_axes: tuple[float, float],
    centre: tuple[float, float] | None = None,
) -> np.ndarray:
    """Cells whose centre lies inside the ellipse of ``semi_axes`` (y, x) in model units."""
    yy, xx = cell_centres(shape, spacing)
    if centre is None:
        centre = (shape[0] * spacing / 2, shape[1] * spacing / 2)
    ay, ax = semi_axes
    if not (ay > 0 and ax > 0):
        raise ValueError(f"ellipse semi_axes must be > 0 model units, found {semi_axes!r}")
    return ((yy - centre[0]) / ay) ** 2 + ((xx - centre[1]) / ax) ** 2 < 1.0


def kidney_radius(theta: np.ndarray, radius: float, seed: int | None, roughness: float = 0.06):
    """Radius ``r(theta)`` of a kidney-shaped outline (model units), seeded.

    ``r = radius (1 + 0.12 cos 2 theta - 0.22 exp(-((theta - pi/2) / 0.55)^2)
    + sum_k a_k cos(k theta + p_k))``, ``k = 3..6``, ``a_k = roughness * N(0, 1) / k``: an
    elongated outline with one indentation (the hilum of a kidney) and a seeded random
    Fourier perturbation. The indentation sits at ``theta = pi/2`` (up in array rows).
    """
    rng = np.random.default_rng(seed)
    ks = np.arange(3, 7)
    amps = roughness * rng.standard_normal(ks.size) / ks
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    wrapped = np.angle(np.exp(1j * (theta - np.pi / 2)))  # distance to the dent, in (-pi, pi]
    r = 1.0 + 0.12 * np.cos(2 * theta) - 0.22 * np.exp(-((wrapped / 0.55) ** 2))
    flat = np.ravel(theta)[None]
    r = np.ravel(r) + np.sum(amps[:, None] * np.cos(ks[:, None] * flat + phases[:, None]), 0)
    return radius * r.reshape(np.shape(theta))


def kidney_mask(
    shape: tuple[int, int],
    spacing: float,
    radius: float,
    seed: int | None = 0,
    roughness: float = 0.06,
    centre: tuple[float, float] | None = None,
) -> np.ndarray:
    """Mask of the seeded kidney-shaped outline :func:`kidney_radius` (``radius`` model units)."""
    if not radius > 0:
        raise ValueError(f"kidney radius must be > 0 model units, found {radius!r}")
    yy, xx = cell_centres(shape, spacing)
    if centre is None:
        centre = (shape[0] * spacing / 2, shape[1] * spacing / 2)
    dy, dx = yy - centre[0], xx - centre[1]
    theta = np.arctan2(-dy, dx)  # rows grow downwards: "up" is -y
    return np.hypot(dy, dx) < kidney_radius(theta, radius, seed, roughness)


def check_domain_mask(mask, shape: tuple[int, int], where: str) -> np.ndarray:
    """A boolean (H, W) mask with at least one cell; clear ValueError otherwise."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(
            f"{where}: domain mask of shape {tuple(shape)} expected, found {mask.shape}"
        )
    mask = mask.astype(bool)
    if mask.sum() < 16:
        raise ValueError(f"{where}: the domain mask has only {int(mask.sum())} cells (need >= 16)")
    return mask


def wall_faces(mask: np.ndarray) -> np.ndarray:
    """Number of faces (0..4) of each mask cell on the wall (non-mask neighbour or image border).

    Zero outside the mask. ``wall_faces / spacing`` is the wall's surface (line) density per
    cell: the discrete ``delta`` of the envelope, in model units^-1.
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    inner = 0
    for shift in ((0, 1), (2, 1), (1, 0), (1, 2)):
        inner = (
            inner + padded[shift[0] : shift[0] + mask.shape[0], shift[1] : shift[1] + mask.shape[1]]
        )
    return np.where(mask, 4 - inner, 0).astype(np.int64)


def masked_laplacian(mask: np.ndarray, spacing: float):
    """Finite-volume Laplacian on the mask cells with zero flux across every wall face.

    Returns ``(L, index)``: ``L`` a scipy CSR matrix (N, N) over the N mask cells in row-major
    order (model units^-2), ``index`` (H, W) int with the cell number or -1 outside. ``L`` is
    symmetric with zero row sums, so ``sum(L u) = 0`` for every ``u``: no mass leaves the mask.
    On a full rectangle it is the 5-point Laplacian with mirror ghost cells (zero normal
    derivative at the cell faces of the border).
    """
    from scipy import sparse

    mask = np.asarray(mask, dtype=bool)
    index = np.full(mask.shape, -1, dtype=np.int64)
    n = int(mask.sum())
    index[mask] = np.arange(n)
    rows, cols = [], []
    for a, b in ((mask[:-1, :] & mask[1:, :], (1, 0)), (mask[:, :-1] & mask[:, 1:], (0, 1))):
        ii, jj = np.nonzero(a)
        p = index[ii, jj]
        q = index[ii + b[0], jj + b[1]]
        rows += [p, q]
        cols += [q, p]
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    adjacency = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    lap = (adjacency - sparse.diags(degree)) / spacing**2
    return lap.tocsr(), index
