"""Render localisation tables to density images (histogram or pixel-integrated Gaussian).

Grid convention
---------------
Pixel ``[i, j]`` covers ``y in [oy - p/2, oy + p/2)`` and ``x in [ox - p/2, ox + p/2)`` around
its centre ``(oy + i p, ox + j p)``, with ``p = pixel_size_nm`` and ``(oy, ox) = origin_nm``
(the CENTRE of pixel [0, 0], i.e. napari ``translate``). When no origin is given, pixel EDGES
are anchored on integer multiples of ``p`` in world nm (so different files rendered at the
same pixel size share one grid) and the image covers every localisation plus a margin of the
Gaussian truncation radius.

Gaussian rendering
------------------
Each localisation spreads as a 2-D Gaussian with its own lateral precision ``sigma_nm``,
integrated exactly over each pixel (differences of erf along x and y), truncated at
``truncate`` sigma and renormalised so every localisation adds exactly 1 to the image (the
image sums to the number of localisations inside it). Sigma policy: missing / non-finite /
non-positive precisions take ``default_sigma_nm``; values above the ``clamp_percentile``
percentile are clamped to it (absurd fits should not smear the image).

The work is done per tile of ``tile_size`` x ``tile_size`` pixels: localisations are sorted by
tile, their separable 1-D weights are written into two dense (n, T + 2R) matrices and the tile
is their matrix product ``Wy.T @ Wx`` (BLAS). Memory is bounded by the largest tile, never
N x H x W.
"""

from __future__ import annotations

import math

import numpy as np

from ..choices import RENDER_METHODS
from .errors import FormatError
from .types import DensityImage, Localisations

__all__ = ["RENDER_METHODS", "render_density"]


def _grid(x, y, pixel_size_nm, origin_nm, shape, margin_px):
    if origin_nm is None:
        if x.size == 0:
            raise FormatError("cannot choose a grid for an empty table; pass origin_nm and shape")
        x0 = math.floor(float(x.min()) / pixel_size_nm - margin_px) * pixel_size_nm
        y0 = math.floor(float(y.min()) / pixel_size_nm - margin_px) * pixel_size_nm
        origin_nm = (y0 + 0.5 * pixel_size_nm, x0 + 0.5 * pixel_size_nm)
    origin_nm = (float(origin_nm[0]), float(origin_nm[1]))
    if shape is None:
        if x.size == 0:
            raise FormatError("cannot choose an image shape for an empty table; pass shape")
        edge_y = origin_nm[0] - 0.5 * pixel_size_nm
        edge_x = origin_nm[1] - 0.5 * pixel_size_nm
        h = int(math.floor((float(y.max()) - edge_y) / pixel_size_nm + margin_px)) + 1
        w = int(math.floor((float(x.max()) - edge_x) / pixel_size_nm + margin_px)) + 1
        shape = (max(h, 1), max(w, 1))
    shape = (int(shape[0]), int(shape[1]))
    if shape[0] <= 0 or shape[1] <= 0:
        raise FormatError(f"render shape must be positive, found {shape}")
    return origin_nm, shape


def sigma_policy(sigma_nm, n, default_sigma_nm, clamp_percentile):
    """Per-localisation sigma (nm, float64) and a description of what was done."""
    info = {"default_sigma_nm": float(default_sigma_nm), "clamp_percentile": clamp_percentile}
    if sigma_nm is None:
        info.update(source="default", n_defaulted=int(n), clamp_nm=None)
        return np.full(n, float(default_sigma_nm)), info
    sigma = np.asarray(sigma_nm, dtype=np.float64).copy()
    bad = ~np.isfinite(sigma) | (sigma <= 0)
    sigma[bad] = default_sigma_nm
    clamp = None
    if sigma.size and clamp_percentile is not None:
        clamp = float(np.percentile(sigma, clamp_percentile))
        np.minimum(sigma, clamp, out=sigma)
    info.update(source="per-localisation", n_defaulted=int(bad.sum()), clamp_nm=clamp)
    return sigma, info


