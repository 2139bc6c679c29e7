"""Quantitative semantic features (Appendix 2), measured on the image beside the readers' ratings.

Radiologists rate necrosis, fat, calcification, enhancement pattern and degree of
enhancement by eye. Here the same definitions are measured in the reader-1 mask:

- necrotic / cystic fraction: venous-phase HU in [0, 20];
- fat fraction: HU in the fat range (default [-150, -30]);
- calcification: HU above a threshold (default 200), on unsmoothed voxels;
- heterogeneous enhancement: the fraction of the volume whose HU differs from the
  tumour's dominant tissue by more than a tolerance; heterogeneous when > 30%;
- degree of enhancement: venous minus plain-CT HU in the enhancing solid component (the
  brighter half of the soft-tissue voxels, where a reader would put the ROI):
  mild < 20, moderate 20-40, marked > 40 HU; only where a plain CT is given.

Voxel HU are median-filtered in-plane first: CT noise (10-20 HU SD) would otherwise
move single voxels in and out of 20-HU-wide ranges; a reader judges regions, not voxels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError
from ..cohort.geometry import orientation_code, reorient

if TYPE_CHECKING:  # the per-patient measurement does not need pandas (0.6 s to import)
    import pandas as pd

RATINGS = ("necrosis", "adipose_tissue", "calcification", "enhancement_pattern", "enhancement_degree")


@dataclass(frozen=True)
class SemanticParams:
    smoothing_mm: float = 2.0  # in-plane median filter radius
    necrosis_hu: tuple[float, float] = (0.0, 20.0)
    fat_hu: tuple[float, float] = (-150.0, -30.0)
    calcification_min_hu: float = 200.0
    min_fraction: dict = field(default_factory=lambda: {"necrosis": 0.05, "fat": 0.05, "calcification": 0.003})
    heterogeneity_tolerance_hu: float = 25.0
    heterogeneous_above: float = 0.30
    enhancement_bins_hu: tuple[float, float] = (20.0, 40.0)
    min_plain_coverage: float = 0.95


def _crop_box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    return tuple(slice(max(0, int(i.min()) - pad), int(i.max()) + pad + 1) for i in idx)


def smooth_hu(hu: np.ndarray, spacing_zyx: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """In-plane median filter of about ``radius_mm`` (a square of 2r+1 voxels per side)."""
    ry = max(0, int(round(radius_mm / spacing_zyx[1])))
    rx = max(0, int(round(radius_mm / spacing_zyx[2])))
    if rx == ry == 0:
        return hu.astype(np.float32)
    return ndimage.median_filter(hu.astype(np.float32), size=(1, 2 * ry + 1, 2 * rx + 1), mode="nearest")


def dominant_hu(values: np.ndarray, bin_hu: float = 5.0) -> float:
    """The tumour's dominant tissue: the centre of the fullest 5-HU bin of smoothed HU."""
    lo, hi = np.floor(values.min() / bin_hu) * bin_hu, np.ceil(values.max() / bin_hu) * bin_hu + bin_hu
    counts, edges = np.histogram(values, bins=np.arange(lo, hi + bin_hu / 2, bin_hu))
    # Ties and a ragged histogram: smooth over 3 bins before taking the peak.
    k = int(np.argmax(np.convolve(counts, np.ones(3), mode="same")))
    return float((edges[k] + edges[k + 1]) / 2.0)


def enhancement_degree(delta_hu: float, bins: tuple[float, float] = (20.0, 40.0)) -> int:
    """1 mild (< 20 HU), 2 moderate (20-40 HU), 3 marked (> 40 HU)."""
    if delta_hu < bins[0]:
        return 1
    return 2 if delta_hu <= bins[1] else 3


