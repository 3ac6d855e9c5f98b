"""The nuclear boundary: a smoothed outline of the localisation density mask, and the LAD band.

The lab pipeline takes a concave hull of all localisations (MATLAB ``boundary``, shrink 0.5)
and smooths it. Here the outline is the level line of the localisation histogram on a grid
(``grid_nm`` pixels, edges on multiples of the pixel size like ``io.render_density``), Gaussian
smoothed by ``smoothing_nm``, at ``level`` times the mean smoothed density of occupied pixels
(holes filled, largest piece kept); it hugs the localisations like a concave hull without its
sensitivity to single outliers, and it is resampled to ``step_nm`` and smoothed along its length.
Coordinates are (x, y) nm throughout this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_GRID_NM = 20.0
DEFAULT_MASK_SMOOTHING_NM = 100.0
DEFAULT_MASK_LEVEL = 0.5
DEFAULT_BOUNDARY_SMOOTHING_NM = 50.0
#: A boundary must enclose at least this fraction of the localisations ("closes").
MIN_ENCLOSED_FRACTION = 0.8


class BoundaryError(ValueError):
    """No closed nuclear outline could be found; the message says what was found."""


@dataclass
class Grid:
    """A regular grid in nm: ``counts`` (H, W) localisations per pixel, (row, col) = (y, x)."""

    counts: np.ndarray
    pixel_nm: float
    origin_nm: tuple[float, float]  # (y, x) centre of pixel [0, 0], as io.DensityImage

    def pixel_of(self, xy_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) int arrays of the pixels holding (x, y) nm positions."""
        col = np.floor((xy_nm[:, 0] - self.origin_nm[1]) / self.pixel_nm + 0.5).astype(np.int64)
        row = np.floor((xy_nm[:, 1] - self.origin_nm[0]) / self.pixel_nm + 0.5).astype(np.int64)
        return row, col


def histogram_grid(xy_nm: np.ndarray, pixel_nm: float, pad_px: int) -> Grid:
    """Localisations per pixel, pixel edges on multiples of ``pixel_nm``, ``pad_px`` margin."""
    lo = np.floor(xy_nm.min(axis=0) / pixel_nm) - pad_px  # (x, y) index of first pixel
    hi = np.floor(xy_nm.max(axis=0) / pixel_nm) + pad_px
    shape = (int(hi[1] - lo[1] + 1), int(hi[0] - lo[0] + 1))
    grid = Grid(np.zeros(shape), pixel_nm, ((lo[1] + 0.5) * pixel_nm, (lo[0] + 0.5) * pixel_nm))
    row, col = grid.pixel_of(xy_nm)
    np.add.at(grid.counts, (row, col), 1.0)
    return grid


