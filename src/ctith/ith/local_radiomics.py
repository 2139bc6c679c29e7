"""Pixel-wise local radiomics: pyradiomics' features of every (2w+1)^2 window, all at once.

The ITH score (Li et al., ITHscore) describes each tumour pixel by the radiomic features
pyradiomics returns for the square window of the image centred on it, each window
treated as its own 1-slice ROI: grey levels are discretised within the window (fixed
bin width, bins counted from 0), pixel spacing is 1, and the texture matrices see the
in-plane neighbours only (4 GLCM/GLRLM directions, 8-connected zones and neighbourhoods).

Calling pyradiomics once per window (:func:`reference_local_features`, kept as the
reference) costs milliseconds per pixel. :func:`local_features` computes the same 93
features for all windows in one compiled (numba) pass: each window's matrices are a few
grey levels wide, so pyradiomics' formulas are evaluated as small loops over the levels
present in the window, one compiled helper per feature class (:mod:`ctith.ith.kernels`).
Equality with the reference, feature by feature and pixel by pixel, is a test.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from ..names import FEATURE_CLASSES
from .kernels import firstorder, glcm, levels, ngtdm, size_matrices

# Enabled (non-deprecated) features of pyradiomics 3.x for each class, in the order the
# compiled kernel writes them. A test checks them against the installed pyradiomics.
_KERNEL_ORDER = {
    "firstorder": ["10Percentile", "90Percentile", "Energy", "Entropy", "InterquartileRange", "Kurtosis",
                   "Maximum", "Mean", "MeanAbsoluteDeviation", "Median", "Minimum", "Range",
                   "RobustMeanAbsoluteDeviation", "RootMeanSquared", "Skewness", "TotalEnergy",
                   "Uniformity", "Variance"],
    "glcm": ["Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast",
             "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "Id", "Idm",
             "Idmn", "Idn", "Imc1", "Imc2", "InverseVariance", "JointAverage", "JointEnergy", "JointEntropy",
             "MCC", "MaximumProbability", "SumAverage", "SumEntropy", "SumSquares"],
    "gldm": ["DependenceEntropy", "DependenceNonUniformity", "DependenceNonUniformityNormalized",
             "DependenceVariance", "GrayLevelNonUniformity", "GrayLevelVariance", "HighGrayLevelEmphasis",
             "LargeDependenceEmphasis", "LargeDependenceHighGrayLevelEmphasis",
             "LargeDependenceLowGrayLevelEmphasis", "LowGrayLevelEmphasis", "SmallDependenceEmphasis",
             "SmallDependenceHighGrayLevelEmphasis", "SmallDependenceLowGrayLevelEmphasis"],
    "glrlm": ["GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
              "HighGrayLevelRunEmphasis", "LongRunEmphasis", "LongRunHighGrayLevelEmphasis",
              "LongRunLowGrayLevelEmphasis", "LowGrayLevelRunEmphasis", "RunEntropy", "RunLengthNonUniformity",
              "RunLengthNonUniformityNormalized", "RunPercentage", "RunVariance", "ShortRunEmphasis",
              "ShortRunHighGrayLevelEmphasis", "ShortRunLowGrayLevelEmphasis"],
    "glszm": ["GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
              "HighGrayLevelZoneEmphasis", "LargeAreaEmphasis", "LargeAreaHighGrayLevelEmphasis",
              "LargeAreaLowGrayLevelEmphasis", "LowGrayLevelZoneEmphasis", "SizeZoneNonUniformity",
              "SizeZoneNonUniformityNormalized", "SmallAreaEmphasis", "SmallAreaHighGrayLevelEmphasis",
              "SmallAreaLowGrayLevelEmphasis", "ZoneEntropy", "ZonePercentage", "ZoneVariance"],
    "ngtdm": ["Busyness", "Coarseness", "Complexity", "Contrast", "Strength"],
}


# pyradiomics' own order: its feature methods ``get<Name>FeatureValue`` sorted by name.
FEATURE_NAMES = {c: sorted(names, key=lambda f: f"get{f}FeatureValue") for c, names in _KERNEL_ORDER.items()}


def feature_columns(classes=FEATURE_CLASSES) -> list[str]:
    """Column names as pyradiomics' extractor names them (``original_<class>_<feature>``)."""
    return [f"original_{c}_{f}" for c in classes for f in FEATURE_NAMES[c]]


