"""Ingestion: read a CT and its tumour mask, check them, write canonical NIfTI + QC, and
the cohort's QC table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from ..io import atomic_path, write_json
from .geometry import LARGEST_SLICE_RULE, axial_axis, largest_slice, match_mask_to_image, orientation_code, reorient
from .readers import acquisition_settings, read_ct, read_mask

if TYPE_CHECKING:  # the per-patient ingest does not need pandas (0.6 s to import)
    import pandas as pd


HU_PERCENTILES = (0.5, 1, 5, 25, 50, 75, 95, 99, 99.5)


@dataclass
class IngestResult:
    image: sitk.Image  # HU, canonical orientation
    mask: sitk.Image  # uint8 0/1 on the image grid
    qc: dict


def qc_record(image: sitk.Image, mask: sitk.Image) -> dict:
    """Numbers a reader checks before trusting a scan (pure: no file paths)."""
    arr = sitk.GetArrayViewFromImage(image)
    m = sitk.GetArrayViewFromImage(mask).astype(bool)
    spacing = image.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    n = int(m.sum())
    ax = axial_axis(image)
    k, area = largest_slice(m, ax)
    itk_ax = 2 - ax
    pix_mm2 = float(np.prod([s for i, s in enumerate(spacing) if i != itk_ax]))
    present = np.flatnonzero(m.sum(axis=tuple(a for a in range(3) if a != ax)))
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(mask, True), sortByObjectSize=True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(cc)
    sizes = [int(stats.GetNumberOfPixels(lbl)) for lbl in stats.GetLabels()]
    tum = arr[m].astype(np.float64)
    warnings = []
    if float(arr.min()) > -500:
        warnings.append(f"lowest value {float(arr.min()):.0f} shows no air: are values in HU?")
    in_plane = [a for a in range(3) if a != ax]
    for a in in_plane:
        if m.take(0, axis=a).any() or m.take(m.shape[a] - 1, axis=a).any():
            warnings.append("tumour touches the in-plane image border")
            break
    if present.size == 1:
        warnings.append("mask covers 1 slice: the 3-D features describe a one-slice slab "
                        "(was only the key slice delineated?)")
    if present[0] < 2 or present[-1] > m.shape[ax] - 3:
        warnings.append("tumour within 2 slices of the volume's end: neighbouring slices are clamped")
    if len(sizes) > 1:
        warnings.append(f"mask has {len(sizes)} connected components")
    return {
        "size": list(image.GetSize()),
        "spacing": [round(float(s), 6) for s in spacing],
        "origin": [float(o) for o in image.GetOrigin()],
        "direction": [float(d) for d in image.GetDirection()],
        "orientation": orientation_code(image),
        "pixel_type": image.GetPixelIDTypeAsString(),
        "hu": {"min": float(arr.min()), "max": float(arr.max()),
               **{f"p{p:g}": float(v) for p, v in zip(HU_PERCENTILES, np.percentile(arr, HU_PERCENTILES))}},
        "tumour_hu": {"mean": float(tum.mean()), "std": float(tum.std()),
                      **{f"p{p:g}": float(v) for p, v in zip((5, 50, 95), np.percentile(tum, (5, 50, 95)))}},
        "tumour_voxels": n,
        "tumour_volume_ml": round(n * voxel_ml, 4),
        "axial_axis": ax,
        "largest_slice": {"index": k, "area_pixels": area, "area_mm2": round(area * pix_mm2, 4),
                          "rule": LARGEST_SLICE_RULE},
        "tumour_slices": {"first": int(present[0]), "last": int(present[-1]), "count": int(present.size)},
        "connected_components": {"count": len(sizes), "connectivity": 26,
                                 "largest_voxels": sizes[0] if sizes else 0,
                                 "largest_fraction": round(sizes[0] / n, 6) if n else 0.0},
        "warnings": warnings,
    }


def ingest(image_path: str | os.PathLike, mask_path: str | os.PathLike, patient_id: str | None = None,
           series_uid: str | None = None, mask_label: int | None = None,
           orientation: str | None = "LPS", tolerance_mm: float = 0.01,
           direction_tolerance: float = 1e-4) -> IngestResult:
    """Read, check and canonicalise one patient's CT and reader mask."""
    image_path, mask_path = str(image_path), str(mask_path)
    image = read_ct(image_path, "image", series_uid, patient_id)
    mask, labels = read_mask(mask_path, "mask", mask_label, patient_id)
    if orientation:
        image = reorient(image, orientation)
    mask, info = match_mask_to_image(mask, image, tolerance_mm, direction_tolerance,
                                     patient_id, mask_path, image_path)
    qc = {"patient_id": patient_id, "image_source": image_path, "mask_source": mask_path,
          "image_format": "dicom" if Path(image_path).is_dir() else Path(image_path).name.split(".", 1)[-1],
          "series_uid": series_uid, "mask_labels_found": labels,
          "mask_label_used": mask_label if mask_label is not None else labels[0], **info,
          "acquisition": acquisition_settings(image_path, series_uid, patient_id)}
    qc.update(qc_record(image, mask))
    from .scan_identity import pixel_digest

    qc["pixel_sha256"] = pixel_digest(sitk.GetArrayViewFromImage(image), image.GetSpacing())
    return IngestResult(image, mask, qc)


def write_result(result: IngestResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write image.nii.gz, mask.nii.gz, qc.json; each appears only when complete."""
    out_dir = Path(out_dir)
    paths = {"image": out_dir / "image.nii.gz", "mask": out_dir / "mask.nii.gz", "qc": out_dir / "qc.json"}
    with atomic_path(paths["image"]) as tmp:
        sitk.WriteImage(result.image, str(tmp), useCompression=True)
    with atomic_path(paths["mask"]) as tmp:
        sitk.WriteImage(result.mask, str(tmp), useCompression=True)
    write_json(result.qc, paths["qc"])
    return paths


QC_COLUMNS = {
    "size": lambda q: "x".join(map(str, q["size"])),
    "spacing_x": lambda q: q["spacing"][0], "spacing_y": lambda q: q["spacing"][1],
    "spacing_z": lambda q: q["spacing"][2],
    "hu_p1": lambda q: q["hu"]["p1"], "hu_p50": lambda q: q["hu"]["p50"], "hu_p99": lambda q: q["hu"]["p99"],
    "tumour_hu_mean": lambda q: round(q["tumour_hu"]["mean"], 3),
    "tumour_voxels": lambda q: q["tumour_voxels"], "tumour_volume_ml": lambda q: q["tumour_volume_ml"],
    "largest_slice": lambda q: q["largest_slice"]["index"],
    "largest_slice_area_mm2": lambda q: q["largest_slice"]["area_mm2"],
    "tumour_slices": lambda q: q["tumour_slices"]["count"],
    "components": lambda q: q["connected_components"]["count"],
    "mask_reoriented": lambda q: q["mask_reoriented"],
    "warnings": lambda q: "; ".join(q["warnings"]),
}


def qc_table(records: list[dict]) -> pd.DataFrame:
    """Cohort QC table: one row per patient from the per-patient qc.json records."""
    import pandas as pd

    rows = [{"patient_id": q["patient_id"], **{c: f(q) for c, f in QC_COLUMNS.items()}} for q in records]
    return pd.DataFrame(rows, columns=["patient_id", *QC_COLUMNS])
