"""Noise-robust variants between the window features and k-means (beyond the paper and
ITHscore; each off by default): Gaussian or edge-preserving smoothing of each scaled feature
map inside the tumour, at a scale in mm or relative to the tumour's size, and PCA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from .habitats import ITHParams


def smoothing_sigma_px(mask: np.ndarray, spacing_rc, params: ITHParams) -> tuple[float, float] | None:
    """Sigma (rows, columns; pixels) of the feature smoothing, or None when it is off.

    ``feature_smoothing_fraction`` scales it with the tumour: a fraction of the diameter of
    the circle of the slice's tumour area. Noise fragments then count alike in small and
    large tumours, which a fixed sigma leaves to grow with the area.
    """
    spacing_rc = (1.0, 1.0) if spacing_rc is None else tuple(float(s) for s in spacing_rc)
    if params.feature_smoothing_mm is not None:
        sigma_mm = params.feature_smoothing_mm
    elif params.feature_smoothing_fraction is not None:
        area_mm2 = float(np.count_nonzero(mask)) * spacing_rc[0] * spacing_rc[1]
        sigma_mm = params.feature_smoothing_fraction * 2.0 * np.sqrt(area_mm2 / np.pi)
    else:
        return None
    return sigma_mm / spacing_rc[0], sigma_mm / spacing_rc[1]


def smooth_feature_maps(features: np.ndarray, mask: np.ndarray, sigma_px) -> np.ndarray:
    """Gaussian smoothing of each feature over the tumour only (normalised convolution: a
    pixel near the border averages tumour pixels, never the zeros outside).

    ``features``: (tumour pixels in row-major order, n features); returns the same shape.
    """
    mask = np.asarray(mask, dtype=bool)
    maps = np.zeros((features.shape[1],) + mask.shape)
    maps[:, mask] = np.asarray(features, dtype=np.float64).T
    sigma = tuple(np.broadcast_to(np.asarray(sigma_px, dtype=float), (2,)))
    num = ndimage.gaussian_filter(maps, sigma=(0.0, *sigma), mode="constant")
    den = ndimage.gaussian_filter(mask.astype(np.float64), sigma=sigma, mode="constant")
    return (num[:, mask] / den[mask]).T


def guided_smooth_feature_maps(features: np.ndarray, mask: np.ndarray, sigma_px, guide: np.ndarray,
                               range_hu: float) -> np.ndarray:
    """Edge-preserving smoothing of each feature over the tumour: a joint bilateral filter
    whose range weights come from the CT (``guide``, HU). Within one tissue it averages as
    the Gaussian does; across a boundary between tissues of different HU it does not, so
    small patches of a heterogeneous tumour survive the smoothing that removes noise."""
    mask = np.asarray(mask, dtype=bool)
    sigma = np.broadcast_to(np.asarray(sigma_px, dtype=float), (2,))
    r = np.ceil(2.0 * sigma).astype(int)
    h, w = mask.shape
    maps = np.zeros((features.shape[1], h + 2 * r[0], w + 2 * r[1]))
    maps[:, r[0]:r[0] + h, r[1]:r[1] + w][:, mask] = np.asarray(features, dtype=np.float64).T
    g = ndimage.gaussian_filter(np.asarray(guide, dtype=np.float64), 1.0)
    gp = np.pad(g, ((r[0], r[0]), (r[1], r[1])), mode="edge")
    mp = np.pad(mask.astype(np.float64), ((r[0], r[0]), (r[1], r[1])))
    num = np.zeros((features.shape[1], h, w))
    den = np.zeros((h, w))
    # Wide kernels are sampled on a sparser grid of offsets (the weights are normalised, so
    # the result is the same smoothing): big tumours then cost no more than small ones.
    step = np.maximum(1, (sigma / 3.0).astype(int))
    for dy in range(-(r[0] // step[0]) * step[0], r[0] + 1, step[0]):
        for dx in range(-(r[1] // step[1]) * step[1], r[1] + 1, step[1]):
            ws = np.exp(-0.5 * ((dy / sigma[0]) ** 2 + (dx / sigma[1]) ** 2))
            if ws < np.exp(-2.0):  # outside the 2-sigma ellipse
                continue
            sl = (slice(r[0] + dy, r[0] + dy + h), slice(r[1] + dx, r[1] + dx + w))
            wt = ws * np.exp(-0.5 * ((gp[sl] - g) / range_hu) ** 2) * mp[sl]
            num += wt * maps[(slice(None),) + sl]
            den += wt
    return (num[:, mask] / den[mask]).T


def reduce_features(scaled: np.ndarray, n_components: float) -> np.ndarray:
    """Principal components of the scaled features (ITHscore's ``PCs`` option): a count
    (>= 1) or the share of variance to keep (< 1)."""
    from sklearn.decomposition import PCA

    n = int(n_components) if n_components >= 1 else float(n_components)
    if isinstance(n, int):
        n = min(n, *scaled.shape)
    return PCA(n_components=n, svd_solver="full").fit_transform(scaled)
