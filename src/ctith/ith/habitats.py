"""Intratumoral heterogeneity (ITH): habitats on the largest tumour slice and the ITH score.

The method of Li et al. (ITHscore, Eur Radiol 2022) as Appendix 6 uses it:

1. the axial slice with the largest tumour area (ties: lowest index), cropped to the
   tumour's bounding box plus ``padding`` pixels (image values continue past the
   image border instead of indexing out of range);
2. pyradiomics features of the (2w+1)^2 window around every tumour pixel
   (:func:`local_features`, computed by :mod:`ctith.ith.local_radiomics`);
3. every feature min-max scaled over the tumour's pixels, then k-means for each
   cluster number K: the label map holds cluster + 1 inside the tumour, 0 outside;
4. ITH score per K (:func:`ith_score`).

Whole-tumour habitats (``slices: all``, beyond the paper and ITHscore): the same window
features on every tumour slice, one k-means per K over all the tumour's voxels, and the
score over 3D connected regions (26- or 6-connectivity) with the tumour's volume as S.
The figures show the label volume's cut through the largest slice.

Opt-in variants beyond the paper and ITHscore, each off by default (:class:`ITHParams`):
on CT the pixel noise alone splits a homogeneous tissue into many k-means fragments, so
the published score saturates. The variants act between the features and k-means:
smoothing each feature map in the tumour (Gaussian, or edge-preserving guided by the
CT; at a scale in mm or relative to the tumour's size), and PCA. The features
themselves stay pyradiomics'.

Pure functions: arrays in, arrays or dicts out. File handling is in :mod:`ctith.cli`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import InputError
from ..cohort.geometry import largest_slice, LARGEST_SLICE_RULE
from .local_radiomics import FEATURE_CLASSES, local_features

__all__ = ["tumour_slice", "tumour_volume", "volume_features", "local_features", "scale_features",
           "cluster_habitats", "label_map", "ith_score", "cluster_regions", "run_ith", "run_ith_volume",
           "ITHParams", "ITHResult", "TooSmallError", "smooth_feature_maps", "guided_smooth_feature_maps",
           "smoothing_sigma_px", "reduce_features"]

# Connected regions: 4/8 in a slice, 6/26 in a volume (faces / faces, edges and corners).
_STRUCTURE = {4: ndimage.generate_binary_structure(2, 1), 8: np.ones((3, 3), dtype=bool),
              6: ndimage.generate_binary_structure(3, 1), 26: np.ones((3, 3, 3), dtype=bool)}
SLICE_MODES = ("largest", "all")


class TooSmallError(InputError):
    """The tumour slice cannot carry K habitats or a full window."""


@dataclass(frozen=True)
class ITHParams:
    window: int = 2
    padding: int = 2
    border: str = "edge"
    bin_width: float = 25.0
    feature_classes: tuple = FEATURE_CLASSES
    clusters: tuple = (2, 3, 4, 5, 6, 7, 8)
    n_init: int = 10
    min_region_pixels: int = 1
    connectivity: int = 8
    on_small_tumour: str = "error"  # error | nan
    seed: int = 42
    # Noise-robust variants (beyond the paper; None is the published method), docs/ith.md,
    # "How the ITH score behaves on real CT".
    feature_smoothing_mm: float | None = None  # Gaussian sigma on each scaled feature map (mm)
    feature_smoothing_fraction: float | None = None  # ... as a fraction of the tumour's diameter
    pca_components: float | None = None  # PCA of the features: n (>= 1) or variance share (< 1)
    feature_smoothing_edge_hu: float | None = None  # edge-preserving smoothing: CT contrast (HU) it keeps
    # Whole-tumour habitats (beyond the paper): "largest" is the published slice, "all"
    # clusters every tumour slice's pixels together and scores 3D regions.
    slices: str = "largest"
    connectivity_3d: int = 26  # 26 or 6, with slices "all"

    def __post_init__(self):
        if self.feature_smoothing_mm is not None and self.feature_smoothing_fraction is not None:
            raise ValueError("set feature_smoothing_mm or feature_smoothing_fraction, not both")
        if self.slices not in SLICE_MODES:
            raise ValueError(f"slices must be one of {SLICE_MODES}, not {self.slices!r}")
        if self.connectivity_3d not in (6, 26):
            raise ValueError(f"connectivity_3d must be 6 or 26, not {self.connectivity_3d!r}")

    @classmethod
    def from_config(cls, section: dict, seed: int, **overrides) -> "ITHParams":
        """From the config's ``ith:`` section (keys that are not parameters, such as
        ``figure_clusters``, are ignored) and the run's seed."""
        names = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items() if k in names}
        return cls(**{**values, "seed": seed, **overrides})

    @property
    def is_published(self) -> bool:
        """True when no variant is on: the paper's (and ITHscore's) method."""
        return (self.feature_smoothing_mm is None and self.feature_smoothing_fraction is None
                and self.pca_components is None  # the edge scale only acts with a smoothing
                and self.slices == "largest")

    @property
    def score_connectivity(self) -> int:
        """The connectivity the score counts regions with: in the slice or in the volume."""
        return self.connectivity if self.slices == "largest" else self.connectivity_3d