# --------------------------------------------------------------------------- geometry


class _Geometry:
    """Index tables of one (2w+1)x(2w+1) window, cells numbered in row-major order."""

    def __init__(self, window: int):
        s = 2 * window + 1
        self.side, self.cells = s, s * s
        rr, cc = np.divmod(np.arange(self.cells), s)
        # The 4 in-plane directions pyradiomics keeps for a 1-slice ROI (row, col steps).
        directions = [(0, 1), (1, 0), (1, 1), (1, -1)]
        pairs = []
        for a, (dr, dc) in enumerate(directions):
            ok = (rr + dr < s) & (cc + dc >= 0) & (cc + dc < s)
            src = np.flatnonzero(ok)
            pairs.append(np.stack([src, src + dr * s + dc, np.full(src.size, a)], 1))
        pairs = np.concatenate(pairs)
        self.pair_from, self.pair_to, self.pair_dir = pairs.T
        # Run-length lines: every line of every direction, cells in walking order.
        order, start, line_dir = [], [], []
        for a, (dr, dc) in enumerate(directions):
            heads = [(r, c) for r in range(s) for c in range(s)
                     if not (0 <= r - dr < s and 0 <= c - dc < s)]
            for r, c in heads:
                first = True
                while 0 <= r < s and 0 <= c < s:
                    order.append(r * s + c)
                    start.append(first)
                    line_dir.append(a)
                    first = False
                    r, c = r + dr, c + dc
        self.run_order = np.array(order)
        self.run_start = np.array(start)
        # cells of direction a: run_order[run_bounds[a]:run_bounds[a + 1]]
        self.run_bounds = np.searchsorted(np.array(line_dir), np.arange(5))
        # 8-neighbourhood of each cell (index, validity): zones, dependence, NGTDM.
        offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
        nr = rr[:, None] + np.array([o[0] for o in offsets])
        nc = cc[:, None] + np.array([o[1] for o in offsets])
        valid = (nr >= 0) & (nr < s) & (nc >= 0) & (nc < s)
        # neighbours of cell c: nb_list[nb_ptr[c]:nb_ptr[c + 1]]
        self.nb_list = (nr * s + nc)[valid]
        self.nb_ptr = np.concatenate([[0], np.cumsum(valid.sum(1))])
        self.max_neighbours = len(offsets)


@lru_cache(maxsize=8)
def _geometry(window: int) -> _Geometry:
    return _Geometry(window)


# --------------------------------------------------------------------------- windows


def window_stack(image: np.ndarray, centres: tuple[np.ndarray, np.ndarray], window: int,
                 border: str = "edge") -> np.ndarray:
    """Values of the (2w+1)^2 window around each centre, shape (n, (2w+1)^2), row-major.

    Windows reaching past the image take image values (``border``: a numpy pad mode).
    """
    padded = np.pad(np.asarray(image, dtype=np.float64), window, mode=border)
    views = np.lib.stride_tricks.sliding_window_view(padded, (2 * window + 1,) * 2)
    return views[centres[0], centres[1]].reshape(len(centres[0]), -1)