def plain_on_venous_grid(plain: sitk.Image, venous: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Plain CT resampled onto the venous grid by physical position (same frame of reference).

    Returns the HU array and a boolean array of voxels the plain CT covers.
    """
    plain = reorient(plain, orientation_code(venous))
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(venous)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    resampler.SetDefaultPixelValue(np.nan)
    arr = sitk.GetArrayFromImage(resampler.Execute(sitk.Cast(plain, sitk.sitkFloat32)))
    covered = np.isfinite(arr)
    return np.where(covered, arr, 0.0).astype(np.float32), covered


def semantic_features(venous_hu: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float],
                      plain_hu: np.ndarray | None = None, plain_covered: np.ndarray | None = None,
                      params: SemanticParams = SemanticParams(), patient: str | None = None,
                      plain_path: str | None = None) -> dict:
    """Fractions, HU measures and the ratings they imply, for one tumour."""
    mask = mask.astype(bool)
    if not mask.any():
        raise InputError("mask is empty", patient)
    pad = int(np.ceil(params.smoothing_mm / min(spacing_zyx[1:]))) + 1
    box = _crop_box(mask, pad)
    m = mask[box]
    raw = venous_hu[box][m].astype(np.float32)
    s = smooth_hu(venous_hu[box], spacing_zyx, params.smoothing_mm)[m]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0

    necrosis = float(np.mean((s >= params.necrosis_hu[0]) & (s <= params.necrosis_hu[1])))
    fat = float(np.mean((s >= params.fat_hu[0]) & (s <= params.fat_hu[1])))
    # Calcifications are punctate, smaller than the median window: raw HU (well above noise).
    calc_voxels = raw > params.calcification_min_hu
    calc = float(np.mean(calc_voxels))
    dom = dominant_hu(s)
    hetero = float(np.mean(np.abs(s - dom) > params.heterogeneity_tolerance_hu))
    out = {
        "tumour_voxels": int(m.sum()),
        "necrosis_fraction": necrosis,
        "fat_fraction": fat,
        "calcification_fraction": calc,
        "calcification_ml": float(calc_voxels.sum() * voxel_ml),
        "dominant_hu": dom,
        "heterogeneous_fraction": hetero,
        "necrosis": int(necrosis >= params.min_fraction["necrosis"]),
        "adipose_tissue": int(fat >= params.min_fraction["fat"]),
        "calcification": int(calc >= params.min_fraction["calcification"]),
        "enhancement_pattern": int(hetero > params.heterogeneous_above),
        "enhancement_hu": None,
        "enhancement_degree": None,
        "plain_ct": plain_hu is not None,
    }
    if plain_hu is not None:
        covered = np.ones_like(mask) if plain_covered is None else plain_covered.astype(bool)
        coverage = float(covered[mask].mean())
        if coverage < params.min_plain_coverage:
            raise InputError(f"plain CT '{plain_path}' covers {coverage:.0%} of the tumour; it must cover "
                             f"at least {params.min_plain_coverage:.0%} (same frame of reference as the "
                             "venous phase?)", patient, plain_path)
        # The enhancing solid component, where a reader puts the ROI: the brighter half of
        # the soft-tissue voxels (above necrosis, below calcification).
        cov = covered[box][m]
        soft = (s > params.necrosis_hu[1]) & (s <= params.calcification_min_hu) & cov
        solid = soft & (s >= np.median(s[soft])) if soft.any() else cov
        ps = smooth_hu(plain_hu[box], spacing_zyx, params.smoothing_mm)[m]
        delta = float(np.median(s[solid] - ps[solid]))
        out["enhancement_hu"] = delta
        out["enhancement_degree"] = enhancement_degree(delta, params.enhancement_bins_hu)
        out["plain_ct_coverage"] = coverage
    return out


def measure(venous: sitk.Image, mask: sitk.Image, plain: sitk.Image | None = None,
            params: SemanticParams = SemanticParams(), patient: str | None = None,
            plain_path: str | None = None) -> dict:
    """``semantic_features`` on ingested SimpleITK images (plain CT on any grid of the same frame)."""
    sx, sy, sz = venous.GetSpacing()
    hu = sitk.GetArrayFromImage(venous)
    m = sitk.GetArrayFromImage(mask)
    plain_hu = covered = None
    if plain is not None:
        plain_hu, covered = plain_on_venous_grid(plain, venous)
    rec = semantic_features(hu, m, (sz, sy, sx), plain_hu, covered, params, patient, plain_path)
    return {"patient_id": patient, **rec, "params": asdict(params)}


def semantic_table(records: list[dict]) -> pd.DataFrame:
    import pandas as pd

    cols = ["patient_id", "necrosis_fraction", "fat_fraction", "calcification_fraction", "calcification_ml",
            "dominant_hu", "heterogeneous_fraction", "enhancement_hu", *RATINGS]
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in records], columns=cols)
    df["enhancement_degree"] = df["enhancement_degree"].astype("Int64")
    return df


def agreement_with_readers(table: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa (linear weights for the ordinal degree) and accuracy of each measured
    rating against reader 1's, over the patients both have."""
    import pandas as pd
    from sklearn.metrics import cohen_kappa_score

    rows = []
    t = table.set_index("patient_id")
    for name in RATINGS:
        if name not in clinical.columns:
            continue
        pair = pd.DataFrame({"measured": pd.to_numeric(t[name], errors="coerce"),
                             "reader1": pd.to_numeric(clinical[name].reindex(t.index), errors="coerce")}).dropna()
        if pair.empty:
            continue
        a, b = pair["measured"].astype(int), pair["reader1"].astype(int)
        weights = "linear" if name == "enhancement_degree" else None
        kappa = cohen_kappa_score(a, b, weights=weights) if len(set(a) | set(b)) > 1 else np.nan
        rows.append({"feature": name, "n": len(pair), "accuracy": float((a == b).mean()),
                     "kappa": float(kappa), "kappa_weights": weights or "none"})
    return pd.DataFrame(rows, columns=["feature", "n", "accuracy", "kappa", "kappa_weights"])