@dataclass
class ITHResult:
    image: np.ndarray  # cropped slice, HU
    mask: np.ndarray  # cropped tumour mask (bool)
    maps: dict  # K -> label map (int8, 0 outside the tumour); absent K could not be clustered
    scores: dict  # K -> ITH score (NaN where the tumour was too small for K)
    info: dict = field(default_factory=dict)
    # Whole-tumour mode: the cropped tumour volume's mask and K -> label volume (``maps``
    # then holds their cut through the largest slice, what the figures show).
    volume_mask: np.ndarray | None = None
    volumes: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- slice


def tumour_slice(image: np.ndarray, mask: np.ndarray, axis: int = 0, index: int | None = None,
                 padding: int = 2, border: str = "edge") -> tuple[np.ndarray, np.ndarray, dict]:
    """The tumour's largest slice, cropped to its bounding box plus ``padding`` pixels.

    ``image`` and ``mask`` are (z, y, x) arrays; ``axis`` is the axial axis. Where the
    padded box passes the image border, values continue as ``border`` (a numpy pad mode)
    says. Returns (slice_hu, slice_mask, info).
    """
    mask = np.asarray(mask).astype(bool)
    if index is None:
        index, _ = largest_slice(mask, axis)
    img2d = np.take(np.asarray(image), index, axis=axis).astype(np.float64)
    msk2d = np.take(mask, index, axis=axis)
    rows, cols = np.nonzero(msk2d)
    if rows.size == 0:
        raise ValueError(f"slice {index} holds no tumour")
    img2d, msk2d, box = _crop_in_plane(img2d, msk2d, rows, cols, padding, border)
    info = {"slice_index": int(index), "slice_rule": LARGEST_SLICE_RULE, "axial_axis": int(axis),
            "tumour_pixels": int(rows.size), **box}
    return img2d, msk2d, info


def _crop_in_plane(img: np.ndarray, msk: np.ndarray, rows, cols, padding: int, border: str):
    """Crop the last two axes to the box of ``rows``, ``cols`` plus ``padding``; where the
    box passes the image border, image values continue as ``border`` says. Returns the
    crops and the box's record."""
    r0, r1 = rows.min() - padding, rows.max() + padding + 1
    c0, c1 = cols.min() - padding, cols.max() + padding + 1
    outside = max(0, -r0, -c0, r1 - img.shape[-2], c1 - img.shape[-1])
    if outside:
        wide = ((0, 0),) * (img.ndim - 2) + ((outside, outside),) * 2
        img, msk = np.pad(img, wide, mode=border), np.pad(msk, wide, mode="constant")
    crop = (..., slice(r0 + outside, r1 + outside), slice(c0 + outside, c1 + outside))
    box = {"bbox_rows": [int(rows.min()), int(rows.max())], "bbox_cols": [int(cols.min()), int(cols.max())],
           "padding": int(padding), "crop_origin": [int(r0), int(c0)], "crop_shape": [int(r1 - r0), int(c1 - c0)],
           "touches_border": bool(outside)}
    return img[crop], msk[crop], box