def render_density(
    locs: Localisations,
    pixel_size_nm: float = 10.0,
    method: str = "gaussian",
    origin_nm: tuple[float, float] | None = None,
    shape: tuple[int, int] | None = None,
    default_sigma_nm: float = 15.0,
    clamp_percentile: float | None = 99.0,
    truncate: float = 3.5,
    tile_size: int = 32,
    dtype=np.float32,
) -> DensityImage:
    """Render localisations to a (H, W) density image (localisations per pixel).

    Parameters
    ----------
    locs : Localisations
        Table with ``x_nm``, ``y_nm`` (and optionally ``sigma_nm``).
    pixel_size_nm : float
        Output pixel side in nm.
    method : {"gaussian", "histogram"}
    origin_nm : (y, x) nm, optional
        Centre of output pixel [0, 0]; default anchors pixel edges on multiples of the pixel
        size (see module docstring).
    shape : (H, W), optional
        Output shape; default covers all localisations (plus the Gaussian margin).
    default_sigma_nm, clamp_percentile, truncate
        Sigma policy and truncation radius (in sigmas) of the Gaussian method.
    tile_size : int
        Tile side in pixels (memory / speed trade-off only; results do not depend on it).

    Returns
    -------
    DensityImage
        ``data`` (H, W) ``dtype``, ``pixel_size_nm``, ``origin_nm`` (pixel [0, 0] centre).
    """
    if method not in RENDER_METHODS:
        raise FormatError(f"render method must be one of {RENDER_METHODS}, found {method!r}")
    try:
        pixel_size_nm = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise FormatError(
            f"pixel_size_nm must be a positive number, found {pixel_size_nm!r}"
        ) from None
    if not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise FormatError(f"pixel_size_nm must be a positive number, found {pixel_size_nm!r}")
    table = locs.table
    source = locs.metadata.get("file") if locs.metadata else None
    if len(table) == 0 and (origin_nm is None or shape is None):
        raise FormatError(
            f"{source or 'localisations'}: the table holds no localisations; nothing to render "
            "(pass origin_nm and shape to get an empty image)"
        )
    x = table["x_nm"].to_numpy(dtype=np.float64)
    y = table["y_nm"].to_numpy(dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    meta = {
        "render_method": method,
        "pixel_size_nm": pixel_size_nm,
        "source": source,
        "source_format": (locs.metadata or {}).get("format"),
        "n_localisations": int(x.size),
        "units": "localisations per pixel",
        "origin_convention": "origin_nm = (y, x) nm of the centre of pixel [0, 0]",
    }
    if method == "histogram":
        origin_nm, shape = _grid(x, y, pixel_size_nm, origin_nm, shape, 0)
        data = _histogram(x, y, pixel_size_nm, origin_nm, shape).astype(dtype)
    else:
        sig = table["sigma_nm"].to_numpy() if "sigma_nm" in table else None
        if sig is not None and not finite.all():
            sig = sig[finite]
        sigma, info = sigma_policy(sig, x.size, default_sigma_nm, clamp_percentile)
        sigma_max_px = float(sigma.max()) / pixel_size_nm if sigma.size else 0.0
        radius = max(1, int(math.ceil(truncate * sigma_max_px)))
        origin_nm, shape = _grid(x, y, pixel_size_nm, origin_nm, shape, radius)
        data = _gaussian(
            x, y, sigma, pixel_size_nm, origin_nm, shape, radius, int(tile_size), dtype, truncate
        )
        meta.update(
            sigma_policy=info, truncate_sigma=truncate, radius_px=radius, pixel_integrated=True
        )
    meta["n_in_image"] = float(data.sum())
    return DensityImage(
        data=data, pixel_size_nm=pixel_size_nm, origin_nm=origin_nm, metadata=meta, path=None
    )


def _histogram(x, y, p, origin_nm, shape):
    h, w = shape
    col = np.floor((x - (origin_nm[1] - 0.5 * p)) / p)
    row = np.floor((y - (origin_nm[0] - 0.5 * p)) / p)
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    flat = row[inside].astype(np.int64) * w + col[inside].astype(np.int64)
    return np.bincount(flat, minlength=h * w).reshape(h, w).astype(np.float64)


def _weights_1d(u, s, start, k, erf=None):
    """Pixel-integrated 1-D Gaussian weights, (n, k), for pixels start..start+k-1.

    ``u`` positions and ``s`` sigmas in pixel units; pixel j covers [j, j + 1).
    """
    if erf is None:
        from scipy.special import erf

    edges = start[:, None] + np.arange(k + 1, dtype=np.float32)[None, :]
    t = (edges - u[:, None]) * (1.0 / (math.sqrt(2.0) * s))[:, None]
    cdf = erf(t.astype(np.float32))
    wts = np.diff(cdf, axis=1)
    wts /= np.maximum(wts.sum(axis=1, keepdims=True), 1e-30)
    return wts


def _gaussian(x, y, sigma_nm, p, origin_nm, shape, radius, tile, dtype, truncate=3.5):
    h, w = shape
    rmax = radius
    # positions in pixel units: pixel j covers [j, j + 1)
    u = (x - (origin_nm[1] - 0.5 * p)) / p
    v = (y - (origin_nm[0] - 0.5 * p)) / p
    cx = np.floor(u)
    cy = np.floor(v)
    keep = (cy >= -rmax) & (cy < h + rmax) & (cx >= -rmax) & (cx < w + rmax)
    u, v, cx, cy, s = u[keep], v[keep], cx[keep], cy[keep], sigma_nm[keep] / p
    s = np.maximum(s, 1e-3)
    cx = cx.astype(np.int64)
    cy = cy.astype(np.int64)
    # Window radius per localisation, quantised to <= 4 groups so narrow Gaussians do not pay
    # for the widest one (erf evaluations scale with the window width).
    need = np.minimum(np.maximum(np.ceil(truncate * s), 1), rmax).astype(np.int64)
    levels = np.unique(np.maximum(np.ceil(rmax * np.array([0.25, 0.5, 0.75, 1.0])), 1))
    levels = levels.astype(np.int64)
    group = np.searchsorted(levels, need)
    # canvas index = image index + 2 rmax; a window starts at cy - r + 2 rmax >= 0
    n_tiles_y = (h + 3 * rmax) // tile + 1
    n_tiles_x = (w + 3 * rmax) // tile + 1
    canvas = np.zeros((n_tiles_y * tile + 2 * rmax, n_tiles_x * tile + 2 * rmax), dtype=np.float32)
    with _tile_matmul() as matmul_tn:
        for g, r in enumerate(levels):
            sel = np.flatnonzero(group == g)
            if sel.size == 0:
                continue
            start_y = cy[sel] - r + 2 * rmax
            start_x = cx[sel] - r + 2 * rmax
            tile_id = (start_y // tile) * n_tiles_x + start_x // tile
            order = np.argsort(tile_id, kind="stable")
            counts = np.bincount(tile_id, minlength=n_tiles_y * n_tiles_x)
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for t in np.flatnonzero(counts):
                idx = sel[order[bounds[t] : bounds[t + 1]]]
                _add_tile(
                    canvas,
                    idx,
                    (t // n_tiles_x) * tile,
                    (t % n_tiles_x) * tile,
                    tile,
                    int(r),
                    rmax,
                    u,
                    v,
                    cx,
                    cy,
                    s,
                    matmul_tn,
                )
    return canvas[2 * rmax : 2 * rmax + h, 2 * rmax : 2 * rmax + w].astype(dtype, copy=True)


def _add_tile(canvas, idx, ty0, tx0, tile, r, rmax, u, v, cx, cy, s, matmul_tn):
    """Add the Gaussians (window radius ``r`` px) of localisations ``idx`` whose windows start
    in the tile at canvas (ty0, tx0); the tile block spans ``tile + 2 r`` canvas pixels."""
    k = 2 * r + 1
    span = tile + 2 * r
    cols = np.arange(k)
    n = idx.size
    start_y, start_x = cy[idx] - r, cx[idx] - r  # image pixel index of the window start
    s32 = s[idx].astype(np.float32)
    erf = getattr(matmul_tn, "erf", None)
    wy = _weights_1d(v[idx].astype(np.float32), s32, start_y.astype(np.float32), k, erf)
    wx = _weights_1d(u[idx].astype(np.float32), s32, start_x.astype(np.float32), k, erf)
    ly = (start_y + 2 * rmax - ty0)[:, None] + cols  # local rows in [0, span)
    lx = (start_x + 2 * rmax - tx0)[:, None] + cols
    rows = np.arange(n)[:, None]
    dense_y = np.zeros((n, span), dtype=np.float32)
    dense_x = np.zeros((n, span), dtype=np.float32)
    dense_y[rows, ly] = wy
    dense_x[rows, lx] = wx
    canvas[ty0 : ty0 + span, tx0 : tx0 + span] += matmul_tn(dense_y, dense_x)


class _tile_matmul:
    """Context giving ``f(a, b) = a.T @ b`` for many small float32 matrices.

    Multi-threaded BLAS is very slow on many small products when the cores are busy (measured
    100x slower on a loaded 2-core box), so torch is used with one intra-op thread for the
    duration (restored afterwards); numpy is the fallback without torch.
    """

    def __enter__(self):
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            self._torch = None
            return lambda a, b: a.T @ b
        self._torch = torch
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

        def matmul_tn(a, b):
            return torch.mm(torch.from_numpy(a).T, torch.from_numpy(b)).numpy()

        # torch's vectorised float32 erf is several times faster than scipy's
        matmul_tn.erf = lambda t: torch.erf(torch.from_numpy(np.ascontiguousarray(t))).numpy()
        return matmul_tn

    def __exit__(self, *exc):
        if self._torch is not None:
            self._torch.set_num_threads(self._threads)
        return False
