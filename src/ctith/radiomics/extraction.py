"""Conventional radiomics (C-radiomics): pyradiomics on the venous phase, per patient.

The parameter file (``workflow/radiomics/params.yaml``, pyradiomics' own format) names
the image types (Original, Wavelet, LoG) and feature classes; the config sets the bin
width and the resampling on top of it. Reader-2 masks, where the sheet gives them, go
through the same extractor on the same ingested image, for the ICC analysis.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml

from ..errors import InputError
from ..cohort.geometry import match_mask_to_image
from ..cohort.readers import read_mask

DIAGNOSTIC_PREFIX = "diagnostics_"


def load_params(path: str | Path, bin_width: float | None = None,
                resampled_spacing: list[float] | None = None) -> dict:
    """Read a pyradiomics parameter file and apply the config's bin width and resampling.

    ``resampled_spacing`` None keeps each image's own spacing.
    """
    params = yaml.safe_load(Path(path).read_text()) or {}
    setting = dict(params.get("setting") or {})
    if bin_width is not None:
        setting["binWidth"] = float(bin_width)
    setting["resampledPixelSpacing"] = [float(s) for s in resampled_spacing] if resampled_spacing else None
    params["setting"] = setting
    return params


@contextmanager
def _quiet_pyradiomics():
    # pyradiomics logs a warning per filter on some volumes; the stage log stays readable.
    logger = logging.getLogger("radiomics")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _bin_edges_from_extremes(library_bin_edges):
    """pyradiomics' own ``getBinEdges``, fed the ROI's extremes instead of every voxel.

    With a fixed bin width the edges depend on min and max alone, but pyradiomics finds them
    with Python's ``min``/``max`` element by element: a fifth of the extraction time on a
    60 mm tumour. numpy finds the same extremes; the library still computes the edges.
    Bin counts (a histogram of every voxel) and non-finite values go to the library as is.
    """
    def bin_edges(parameterValues, **kwargs):  # noqa: N803 (pyradiomics' argument name)
        values = np.asarray(parameterValues)
        if kwargs.get("binCount") is None and values.size:
            extremes = np.array([values.min(), values.max()], dtype=values.dtype)
            if np.isfinite(extremes).all():
                return library_bin_edges(extremes, **kwargs)
        return library_bin_edges(parameterValues, **kwargs)

    return bin_edges


@contextmanager
def _fast_bin_edges():
    from radiomics import imageoperations

    library = imageoperations.getBinEdges
    imageoperations.getBinEdges = _bin_edges_from_extremes(library)
    try:
        yield
    finally:
        imageoperations.getBinEdges = library


def make_extractor(params: dict):
    from radiomics import featureextractor

    with _quiet_pyradiomics():
        return featureextractor.RadiomicsFeatureExtractor(params)


def extract(image: sitk.Image, mask: sitk.Image, params: dict, patient: str | None = None,
            mask_path: str | None = None) -> tuple[pd.Series, dict]:
    """Features (name -> float, pyradiomics' names and order) and diagnostics of one mask."""
    extractor = make_extractor(params)
    try:
        with _quiet_pyradiomics(), _fast_bin_edges():
            result = extractor.execute(image, mask, label=int(params["setting"].get("label", 1)))
    except (ValueError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"pyradiomics cannot extract features from mask '{mask_path}': {msg}",
                         patient, mask_path) from None
    features = {k: float(v) for k, v in result.items() if not k.startswith(DIAGNOSTIC_PREFIX)}
    diagnostics = {k[len(DIAGNOSTIC_PREFIX):]: _plain(v) for k, v in result.items()
                   if k.startswith(DIAGNOSTIC_PREFIX)}
    bad = [k for k, v in features.items() if not np.isfinite(v)]
    if bad:
        diagnostics["non_finite_features"] = bad
    return pd.Series(features, name=patient, dtype=float), diagnostics


def _plain(value):
    """pyradiomics diagnostics hold numpy scalars, arrays and tuples: make them JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def reader2_mask_on_image(mask_path: str | Path, image: sitk.Image, patient: str | None = None,
                          label: int | None = None, tolerance_mm: float = 0.01,
                          direction_tolerance: float = 1e-4, image_path: str | None = None,
                          what: str = "reader-2 mask") -> sitk.Image:
    """Read a re-delineation (reader 2's, or reader 1's repeat: ``what``) and bring it onto
    the ingested image's grid, as ingest does for reader 1."""
    column = "mask_reader1_repeat_label" if "repeat" in what else "mask_reader2_label"
    mask, _ = read_mask(mask_path, what, label, patient, column)
    mask, _ = match_mask_to_image(mask, image, tolerance_mm, direction_tolerance, patient, str(mask_path), image_path)
    return mask


def features_row(series: pd.Series, patient: str) -> pd.DataFrame:
    """One patient's features as a one-row table (patient_id, then pyradiomics' names)."""
    return pd.DataFrame([series.to_numpy()], columns=series.index, index=pd.Index([patient], name="patient_id"))


def cohort_table(rows: list[pd.DataFrame]) -> pd.DataFrame:
    """Patients x features from one-row tables; every patient must carry the same features."""
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="patient_id"))
    names = rows[0].columns
    for row in rows[1:]:
        if not names.equals(row.columns):
            missing = sorted(set(names) - set(row.columns))[:3]
            extra = sorted(set(row.columns) - set(names))[:3]
            raise InputError(f"features differ from patient {rows[0].index[0]}'s (missing {missing}, "
                             f"extra {extra}); were they extracted with different parameter files?",
                             row.index[0])
    return pd.concat(rows, axis=0)