def tumour_volume(image: np.ndarray, mask: np.ndarray, axis: int = 0, padding: int = 2,
                  border: str = "edge") -> tuple[np.ndarray, np.ndarray, dict]:
    """Every tumour slice, cropped in-plane to the tumour's bounding box over all of them
    plus ``padding`` pixels, as (slice, row, column) arrays with the axial axis first.
    Slices without tumour are left out (features come from in-plane windows). Where the
    box passes the image border, values continue as ``border`` says."""
    image = np.moveaxis(np.asarray(image), axis, 0)
    mask = np.moveaxis(np.asarray(mask).astype(bool), axis, 0)
    zs, rows, cols = np.nonzero(mask)
    if zs.size == 0:
        raise ValueError("the mask holds no tumour")
    z0, z1 = int(zs.min()), int(zs.max()) + 1
    img, msk, box = _crop_in_plane(image[z0:z1].astype(np.float64), mask[z0:z1], rows, cols, padding, border)
    largest, area = largest_slice(msk, 0)
    info = {"slice_index": z0 + largest, "slice_rule": LARGEST_SLICE_RULE, "axial_axis": int(axis),
            "tumour_pixels": area, "tumour_voxels": int(zs.size),
            "slices": [z0, z1 - 1], "tumour_slices": int(np.count_nonzero(msk.any(axis=(1, 2)))), **box}
    return img, msk, info


# --------------------------------------------------------------------------- variants

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


# --------------------------------------------------------------------------- habitats


def volume_features(volume_hu: np.ndarray, volume_mask: np.ndarray, window: int = 2, bin_width: float = 25.0,
                    classes=FEATURE_CLASSES, border: str = "edge") -> pd.DataFrame:
    """:func:`local_features` of every tumour slice of a (slice, row, column) volume: the
    in-plane (2w+1)^2 window around each tumour voxel, as the published method computes it
    on its one slice. One row per tumour voxel in C order (index: ``slice``, ``row``,
    ``col``)."""
    volume_mask = np.asarray(volume_mask, dtype=bool)
    parts = []
    for z in np.flatnonzero(volume_mask.any(axis=(1, 2))):
        f = local_features(volume_hu[z], volume_mask[z], window, bin_width, classes, border)
        f.index = pd.MultiIndex.from_arrays([np.full(len(f), z), f.index.get_level_values("row"),
                                             f.index.get_level_values("col")], names=["slice", "row", "col"])
        parts.append(f)
    return pd.concat(parts)