# --------------------------------------------------------------------------- kernel
# One compiled pass over the windows; per window, one helper per feature class
# (ctith.ith.kernels), each writing its columns of the row from _OFFSETS[class] on.
# numba's cache notices a change only in the file of the function it compiled, and the
# pass holds its helpers' compiled code. So this file records the helpers' sources: a
# change there must change this line too (the pass then recompiles); until it does,
# window_features refuses to run, and a test fails, printing the new value.
KERNELS_SHA256 = "eda14480c1eba9e8964973067fcfd3443d03a74b16f755d7438b00bcc232fe97"
N_FEATURES = sum(len(names) for names in _KERNEL_ORDER.values())
_OFFSETS = dict(zip(_KERNEL_ORDER, np.cumsum([0] + [len(names) for names in _KERNEL_ORDER.values()]).tolist()))
_FO, _CM, _DM, _RL, _SZ, _NT = _OFFSETS.values()  # constants of the compiled pass


def kernels_sha256() -> str:
    """sha256 of the compiled helpers' sources (``ctith/ith/kernels/*.py``, by name)."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "kernels").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _check_kernels_recorded() -> None:
    current = kernels_sha256()
    if current != KERNELS_SHA256:
        raise RuntimeError(f"ctith/ith/kernels changed, so numba's cached window pass may be stale: set "
                           f'KERNELS_SHA256 = "{current}" in {Path(__file__).name}')


@njit(cache=True, error_model="numpy")
def _window_pass(values, bin_width, side, pair_from, pair_to, pair_dir, run_order, run_start, run_bounds,
                 nb_ptr, nb_list, n_nb, out):
    """Every feature of every window (rows of ``values``) into ``out``, the helpers of
    :mod:`ctith.ith.kernels` sharing one set of scratch buffers."""
    n, S = values.shape
    x, xs, lv, cnt, s_i = np.empty(S), np.empty(S), np.empty(S), np.empty(S), np.empty(S)
    px, py, lpx, lpy, vsq = np.empty(S), np.empty(S), np.empty(S), np.empty(S), np.empty(S)
    pg, ps = np.empty(S), np.empty(S)
    g, r, lab, stack = np.empty(S, np.int64), np.empty(S, np.int64), np.empty(S, np.int64), np.empty(S, np.int64)
    P = np.empty((4, S, S))
    A = np.empty((S, S))
    Pr = np.empty((S, side))
    Pz = np.empty((S, S))
    Pd = np.empty((S, n_nb + 1))
    work = np.empty(2 * S)
    kbuf = np.zeros(64)
    rank_of = np.zeros(kbuf.size, np.int64)
    q = np.empty(5)
    f = np.zeros(24)
    st = np.empty(16)
    for w in range(n):
        ng = levels.bin_window(values[w], bin_width, x, g)
        if kbuf.size < 3 * ng + 2:
            kbuf = np.zeros(2 * (3 * ng + 2))
            rank_of = np.zeros(kbuf.size, np.int64)
        levels.sort_values(x, xs)
        m = levels.rank_levels(g, ng, rank_of, lv, r, cnt)
        firstorder.firstorder(x, xs, cnt, m, q, out[w, _FO:_CM])
        glcm.glcm_counts(P, m, r, pair_from, pair_to, pair_dir)
        glcm.glcm(P, m, lv, ng, px, py, lpx, lpy, kbuf, vsq, A, work, f, out[w, _CM:_DM])
        size_matrices.glrlm(Pr, m, lv, g, r, run_order, run_start, run_bounds, pg, ps, st, f, out[w, _RL:_SZ])
        size_matrices.glszm(Pz, m, lv, g, r, lab, stack, nb_ptr, nb_list, pg, ps, st, out[w, _SZ:_NT])
        dmax = size_matrices.neighbourhoods(Pd, s_i, m, g, r, nb_ptr, nb_list)
        size_matrices.gldm(Pd, m, lv, dmax, S, pg, ps, st, out[w, _DM:_RL])
        ngtdm.ngtdm(cnt, s_i, lv, m, S, out[w, _NT:N_FEATURES])


def window_features(values: np.ndarray, window: int = 2, bin_width: float = 25.0,
                    classes=FEATURE_CLASSES) -> np.ndarray:
    """Features of windows given as rows of raw values, shape (n, (2w+1)^2) -> (n, F).

    Columns follow :func:`feature_columns` (``classes`` in the given order).
    """
    _check_kernels_recorded()
    geo = _geometry(window)
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != geo.cells:
        raise ValueError(f"expected windows of {geo.cells} values, got shape {values.shape}")
    unknown = set(classes) - set(FEATURE_CLASSES)
    if unknown:
        raise ValueError(f"unknown feature classes {sorted(unknown)}; known: {list(FEATURE_CLASSES)}")
    if not np.isfinite(values).all():
        raise ValueError("windows hold NaN or infinite values")
    full = np.empty((values.shape[0], N_FEATURES))
    _window_pass(values, float(bin_width), geo.side, geo.pair_from, geo.pair_to, geo.pair_dir,
                 geo.run_order, geo.run_start, geo.run_bounds, geo.nb_ptr, geo.nb_list, geo.max_neighbours, full)
    cols = [_OFFSETS[c] + _KERNEL_ORDER[c].index(f) for c in classes for f in FEATURE_NAMES[c]]
    return full[:, cols]

def local_features(slice_hu: np.ndarray, slice_mask: np.ndarray, window: int = 2, bin_width: float = 25.0,
                   classes=FEATURE_CLASSES, border: str = "edge") -> pd.DataFrame:
    """pyradiomics features of the window around every tumour pixel of a 2D slice.

    One row per tumour pixel in row-major order of the slice (index: ``row``, ``col``),
    one column per feature, named as pyradiomics names them.
    """
    slice_hu = np.asarray(slice_hu)
    mask = np.asarray(slice_mask).astype(bool)
    if slice_hu.ndim != 2 or slice_hu.shape != mask.shape:
        raise ValueError(f"need a 2D slice and a mask of the same shape, got {slice_hu.shape} and {mask.shape}")
    rows, cols = np.nonzero(mask)
    values = window_stack(slice_hu, (rows, cols), window, border)
    data = window_features(values, window, bin_width, classes)
    index = pd.MultiIndex.from_arrays([rows, cols], names=["row", "col"])
    return pd.DataFrame(data, index=index, columns=feature_columns(classes))


# --------------------------------------------------------------------------- reference


def reference_extractor(bin_width: float = 25.0, classes=FEATURE_CLASSES):
    """pyradiomics' extractor as the published method uses it: defaults, original image."""
    import logging

    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=bin_width, additionalInfo=False)
    extractor.disableAllFeatures()
    for c in classes:
        extractor.enableFeatureClassByName(c)
    return extractor


