"""Per-localisation Voronoi density (localisations per um^2), computed from the Delaunay dual.

The Voronoi cell of localisation ``i`` is the union, over the Delaunay triangles ``t`` around
``i``, of the two triangles ``(p_i, m_ij, c_t)`` and ``(p_i, c_t, m_ik)`` (``m`` edge midpoints,
``c_t`` the circumcentre). Summing their *signed* areas gives the exact cell area also for obtuse
triangles (whose circumcentre lies outside them), fully vectorised: one ``scipy.spatial.Delaunay``
and a few ``bincount`` calls instead of a Python loop over ``scipy.spatial.Voronoi`` regions
(a 1-million-point nucleus in a few seconds). Cells of points on the convex hull are unbounded:
their density is NaN, as in the lab pipeline, which drops them.
"""

from __future__ import annotations

import os

import numpy as np


def unique_localisations(xy_nm: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop exact duplicate positions (the lab pipeline does; Voronoi needs distinct points).

    Returns ``(unique (M, 2) array in the original order of first occurrence, n_removed)``.
    """
    xy_nm = np.ascontiguousarray(xy_nm, dtype=np.float64)
    if len(xy_nm) < 2:
        return xy_nm, 0
    import pandas as pd

    # hashing: ~2x faster than a lexsort on 10^6 rows; keeps the first of each repeated position
    repeat = pd.DataFrame(xy_nm).duplicated(keep="first").to_numpy()
    if not repeat.any():
        return xy_nm, 0
    return xy_nm[~repeat], int(repeat.sum())


def _signed_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Signed area of triangles (a, b, c), each (T, 2); positive when counter-clockwise."""
    return 0.5 * (
        (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    )


def _circumcentres(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Circumcentres of triangles given by their vertices (T, 2), relative to ``p0``."""
    b = p1 - p0
    c = p2 - p0
    d = 2.0 * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
    b2 = (b * b).sum(axis=1)
    c2 = (c * c).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (c[:, 1] * b2 - b[:, 1] * c2) / d
        uy = (b[:, 0] * c2 - c[:, 0] * b2) / d
    return p0 + np.column_stack([ux, uy])


def _cell_areas_exact(xy: np.ndarray, outside_count=None):
    """Voronoi cell areas of ``xy`` (distinct points) from one Delaunay triangulation.

    Returns ``(area, trusted)``: ``area`` is NaN for cells unbounded in this point set.
    ``outside_count(centres, radii)`` (optional) counts, per circle, the points of the whole
    set that are strictly inside it but not in ``xy``; a cell is ``trusted`` when that count is
    0 for every incident triangle, because then (empty-circle property) these triangles are
    triangles of the whole set too and the cell is the same. Without it all are trusted.
    """
    from scipy.spatial import Delaunay

    n = len(xy)
    origin = xy.mean(axis=0)
    # centring keeps the circumcentre arithmetic accurate for coordinates of ~1e5 nm
    centred = xy - origin
    order = _serpentine_order(centred)
    tri = Delaunay(centred[order])
    simplices = order[tri.simplices]  # back to the indices of ``xy``
    p = [centred[simplices[:, k]] for k in range(3)]
    centre = _circumcentres(p[0], p[1], p[2])
    area = np.zeros(n)
    for k in range(3):
        a, b, c = p[k], p[(k + 1) % 3], p[(k + 2) % 3]
        # orientation-independent: the cell piece of vertex a in triangle (a, b, c)
        sign = np.sign(_signed_area(a, b, c))
        piece = _signed_area(a, 0.5 * (a + b), centre) + _signed_area(a, centre, 0.5 * (a + c))
        area += np.bincount(simplices[:, k], weights=sign * piece, minlength=n)
    area[np.unique(order[tri.convex_hull])] = np.nan
    # degenerate (collinear) triangles give non-finite circumcentres: their cells are unusable
    area[~np.isfinite(area) | (area <= 0)] = np.nan
    if outside_count is None:
        return area, np.ones(n, bool)
    radius = np.hypot(*(p[0] - centre).T)
    foreign = outside_count(centre + origin, radius) > 0
    bad = np.zeros(n, bool)
    for k in range(3):
        bad[simplices[foreign, k]] = True
    return area, ~bad & np.isfinite(area)


def analysis_threads() -> int:
    """Threads the analysis may use: ``OMP_NUM_THREADS`` when set (Dask workers set it to 1, so
    two workers do not fight over the cores), otherwise every core."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, os.cpu_count() or 1)


def _serpentine_order(xy: np.ndarray) -> np.ndarray:
    """Point order along a serpentine over square cells of ~5 mean spacings.

    Qhull builds the triangulation about 10-15 % faster from spatially coherent input (memory
    locality); the triangulation itself does not depend on the order.
    """
    span = np.ptp(xy, axis=0)
    area = float(np.prod(span)) or float(np.max(span)) ** 2  # collinear: the squared length
    cell = 5.0 * np.sqrt(area / len(xy)) if area > 0 else 1.0
    grid = ((xy - xy.min(axis=0)) // cell).astype(np.int64)
    along = np.where(grid[:, 0] % 2 == 0, grid[:, 1], -grid[:, 1])
    return np.lexsort((along, grid[:, 0]))


#: Above this many points the triangulation is done in overlapping tiles, run in parallel
#: (qhull is about linear, 10-20 us per point here: tiles do not save work, they share it).
TILE_POINTS = 60_000


def voronoi_cell_areas(
    xy_nm: np.ndarray, tile_points: int = TILE_POINTS, threads: int | None = None
) -> np.ndarray:
    """Area (nm^2) of each localisation's Voronoi cell; NaN for unbounded (hull) cells.

    ``xy_nm`` must hold distinct points (see :func:`unique_localisations`), at least 3 not all
    on one line. Large tables are triangulated in overlapping tiles; a cell is taken from a
    tile only when it provably equals the cell of the whole set (no point outside the tile lies
    in the circumcircle of any of its triangles); the rest are recomputed with a doubled overlap,
    so the result is exact. Tiles run on ``threads`` threads (default: :func:`analysis_threads`;
    qhull and the KD-tree queries release the GIL); each tile writes only its own points, so the
    result does not depend on the thread count.
    """
    xy = np.ascontiguousarray(xy_nm, dtype=np.float64)
    n = len(xy)
    if n <= tile_points:
        return _cell_areas_exact(xy)[0]
    from concurrent.futures import ThreadPoolExecutor

    from scipy.spatial import ConvexHull, cKDTree

    tiles = _Tiles(xy, cKDTree(xy), tile_points)
    area = np.full(n, np.nan)
    todo = np.ones(n, bool)
    todo[ConvexHull(xy).vertices] = False  # unbounded in the whole set: stays NaN
    margin = 10.0 * float(np.sqrt(np.prod(tiles.hi - tiles.lo) / n))  # ~10 mean spacings
    workers = max(1, int(threads or analysis_threads()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while todo.any():
            if margin >= float(np.max(tiles.hi - tiles.lo)):
                rest = _cell_areas_exact(xy)[0]
                area[todo] = rest[todo]
                break
            cores = [tiles.core(t)[todo[tiles.core(t)]] for t in range(tiles.k**2)]
            jobs = [(core, margin) for core in cores if len(core)]
            for done, part in pool.map(lambda job: tiles.cells(*job), jobs):
                area[done] = part
                todo[done] = False
            margin *= 2.0
    return area


class _Tiles:
    """A k x k grid of tiles over the points; the trusted cells of one tile's core points."""

    def __init__(self, xy: np.ndarray, tree, tile_points: int):
        self.xy, self.tree = xy, tree
        self.lo, self.hi = xy.min(axis=0), xy.max(axis=0)
        self.k = int(np.ceil(np.sqrt(len(xy) / tile_points)))
        self.size = (self.hi - self.lo) / self.k
        tile = np.minimum(((xy - self.lo) / self.size).astype(np.int64), self.k - 1)
        key = tile[:, 0] * self.k + tile[:, 1]
        self.by_tile = np.argsort(key, kind="stable")
        self.bounds = np.searchsorted(key[self.by_tile], np.arange(self.k**2 + 1))

    def core(self, t: int) -> np.ndarray:
        return self.by_tile[self.bounds[t] : self.bounds[t + 1]]

    def cells(self, core: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """(indices, areas) of the ``core`` points whose cell this tile proves exact."""
        from scipy.spatial import cKDTree

        xy = self.xy
        box_lo = xy[core].min(axis=0) - margin
        box_hi = xy[core].max(axis=0) + margin
        idx = _points_in_box(
            xy, self.by_tile, self.bounds, self.k, self.size, self.lo, box_lo, box_hi
        )
        if len(idx) < 3:
            return idx[:0], np.empty(0)
        sub_tree = cKDTree(xy[idx])

        def outside_count(centres, radii):
            # circles inside the box hold no outside point; count only the others
            out = np.zeros(len(radii), np.int64)
            crosses = np.any(
                (centres - radii[:, None] < box_lo) | (centres + radii[:, None] > box_hi), axis=1
            )
            c, r = centres[crosses], radii[crosses] * (1 - 1e-9)  # own vertices excluded
            total = self.tree.query_ball_point(c, r, return_length=True)
            out[crosses] = total - sub_tree.query_ball_point(c, r, return_length=True)
            return out

        part, trusted = _cell_areas_exact(xy[idx], outside_count)
        mine = np.zeros(len(idx), bool)
        mine[np.searchsorted(idx, core)] = True
        ok = trusted & mine
        return idx[ok], part[ok]


def _points_in_box(xy, by_tile, bounds, k, size, lo, box_lo, box_hi):
    """Sorted indices of the points inside the box, looked up in the tiles it overlaps."""
    i0, j0 = np.maximum(((box_lo - lo) // size).astype(int), 0)
    i1, j1 = np.minimum(((box_hi - lo) // size).astype(int), k - 1)
    parts = [
        by_tile[bounds[i * k + j] : bounds[i * k + j + 1]]
        for i in range(i0, i1 + 1)
        for j in range(j0, j1 + 1)
    ]
    idx = np.sort(np.concatenate(parts))
    return idx[np.all((xy[idx] >= box_lo) & (xy[idx] <= box_hi), axis=1)]


def voronoi_density(xy_nm: np.ndarray) -> np.ndarray:
    """Local density 1 / (Voronoi cell area), in localisations per um^2 (NaN on the hull)."""
    return 1e6 / voronoi_cell_areas(xy_nm)


def neighbourhood_density(xy_nm: np.ndarray, cell_area_nm2: np.ndarray, neighbours: int):
    """Density over each localisation's cell and its ``neighbours`` nearest localisations' cells.

    ``(number of finite cells) / (their summed area)`` in localisations per um^2: the
    per-cell density averaged like SR-Tesseler's first-rank neighbourhood (``neighbours`` ~ 6),
    which cuts the Poisson noise of single cells (coefficient of variation ~0.5) by about
    ``sqrt(neighbours + 1)``. NaN when fewer than half of the cells are finite (hull).
    """
    from scipy.spatial import cKDTree

    if neighbours <= 0:
        return 1e6 / cell_area_nm2
    k = min(int(neighbours), len(xy_nm) - 1)
    # queried in rows of ~64 mean spacings: neighbouring queries walk the same tree nodes
    # (measured 2x faster on 1M localisations); each point's neighbours do not depend on it
    order = _row_order(xy_nm, 64)
    _, found = cKDTree(xy_nm).query(xy_nm[order], k=k + 1, workers=analysis_threads())
    nb = np.empty_like(found)
    nb[order] = found
    areas = cell_area_nm2[nb]
    finite = np.isfinite(areas)
    count = finite.sum(axis=1)
    total = np.where(finite, areas, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = 1e6 * count / total
    density[count < (k + 1) / 2] = np.nan
    return density


def _row_order(xy_nm: np.ndarray, spacings: float) -> np.ndarray:
    """Indices sorting the points by rows ``spacings`` mean point spacings high, then by x."""
    if len(xy_nm) == 0:
        return np.zeros(0, dtype=np.int64)
    span = np.ptp(xy_nm, axis=0)
    height = max(spacings * np.sqrt(span[0] * span[1] / len(xy_nm)), 1e-9)
    row = np.floor((xy_nm[:, 1] - xy_nm[:, 1].min()) / height)
    return np.lexsort((xy_nm[:, 0], row))
