"""Maps of a trained member on the whole image, in tiles (memory independent of image size)."""

from __future__ import annotations

import numpy as np

from .losses import mollified_residuals
from .problem import PinnProblem


def evaluate_member(problem: PinnProblem, state, model_factory) -> dict[str, np.ndarray]:
    """``{"ratio", "phi_h", "residual"}`` (H, W) float64 maps of the member with weights
    ``state`` (None: the untrained network, i.e. the warm start)."""
    import torch

    model = model_factory()
    if state is not None:
        model.load_state_dict(state)
    model.to(problem.device).eval()
    height, width = problem.shape
    tile = max(16, int(problem.options.eval_tile))
    maps = {k: np.zeros((height, width)) for k in ("ratio", "phi_h", "residual")}
    with torch.no_grad():
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                rows, cols = min(tile, height - top), min(tile, width - left)
                _evaluate_tile(problem, model, maps, top, left, rows, cols)
    return maps


def _evaluate_tile(problem: PinnProblem, model, maps: dict, top, left, rows, cols) -> None:
    r = problem.radius
    prow, pcol = rows + 2 * r, cols + 2 * r
    x = problem.coords(top, left, prow, pcol)
    out = model(x).T.reshape(3, prow, pcol)
    phi_w, phi_d, lam, _ = problem.fields_from_output(out, top, left, prow, pcol)
    res, _, phi_h = mollified_residuals(problem, phi_w, phi_d, lam, at=(top, left))
    sl = (slice(top, top + rows), slice(left, left + cols))
    maps["ratio"][sl] = lam[r : r + rows, r : r + cols].double().cpu().numpy()
    maps["phi_h"][sl] = phi_h.double().cpu().numpy()
    maps["residual"][sl] = res.double().cpu().numpy()