def reference_window_features(values: np.ndarray, window: int = 2, bin_width: float = 25.0,
                              classes=FEATURE_CLASSES, extractor=None) -> np.ndarray:
    """The slow path: pyradiomics on each window alone, as a 1-slice volume of unit spacing."""
    import SimpleITK as sitk

    extractor = extractor or reference_extractor(bin_width, classes)
    s = 2 * window + 1
    mask = sitk.GetImageFromArray(np.ones((1, s, s), dtype=np.uint8))
    names = feature_columns(classes)
    out = np.empty((len(values), len(names)))
    for k, row in enumerate(np.asarray(values, dtype=np.float64)):
        image = sitk.GetImageFromArray(row.reshape(1, s, s))
        result = extractor.execute(image, mask)
        out[k] = [float(result[name]) for name in names]
    return out


def reference_local_features(slice_hu: np.ndarray, slice_mask: np.ndarray, window: int = 2,
                             bin_width: float = 25.0, classes=FEATURE_CLASSES,
                             border: str = "edge") -> pd.DataFrame:
    """:func:`local_features` computed by calling pyradiomics once per tumour pixel."""
    mask = np.asarray(slice_mask).astype(bool)
    rows, cols = np.nonzero(mask)
    values = window_stack(slice_hu, (rows, cols), window, border)
    data = reference_window_features(values, window, bin_width, classes)
    index = pd.MultiIndex.from_arrays([rows, cols], names=["row", "col"])
    return pd.DataFrame(data, index=index, columns=feature_columns(classes))