def scale_features(features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Min-max scale each feature over the tumour's pixels (a constant feature becomes 0)."""
    from sklearn.preprocessing import MinMaxScaler

    return MinMaxScaler().fit_transform(np.asarray(features, dtype=np.float64))


def cluster_habitats(scaled: np.ndarray, k: int, seed: int = 42, n_init: int = 10,
                     order_by: np.ndarray | None = None) -> np.ndarray:
    """k-means labels 0..k-1 of the tumour's pixels (seeded; same seed, same labels).

    Clusters are renumbered by ascending mean of ``order_by`` (e.g. HU) so that maps of
    different K and patients read alike; the ITH score does not depend on the numbering.
    """
    from sklearn.cluster import KMeans

    # Elkan's k-means skips distance computations the triangle inequality rules out: the
    # same iterations and labels as Lloyd's (tested), about 1.5x faster on noisy slices.
    labels = KMeans(n_clusters=k, n_init=n_init, random_state=seed, algorithm="elkan").fit_predict(scaled)
    if order_by is not None:
        means = np.array([order_by[labels == c].mean() if np.any(labels == c) else np.inf for c in range(k)])
        rank = np.empty(k, dtype=int)
        rank[np.argsort(means, kind="stable")] = np.arange(k)
        labels = rank[labels]
    return labels


def label_map(mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Map (2D or 3D): cluster + 1 on the tumour's pixels (C order), 0 outside."""
    out = np.zeros(mask.shape, dtype=np.int8)
    out[np.asarray(mask, dtype=bool)] = np.asarray(labels) + 1
    return out


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    structure = _STRUCTURE.get(connectivity)
    if structure is None or structure.ndim != ndim:
        raise ValueError(f"connectivity {connectivity} does not apply to a {ndim}D label map "
                         "(4 or 8 in 2D, 6 or 26 in 3D)")
    return structure


def cluster_regions(label_map: np.ndarray, connectivity: int = 8) -> dict[int, np.ndarray]:
    """Sizes of the connected regions of each cluster (label > 0), largest first."""
    structure = _structure(np.ndim(label_map), connectivity)
    out = {}
    for c in np.unique(label_map[label_map > 0]):
        regions, _ = ndimage.label(label_map == c, structure=structure)
        out[int(c)] = np.sort(np.bincount(regions.ravel())[1:])[::-1]
    return out


def ith_score(label_map: np.ndarray, min_region_pixels: int = 1, connectivity: int = 8) -> float:
    """ITH score of a label map (0 = background): 1 - sum_c (S_c,max / n_c) / S.

    For each cluster c, S_c,max is its largest connected region and n_c its number of
    regions, counting only regions larger than ``min_region_pixels``; a cluster with no
    such region adds nothing. S is the tumour's area in pixels. 0 = every cluster one
    region; towards 1 = clusters scattered in many small regions.

    A 2D map is the published score (``connectivity`` 8 or 4); a 3D map of the whole
    tumour counts regions in the volume (26 or 6) and S is the tumour's voxel count.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim not in (2, 3):
        raise ValueError(f"need a 2D or 3D label map, got {label_map.ndim}D")
    area = int(np.count_nonzero(label_map))
    if area == 0:
        raise ValueError("label map holds no tumour pixels")
    total = 0.0
    for sizes in cluster_regions(label_map, connectivity).values():
        kept = sizes[sizes > min_region_pixels]
        if kept.size:
            total += kept[0] / kept.size
    return 1.0 - total / area


# --------------------------------------------------------------------------- patient


def _too_small(message: str, params: ITHParams, patient: str | None, path: str | None):
    if params.on_small_tumour == "nan":
        warnings.warn(f"patient {patient}: {message}; ITH score set to NaN", stacklevel=3)
        return
    raise TooSmallError(message, patient, path)


def _habitat_features(features: pd.DataFrame, planes, size_mask: np.ndarray, spacing, params: ITHParams,
                      info: dict, patient, path) -> np.ndarray:
    """The features k-means clusters: min-max scaled over the tumour, then the variants.

    ``planes``: (rows of ``features``, slice mask, slice HU) for each slice the rows lie on;
    a smoothing acts within each slice, at the sigma ``size_mask`` (the largest slice) sets.
    """
    values = features.to_numpy()
    bad = ~np.isfinite(values).all(0)
    if bad.any():
        raise InputError(f"local features {list(features.columns[bad])} are not finite on the tumour",
                         patient, path)
    scaled = scale_features(values)
    sigma = smoothing_sigma_px(size_mask, spacing, params)
    if sigma is not None:
        smoothed = np.empty_like(scaled)
        for rows, msk, img in planes:
            smoothed[rows] = (guided_smooth_feature_maps(scaled[rows], msk, sigma, img, params.feature_smoothing_edge_hu)
                              if params.feature_smoothing_edge_hu else smooth_feature_maps(scaled[rows], msk, sigma))
        scaled = smoothed
        info["feature_smoothing_sigma_px"] = [round(s, 4) for s in sigma]
    if params.pca_components is not None:
        scaled = reduce_features(scaled, params.pca_components)
        info["pca_components"] = int(scaled.shape[1])
    info["n_features"] = values.shape[1]
    return scaled


def _habitats(scaled: np.ndarray, mask: np.ndarray, hu: np.ndarray, params: ITHParams, what: str,
              patient, path) -> tuple[dict, dict]:
    """k-means for each K on the prepared features: label maps (2D or 3D, as ``mask``) and
    scores. ``what`` names the tumour in a too-small message."""
    scores = {k: float("nan") for k in params.clusters}
    maps: dict = {}
    distinct = len(np.unique(scaled, axis=0))
    for k in params.clusters:
        if distinct < k:
            _too_small(f"{what} has {distinct} distinct feature vectors, fewer than K = {k} clusters",
                       params, patient, path)
            continue
        labels = cluster_habitats(scaled, k, params.seed, params.n_init, order_by=hu)
        maps[k] = label_map(mask, labels)
        scores[k] = ith_score(maps[k], params.min_region_pixels, params.score_connectivity)
    return maps, scores


def run_ith(image: np.ndarray, mask: np.ndarray, axis: int = 0, params: ITHParams = ITHParams(),
            patient: str | None = None, path: str | None = None, spacing=None) -> ITHResult:
    """The whole ITH stage for one patient: slice, local features, habitats, scores.

    ``spacing``: the in-plane pixel size (rows, columns) in mm, used by the smoothing
    variants (pixels are taken as 1 mm without it); the published method ignores it.
    With ``params.slices == "all"``, :func:`run_ith_volume`.
    """
    if params.slices == "all":
        return run_ith_volume(image, mask, axis, params, patient, path, spacing)
    img, msk, info = tumour_slice(image, mask, axis, padding=params.padding, border=params.border)
    if spacing is not None:
        info["pixel_spacing_mm"] = [round(float(v), 6) for v in spacing]
    side = 2 * params.window + 1
    h = info["bbox_rows"][1] - info["bbox_rows"][0] + 1
    w = info["bbox_cols"][1] - info["bbox_cols"][0] + 1
    if h < side or w < side:
        _too_small(f"the largest tumour slice ({info['slice_index']}) spans {h} x {w} pixels, "
                   f"smaller than the {side} x {side} feature window", params, patient, path)
        return ITHResult(img, msk, {}, {k: float("nan") for k in params.clusters}, info)
    features = local_features(img, msk, params.window, params.bin_width, params.feature_classes, params.border)
    scaled = _habitat_features(features, [(slice(None), msk, img)], msk, spacing, params, info, patient, path)
    what = f"the largest tumour slice ({info['slice_index']}) with {int(msk.sum())} pixels"
    maps, scores = _habitats(scaled, msk, img[msk], params, what, patient, path)
    return ITHResult(img, msk, maps, scores, info)


def run_ith_volume(image: np.ndarray, mask: np.ndarray, axis: int = 0, params: ITHParams = ITHParams(slices="all"),
                   patient: str | None = None, path: str | None = None, spacing=None) -> ITHResult:
    """Whole-tumour habitats: window features on every tumour slice, one k-means per K over
    all the tumour's voxels, the score over 3D regions (``params.connectivity_3d``).

    The result's ``image``, ``mask`` and ``maps`` are the cut through the largest slice
    (for the figures); ``volume_mask`` and ``volumes`` hold the whole tumour."""
    vol, vmask, info = tumour_volume(image, mask, axis, padding=params.padding, border=params.border)
    info["habitats_from"] = "all tumour slices"
    if spacing is not None:
        info["pixel_spacing_mm"] = [round(float(v), 6) for v in spacing]
    features = volume_features(vol, vmask, params.window, params.bin_width, params.feature_classes, params.border)
    counts = vmask.sum(axis=(1, 2))
    ends = np.cumsum(counts)
    planes = [(slice(e - n, e), vmask[z], vol[z]) for z, (n, e) in enumerate(zip(counts, ends)) if n]
    view = int(info["slice_index"] - info["slices"][0])
    scaled = _habitat_features(features, planes, vmask[view], spacing, params, info, patient, path)
    what = f"the tumour ({info['tumour_voxels']} voxels on {info['tumour_slices']} slices)"
    volumes, scores = _habitats(scaled, vmask, vol[vmask], params, what, patient, path)
    return ITHResult(vol[view], vmask[view], {k: v[view] for k, v in volumes.items()}, scores, info,
                     volume_mask=vmask, volumes=volumes)


def summary(result: ITHResult, params: ITHParams, patient: str) -> dict:
    """JSON-ready record of one patient's ITH stage."""
    per_k = {}
    for k in params.clusters:
        entry = {"ith_score": result.scores[k]}
        if k in result.maps:
            scored = result.volumes.get(k, result.maps[k])  # the whole tumour's map, or the slice's
            regions = cluster_regions(scored, params.score_connectivity)
            entry["cluster_sizes"] = [int(np.sum(scored == c)) for c in range(1, k + 1)]
            entry["regions"] = {str(c): {"count": int((s > params.min_region_pixels).sum()),
                                         "largest": int(s[0]), "ignored": int((s <= params.min_region_pixels).sum())}
                                for c, s in regions.items()}
        per_k[str(k)] = entry
    return {"patient_id": patient, **result.info,
            "params": {**params.__dict__, "feature_classes": list(params.feature_classes),
                       "clusters": list(params.clusters)},
            "k": per_k}


def scores_table(records: list[dict], clusters) -> pd.DataFrame:
    """Cohort table: one row per patient, ``ith_k<K>`` columns, slice and size."""
    rows = []
    for rec in records:
        row = {"patient_id": rec["patient_id"], "slice_index": rec["slice_index"],
               "tumour_pixels": rec["tumour_pixels"]}
        for k in clusters:
            row[f"ith_k{k}"] = rec["k"].get(str(k), {}).get("ith_score", float("nan"))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("patient_id").reset_index(drop=True)


# --------------------------------------------------------------------------- figures

CT_WINDOW = (40.0, 400.0)  # abdominal level / width for display


def _show_ct(ax, image, mask=None):
    level, width = CT_WINDOW
    ax.imshow(image, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, interpolation="nearest")
    if mask is not None:
        ax.contour(mask.astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_map(ax, image, label_map, k, score):
    import matplotlib.pyplot as plt

    _show_ct(ax, image)
    shown = np.ma.masked_equal(label_map, 0)
    ax.imshow(shown, cmap=plt.get_cmap("tab10", 10), vmin=0.5, vmax=10.5, interpolation="nearest", alpha=0.85)
    ax.set_title(f"K = {k}\nITH = {score:.3f}" if np.isfinite(score) else f"K = {k}\nITH = n/a", fontsize=8)


def habitat_figure(result: ITHResult, clusters, title: str = ""):
    """Figure S2: the tumour slice, its mask and the habitat maps for each K with scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 2 + len(clusters)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.7 * rows), squeeze=False)
    axes = axes.ravel()
    _show_ct(axes[0], result.image)
    axes[0].set_title(f"CT, slice {result.info.get('slice_index')}", fontsize=8)
    _show_ct(axes[1], result.image, result.mask)
    axes[1].set_title(f"tumour ({int(result.mask.sum())} px)", fontsize=8)
    for ax, k in zip(axes[2:], clusters):
        if k in result.maps:
            _show_map(ax, result.image, result.maps[k], k, result.scores[k])
        else:
            _show_ct(ax, result.image, result.mask)
            ax.set_title(f"K = {k}\ntoo few pixels", fontsize=8)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def comparison_figure(patients: list[dict], clusters, note: str = ""):
    """Figure S6: two patients, tumour and habitat maps for each K with their ITH scores.

    ``patients``: dicts with ``image``, ``mask``, ``maps`` (K -> map), ``scores`` and a
    ``label`` for the row. ``note``: how the pair was chosen, printed under the maps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + len(clusters)
    fig = plt.figure(figsize=(1.9 * cols, 2.6 * len(patients) + 0.35 * bool(note)), layout="constrained")
    heights = [1.0] * len(patients) + ([0.35 / 2.6] if note else [])
    parts = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    for part, p in zip(parts, patients):
        part.suptitle(p["label"], x=0.005, ha="left", fontsize=8)
        row = part.subplots(1, cols)
        _show_ct(row[0], p["image"], p["mask"])
        row[0].set_title("tumour\n(outline: mask)", fontsize=8)
        for ax, k in zip(row[1:], clusters):
            if k in p["maps"]:
                _show_map(ax, p["image"], p["maps"][k], k, p["scores"].get(k, float("nan")))
            else:
                _show_ct(ax, p["image"], p["mask"])
                ax.set_title(f"K = {k}\nn/a", fontsize=8)
    if note:
        parts[-1].text(0.005, 0.5, note, fontsize=7, va="center", ha="left", wrap=True)
    return fig


# Figure S6's pair shares these clinical traits (the paper: same pathological type, sex,
# clinical T and N stage), dropped from the end when no pair shares them all.
MATCH_TRAITS = ("histology", "sex", "t_stage", "n_stage")
TRAIT_NAMES = {"histology": "histology", "sex": "sex", "t_stage": "T stage", "n_stage": "N stage"}
VALIDATION = ("internal_validation", "external_validation")


def _pairs(low: pd.DataFrame, high: pd.DataFrame, traits, max_age_gap) -> pd.DataFrame:
    pairs = low.reset_index().merge(high.reset_index(), how="cross", suffixes=("_a", "_b"))
    pairs = pairs[pairs["patient_id_a"] != pairs["patient_id_b"]]
    for t in traits:
        pairs = pairs[pairs[f"{t}_a"].notna() & (pairs[f"{t}_a"].astype(str) == pairs[f"{t}_b"].astype(str))]
    pairs = pairs.assign(age_gap=(pairs["age_a"] - pairs["age_b"]).abs(),
                         prob_gap=pairs["probability_b"] - pairs["probability_a"])
    if max_age_gap is not None:
        pairs = pairs[pairs["age_gap"] <= max_age_gap]
    return pairs.sort_values(["age_gap", "prob_gap", "patient_id_a", "patient_id_b"],
                             ascending=[True, False, True, True], na_position="last")


def pick_matched_pair(predictions: pd.DataFrame, clinical: pd.DataFrame, max_age_gap: float = 5.0) -> dict:
    """Figure S6's two patients, picked as the paper shows them: patient A predicted low
    risk by the ITH model and free of DM, patient B predicted high risk and with DM, of the
    same histology, sex, clinical T and N stage, their ages at most ``max_age_gap`` years
    apart.

    ``predictions``: the ITH model's ``predictions.tsv`` (patient_id, cohort, probability,
    predicted); ``clinical``: canonical columns (age, dm_event and ``MATCH_TRAITS``) by
    patient. Validation patients come first (training patients' predictions are in
    sample); among the pairs, the closest in age, then the widest apart in probability,
    then by ID. Where no pair qualifies, the traits are dropped from the end of
    ``MATCH_TRAITS``, then the age limit; with no patient predicted low risk without DM
    (or high with DM), the lowest- and highest-probability patients without and with DM
    stand in. Returns ``low``, ``high``, ``how`` (a sentence for the figure) and ``pairs``
    (how many pairs qualified at the chosen step)."""
    data = predictions.set_index("patient_id")[["cohort", "probability", "predicted"]].join(
        clinical[["age", "dm_event", *MATCH_TRAITS]], how="inner")
    for c in ("age", "dm_event", "probability", "predicted"):
        data[c] = pd.to_numeric(data[c], errors="coerce")
    data = data[data["dm_event"].notna() & data["probability"].notna()]
    if len(data) < 2:
        raise ValueError("Figure S6 needs at least two patients with ITH model predictions and a DM status")
    low = data[(data["predicted"] == 0) & (data["dm_event"] == 0)]
    high = data[(data["predicted"] == 1) & (data["dm_event"] == 1)]
    what = "predicted low risk without DM beside predicted high risk with DM"
    if not len(low) or not len(high):
        no_dm, dm = data[data["dm_event"] == 0], data[data["dm_event"] == 1]
        if len(no_dm) and len(dm):
            low, high = no_dm.nsmallest(1, "probability"), dm.nlargest(1, "probability")
            what = "no patient predicted low risk without DM and high risk with DM: the lowest-probability " \
                   "patient without DM beside the highest-probability patient with DM"
        else:
            low, high = data.nsmallest(1, "probability"), data.nlargest(1, "probability")
            what = "one DM status only: the lowest- and highest-probability patients"
    steps = [(MATCH_TRAITS[:n], max_age_gap) for n in range(len(MATCH_TRAITS), -1, -1)]
    steps.append(((), None))
    for traits, gap in steps:
        for pool, where in ((VALIDATION, "validation cohorts"), (None, "all cohorts")):
            a = low if pool is None else low[low["cohort"].isin(pool)]
            b = high if pool is None else high[high["cohort"].isin(pool)]
            pairs = _pairs(a, b, traits, gap)
            if len(pairs):
                best = pairs.iloc[0]
                same = ", ".join(TRAIT_NAMES[t] for t in traits) or "no trait"
                age = f"ages within {gap:g} years" if gap is not None else "closest ages (none within the limit)"
                how = (f"Pair chosen from the {where} by the ITH model: {what}; same {same}, {age} "
                       f"({len(pairs)} such pair{'s' if len(pairs) > 1 else ''}; the closest in age, then the "
                       "widest apart in probability)")
                return {"low": str(best["patient_id_a"]), "high": str(best["patient_id_b"]), "how": how,
                        "pairs": int(len(pairs)), "traits": list(traits), "max_age_gap": gap, "pool": where}
    raise AssertionError("unreachable: the last step pairs any two patients")
