"""The nucleus mask of a density image, and checks of given masks."""

from __future__ import annotations

import numpy as np


class FieldsError(ValueError):
    """Input that cannot be turned into chromatin fields (names what was expected / found)."""


def check_mask(mask, shape, where: str):
    """``mask`` as a bool copy of ``shape`` (all True when None), or a FieldsError."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise FieldsError(f"{where}: mask of shape {tuple(shape)} expected, found {mask.shape}")
    return mask.astype(bool).copy()


def nucleus_mask(
    density: np.ndarray,
    pixel_size_nm: float,
    smoothing_nm: float = 200.0,
    threshold: float = 0.5,
) -> tuple[np.ndarray, dict]:
    """Automatic nucleus mask of a density image.

    Gaussian-smooth the density (sigma ``smoothing_nm``), threshold at ``threshold`` times its
    99th percentile (the nucleus interior), keep the largest connected component and fill its
    holes (scikit-image). Returns ``(mask (H, W) bool, record dict)``.
    """
    from scipy import ndimage
    from skimage import measure

    sigma_px = max(float(smoothing_nm) / float(pixel_size_nm), 0.0)
    smooth = ndimage.gaussian_filter(np.asarray(density, np.float64), sigma_px, mode="nearest")
    level = float(threshold) * float(np.percentile(smooth, 99))
    above = smooth > level
    labels = measure.label(above, connectivity=1)
    if labels.max() == 0:
        raise FieldsError("automatic nucleus mask: nothing above the threshold")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    mask = labels == int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    return mask, {
        "mask_smoothing_px": sigma_px,
        "mask_threshold_level": level,
        "mask_components": int(labels.max()),
    }
