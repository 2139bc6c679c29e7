"""Intratumoral heterogeneity (ITH): habitats on the largest tumour slice and the ITH score.

The method of Li et al. (ITHscore, Eur Radiol 2022) as Appendix 6 uses it:

1. the axial slice with the largest tumour area (ties: lowest index), cropped to the
   tumour's bounding box plus ``padding`` pixels (image values continue past the
   image border instead of indexing out of range);
2. pyradiomics features of the (2w+1)^2 window around every tumour pixel
   (:func:`local_features`, computed by :mod:`ctith.ith.local_radiomics`);
3. every feature min-max scaled over the tumour's pixels, then k-means for each
   cluster number K: the label map holds cluster + 1 inside the tumour, 0 outside;
4. ITH score per K (:func:`ctith.ith.score.ith_score`).

Whole-tumour habitats (``slices: all``, beyond the paper and ITHscore): the same window
features on every tumour slice, one k-means per K over all the tumour's voxels, and the
score over 3D connected regions (26- or 6-connectivity) with the tumour's volume as S.
The figures show the label volume's cut through the largest slice.

Opt-in variants beyond the paper and ITHscore, each off by default (:class:`ITHParams`):
on CT the pixel noise alone splits a homogeneous tissue into many k-means fragments, so
the published score saturates. The variants act between the features and k-means:
smoothing each feature map in the tumour (Gaussian, or edge-preserving guided by the
CT; at a scale in mm or relative to the tumour's size), and PCA (:mod:`ctith.ith.variants`).
The features themselves stay pyradiomics'. The figures are :mod:`ctith.ith.figures`'.

Pure functions: arrays in, arrays or dicts out. File handling is in :mod:`ctith.cli`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from ..cohort.geometry import LARGEST_SLICE_RULE, largest_slice
from ..errors import InputError
from .local_radiomics import FEATURE_CLASSES, local_features
from .score import cluster_regions, ith_score, label_map
from .variants import guided_smooth_feature_maps, reduce_features, smooth_feature_maps, smoothing_sigma_px


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
    import sklearn
    from sklearn.cluster import KMeans

    # Elkan's k-means skips distance computations the triangle inequality rules out: the
    # same iterations and labels as Lloyd's (tested), about 1.5x faster on noisy slices.
    # The features are checked finite before (_habitat_features), so scikit-learn's own input
    # and parameter checks, repeated inside every k-means++ step, are skipped: same labels.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        labels = KMeans(n_clusters=k, n_init=n_init, random_state=seed, algorithm="elkan").fit_predict(scaled)
    if order_by is not None:
        means = np.array([order_by[labels == c].mean() if np.any(labels == c) else np.inf for c in range(k)])
        rank = np.empty(k, dtype=int)
        rank[np.argsort(means, kind="stable")] = np.arange(k)
        labels = rank[labels]
    return labels


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