@dataclass
class Boundary:
    """Closed nuclear outline (counter-clockwise in x, y) and its derived quantities."""

    xy_nm: np.ndarray  # (K, 2) vertices, not repeating the first
    grid: Grid
    mask: np.ndarray  # (H, W) bool nucleus mask on the grid

    @property
    def area_nm2(self) -> float:
        x, y = self.xy_nm[:, 0], self.xy_nm[:, 1]
        return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))

    @property
    def radius_nm(self) -> float:
        """Equivalent radius sqrt(area / pi)."""
        return float(np.sqrt(self.area_nm2 / np.pi))

    @property
    def length_nm(self) -> float:
        return float(np.hypot(*(np.roll(self.xy_nm, -1, axis=0) - self.xy_nm).T).sum())

    def inward_normals(self) -> np.ndarray:
        """(K, 2) unit normals pointing into the nucleus (central differences)."""
        tangent = np.roll(self.xy_nm, -1, axis=0) - np.roll(self.xy_nm, 1, axis=0)
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])  # left of a CCW path: inside
        return normal / np.maximum(np.hypot(*normal.T), 1e-12)[:, None]

    def offset_inward(self, distance_nm: float) -> np.ndarray:
        """Outline moved ``distance_nm`` along the inward normals (the LAD band's inner edge)."""
        return self.xy_nm + distance_nm * self.inward_normals()

    def distance(self, xy_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance (nm) of each point to the outline and the index of the nearest vertex."""
        from scipy.spatial import cKDTree

        from .density import analysis_threads

        # in parallel: points deep inside a ring-shaped outline are slow queries
        dist, index = cKDTree(self.xy_nm).query(xy_nm, workers=analysis_threads())
        return dist, index

    def group_min_distance(self, xy_nm: np.ndarray, groups: np.ndarray, n_groups: int):
        """Per group ``0..n_groups-1`` of points (``groups``, -1 = none): the least distance
        (nm) of its points to the outline, the same as ``distance(xy_nm)`` minimised per group.

        Exact, but fast on many points: a decimated outline (every ``m``-th vertex) bounds each
        point's distance within ``[d' - h, d']`` (``h`` the farthest a dropped vertex lies from a
        kept one), and only the points that can still be a group's closest are queried exactly.
        """
        from scipy.spatial import cKDTree

        from .density import analysis_threads

        points = np.flatnonzero((groups >= 0) & (groups < n_groups))
        best = np.full(n_groups, np.inf)
        if points.size == 0:
            return best
        step = max(1, int(np.sqrt(len(self.xy_nm) / 8)))
        kept = cKDTree(self.xy_nm[::step])
        h = float(kept.query(self.xy_nm)[0].max())
        coarse = kept.query(xy_nm[points], workers=analysis_threads())[0]
        coarse_min = np.full(n_groups, np.inf)
        np.minimum.at(coarse_min, groups[points], coarse)
        maybe = points[coarse - h <= coarse_min[groups[points]] + 1e-6]  # 1e-6 nm: rounding
        exact = self.distance(xy_nm[maybe])[0]
        np.minimum.at(best, groups[maybe], exact)
        return best

    def arc_length(self) -> np.ndarray:
        """Arc length (nm) from vertex 0 to each vertex."""
        seg = np.hypot(*(np.roll(self.xy_nm, -1, axis=0) - self.xy_nm).T)
        return np.concatenate([[0.0], np.cumsum(seg)[:-1]])


def find_boundary(
    xy_nm: np.ndarray,
    grid_nm: float = DEFAULT_GRID_NM,
    mask_smoothing_nm: float = DEFAULT_MASK_SMOOTHING_NM,
    mask_level: float = DEFAULT_MASK_LEVEL,
    boundary_smoothing_nm: float = DEFAULT_BOUNDARY_SMOOTHING_NM,
    step_nm: float = 5.0,
) -> Boundary:
    """Nuclear outline of a localisation cloud; raises :class:`BoundaryError` when none closes."""
    from scipy import ndimage
    from skimage import measure

    if not (grid_nm > 0 and mask_smoothing_nm >= 0 and 0 < mask_level and step_nm > 0):
        raise ValueError("expected grid_nm > 0, mask_smoothing_nm >= 0, mask_level > 0, step > 0")
    pad = int(np.ceil(4 * mask_smoothing_nm / grid_nm)) + 2
    grid = histogram_grid(xy_nm, grid_nm, pad)
    smooth = ndimage.gaussian_filter(grid.counts, mask_smoothing_nm / grid_nm)
    occupied = grid.counts > 0
    level = mask_level * float(smooth[occupied].mean())
    pieces, n_pieces = ndimage.label(ndimage.binary_fill_holes(smooth > level))
    if n_pieces == 0:
        raise BoundaryError("the density mask is empty")
    row, col = grid.pixel_of(xy_nm)
    per_piece = np.bincount(pieces[row, col], minlength=n_pieces + 1)[1:]
    best = int(np.argmax(per_piece)) + 1
    enclosed = per_piece[best - 1] / len(xy_nm)
    if enclosed < MIN_ENCLOSED_FRACTION:
        raise BoundaryError(
            f"the nuclear boundary does not close around the localisations: the density mask "
            f"falls into {n_pieces} pieces and the largest holds {100 * enclosed:.0f} % of them "
            f"(expected >= {100 * MIN_ENCLOSED_FRACTION:.0f} %; a partial nucleus, several "
            "nuclei, or too sparse a table?)"
        )
    mask = pieces == best
    contours = measure.find_contours(mask.astype(float), 0.5)
    contour = max(contours, key=len)
    if len(contour) < 8 or not np.allclose(contour[0], contour[-1]):
        raise BoundaryError("the outline of the density mask is not a closed curve")
    # (row, col) -> (x, y) nm
    xy = np.column_stack(
        [
            grid.origin_nm[1] + contour[:-1, 1] * grid_nm,
            grid.origin_nm[0] + contour[:-1, 0] * grid_nm,
        ]
    )
    xy = _resample_closed(xy, step_nm)
    if boundary_smoothing_nm > 0:
        xy = ndimage.gaussian_filter1d(xy, boundary_smoothing_nm / step_nm, axis=0, mode="wrap")
    boundary = Boundary(xy, grid, mask)
    if boundary.area_nm2 < 0:
        boundary.xy_nm = xy[::-1].copy()
    return boundary


def _resample_closed(xy: np.ndarray, step_nm: float) -> np.ndarray:
    """Closed polyline resampled at (about) uniform arc-length steps."""
    closed = np.vstack([xy, xy[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / step_nm)), 8)
    t = np.linspace(0.0, s[-1], n, endpoint=False)
    return np.column_stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])])
