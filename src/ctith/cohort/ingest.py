"""Ingestion: read a CT and its tumour mask, check them, write canonical NIfTI + QC.

Reads DICOM series (a folder; the series picked by UID when it holds several), NIfTI,
NRRD and MHA through SimpleITK. Both volumes are brought to one canonical orientation
(LPS by default) by axis permutations and flips only, so a mask stored with another
axis order or flipped axes lands on the image grid losslessly; a mask on a genuinely
different grid is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from ..errors import IngestError
from ..io import atomic_path, write_json

if TYPE_CHECKING:  # the per-patient ingest does not need pandas (0.6 s to import)
    import pandas as pd

HU_PERCENTILES = (0.5, 1, 5, 25, 50, 75, 95, 99, 99.5)
# Table S1's acquisition settings: the only DICOM header fields read into any output. An
# allow-list, so no name, date or identifier can reach qc.json, a table or a log.
ACQUISITION_TAGS = ("Manufacturer", "ManufacturerModelName", "KVP", "ExposureModulationType",
                    "SingleCollimationWidth", "TotalCollimationWidth", "SliceThickness", "SpiralPitchFactor",
                    "Rows", "Columns", "ContrastBolusAgent", "ConvolutionKernel")
LARGEST_SLICE_RULE = "axial slice with the most tumour voxels; ties go to the lowest index"


@dataclass
class IngestResult:
    image: sitk.Image  # HU, canonical orientation
    mask: sitk.Image  # uint8 0/1 on the image grid
    qc: dict


def _short(exc: Exception) -> str:
    """The useful line of a SimpleITK/ITK exception, not its C++ stack."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Description:"):
            return ln.split(":", 1)[1].strip()
    for ln in reversed(lines):
        if "ERROR" in ln or "Exception" in ln or "Unable" in ln or "Could not" in ln:
            return ln
    return lines[-1] if lines else type(exc).__name__


def _nifti_header(head: bytes) -> tuple[list, int, int, int, str] | None:
    """(dims, bitpix, datatype, data offset, byte order) of a NIfTI-1 or -2 header, or None."""
    import struct

    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size == 348:  # NIfTI-1
            dims = struct.unpack(endian + "8h", head[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            return list(dims), bitpix, datatype, max(offset, size), endian
        if size == 540:  # NIfTI-2
            datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
            dims = struct.unpack(endian + "8q", head[16:80])
            offset = int(struct.unpack(endian + "q", head[168:176])[0])
            return list(dims), bitpix, datatype, max(offset, size), endian
    return None


# NIfTI datatype codes of real floating-point voxels (float32, float64).
_NIFTI_FLOATS = {16: "f4", 64: "f8"}


def _nifti_problem(path: Path) -> str | None:
    """Why a NIfTI file cannot be trusted as read, or None.

    ITK reads a truncated NIfTI (plain or gzipped) without complaint and fills the missing
    voxels, and it reads NaN and infinite voxels as 0: the header's promised size is
    checked against the data, and floating-point voxels are counted as they stream by.
    """
    import gzip
    import zlib

    opener = gzip.open if path.name.endswith(".gz") else open
    nan = inf = 0
    try:
        with opener(path, "rb") as f:
            head = f.read(540)
            header = _nifti_header(head) if len(head) >= 348 else None
            if header is None:
                return "file is shorter than a NIfTI header" if len(head) < 348 else None  # not NIfTI: the reader decides
            dims, bitpix, datatype, offset, endian = header
            dtype = np.dtype(endian + _NIFTI_FLOATS[datatype]) if datatype in _NIFTI_FLOATS else None
            total, pending = len(head), head[offset:] if len(head) > offset else b""
            skip = max(0, offset - len(head))
            while chunk := f.read(1 << 22):
                total += len(chunk)
                if skip:
                    chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                if dtype is not None:
                    pending += chunk
                    whole = len(pending) - len(pending) % dtype.itemsize
                    values = np.frombuffer(pending[:whole], dtype)
                    nan += int(np.isnan(values).sum())
                    inf += int(np.isinf(values).sum())
                    pending = pending[whole:]
            if dtype is not None and pending:
                whole = len(pending) - len(pending) % dtype.itemsize
                values = np.frombuffer(pending[:whole], dtype)
                nan += int(np.isnan(values).sum())
                inf += int(np.isinf(values).sum())
    except (OSError, EOFError, zlib.error) as exc:
        return f"compressed stream is damaged ({exc})"
    n = int(np.prod([max(int(d), 1) for d in dims[1:1 + max(min(int(dims[0]), 7), 0)]], dtype=np.int64))
    expected = offset + n * bitpix // 8
    if total < expected:
        return f"file is truncated: {total} of {expected} bytes"
    if nan or inf:
        found = " and ".join(f"{k} {kind} voxel{'s' * (k != 1)}" for k, kind in ((nan, "NaN"), (inf, "infinite")) if k)
        return f"holds {found}"
    return None


def list_dicom_series(folder: str | os.PathLike) -> list[str]:
    # ITK would print a multi-line warning for a folder without DICOM: the caller says it once.
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _series_uid(path: Path, what: str, series_uid: str | None, patient: str | None) -> str:
    """The series to read from a DICOM folder: the one named, or the only one."""
    uids = list_dicom_series(path)
    if not uids:
        raise IngestError(f"{what} folder '{path}' holds no DICOM series", patient, str(path))
    if series_uid:
        if series_uid not in uids:
            raise IngestError(f"{what} folder '{path}' has no series {series_uid}; it holds {', '.join(uids)}",
                              patient, str(path))
        return series_uid
    if len(uids) > 1:
        raise IngestError(f"{what} folder '{path}' holds {len(uids)} DICOM series ({', '.join(uids)}); "
                          "name one in the sample sheet's series UID column", patient, str(path))
    return uids[0]


def _uneven_slices(files) -> str | None:
    """Why a DICOM series' slices are not a regular stack, or None.

    ITK stacks the files it is given and takes the slice spacing from the first two: a
    missing or shifted slice would give a volume whose distances are wrong, with only a
    warning on the console. The positions along the slice normal are checked here.
    """
    import pydicom

    if len(files) < 3:
        return None
    positions = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True,
                                 specific_tags=["ImagePositionPatient", "ImageOrientationPatient"])
            ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
            iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        except Exception as exc:  # a damaged header, or no position: pydicom raises several kinds
            return f"cannot read the slice position of '{f}': {_short(exc)}"
        positions.append(float(np.dot(ipp, np.cross(iop[:3], iop[3:]))))
    z = np.sort(np.asarray(positions))
    gaps = np.diff(z)
    step = float(np.median(gaps))
    if step <= 0:
        return f"{len(files)} files share one slice position: is it one series?"
    off = np.flatnonzero(np.abs(gaps - step) > max(0.05, 0.01 * step))
    if off.size == 0:
        return None
    k = int(off[0])
    gap = float(gaps[k])
    where = f"a gap of {gap:g} mm between the slices at {z[k]:g} and {z[k + 1]:g} mm, against {step:g} mm elsewhere"
    ratio = gap / step
    if round(ratio) >= 2 and abs(ratio - round(ratio)) < 0.01:
        where += f": {round(ratio) - 1} slice(s) missing"
    extra = f" ({off.size} such gaps)" if off.size > 1 else ""
    return f"slices are not evenly spaced: {where}{extra}"


def read_volume(path: str | os.PathLike, what: str = "image", series_uid: str | None = None,
                patient: str | None = None) -> sitk.Image:
    """Read a DICOM series folder or a NIfTI/NRRD/MHA file; errors name patient and file."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{what} '{path}' does not exist", patient, str(path))
    try:
        if path.is_dir():
            broken = sorted(e.name for e in os.scandir(path) if e.is_symlink() and not os.path.exists(e.path))
            if broken:  # GDCM then lists a fraction of the series without a word
                raise IngestError(f"{what} folder '{path}' holds a broken link '{broken[0]}'"
                                  + (f" and {len(broken) - 1} more" if len(broken) > 1 else ""), patient, str(path))
            uid = _series_uid(path, what, series_uid, patient)
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), uid)
            problem = _uneven_slices(files)
            if problem:
                raise IngestError(f"{what} folder '{path}': {problem}", patient, str(path))
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            return reader.Execute()
        if path.name.endswith((".nii", ".nii.gz")):
            problem = _nifti_problem(path)
            if problem and problem.startswith("holds "):
                raise IngestError(f"{what} '{path}' {problem}; expected finite values", patient, str(path))
            if problem:
                raise IngestError(f"cannot read {what} '{path}': {problem}", patient, str(path))
        return sitk.ReadImage(str(path))
    except IngestError:
        raise
    except RuntimeError as exc:
        raise IngestError(f"cannot read {what} '{path}': {_short(exc)}", patient, str(path)) from None


def _header_value(value):
    """A DICOM element's value as JSON: numbers as numbers, text stripped, several values
    as a list, empty as None."""
    from pydicom.multival import MultiValue

    if isinstance(value, (list, tuple, MultiValue)):
        values = [_header_value(v) for v in value]
        values = [v for v in values if v is not None]
        return values[0] if len(values) == 1 else (values or None)
    if isinstance(value, bytes):
        return None  # no binary field is on the allow-list
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    text = str(value).strip()
    return text or None


def acquisition_settings(path: str | os.PathLike, series_uid: str | None = None,
                         patient: str | None = None) -> dict:
    """The allow-listed acquisition fields (``ACQUISITION_TAGS``) of a DICOM series, from
    its first file; None for each where the image is not DICOM (NIfTI, NRRD, MHA carry no
    such header) or the field is absent. Nothing else in the header is read."""
    out = dict.fromkeys(ACQUISITION_TAGS)
    path = Path(path)
    if not path.is_dir():
        return out
    import pydicom

    uid = _series_uid(path, "image", series_uid, patient)
    first = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), uid)[0]
    try:
        ds = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=list(ACQUISITION_TAGS))
    except Exception as exc:  # pydicom raises several kinds on a damaged header
        raise IngestError(f"cannot read the DICOM header of image '{first}': {_short(exc)}", patient,
                          str(path)) from None
    for tag in ACQUISITION_TAGS:
        element = ds.get(tag)
        out[tag] = None if element is None else _header_value(element)
    return out


def frame_of_reference(path: str | os.PathLike, what: str = "image", series_uid: str | None = None,
                       patient: str | None = None) -> str | None:
    """The FrameOfReferenceUID of a DICOM series (None for NIfTI, NRRD, MHA, or none given).
    Read to compare two series and never written out: a UID may carry an exam's date."""
    path = Path(path)
    if not path.is_dir():
        return None
    import pydicom

    first = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), _series_uid(path, what, series_uid, patient))[0]
    try:
        ds = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["FrameOfReferenceUID"])
    except Exception as exc:  # pydicom raises several kinds on a damaged header
        raise IngestError(f"cannot read the DICOM header of {what} '{first}': {_short(exc)}", patient,
                          str(path)) from None
    return str(ds.get("FrameOfReferenceUID", "")).strip() or None


def orientation_code(image: sitk.Image) -> str:
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def reorient(image: sitk.Image, code: str) -> sitk.Image:
    """Permute/flip axes to the orientation code (lossless: no resampling)."""
    if orientation_code(image) == code:
        return image
    return sitk.DICOMOrient(image, code)


def to_hu(image: sitk.Image) -> sitk.Image:
    """Keep HU as int16 when the values are integers in range, else float32."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("a CT must have one component per voxel")
    arr = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(arr.dtype, np.integer):
        ok = arr.min() >= -32768 and arr.max() <= 32767
    else:
        ok = bool(np.all(np.isfinite(arr))) and np.array_equal(arr, np.round(arr)) and \
            arr.min() >= -32768 and arr.max() <= 32767
    return sitk.Cast(image, sitk.sitkInt16 if ok else sitk.sitkFloat32)


def binarize_mask(mask: sitk.Image, label: int | None = None, patient: str | None = None,
                  path: str | None = None, label_column: str = "mask_label") -> tuple[sitk.Image, list[int]]:
    """ITK-SNAP label image -> uint8 0/1. Several labels need ``label`` chosen (in the
    sample sheet's ``label_column``)."""
    arr = sitk.GetArrayFromImage(mask)
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise IngestError(f"mask '{path}' has {mask.GetNumberOfComponentsPerPixel()} components per voxel; "
                          "expected a label image", patient, path)
    if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
        raise IngestError(f"mask '{path}' holds non-integer values; expected a label image",
                          patient, path)
    labels = sorted(int(v) for v in np.unique(arr) if v != 0)
    if not labels:
        raise IngestError(f"mask '{path}' is empty (no non-zero voxel)", patient, path)
    if label is None:
        if len(labels) > 1:
            raise IngestError(f"mask '{path}' holds {len(labels)} labels {labels}; "
                              f"choose one with the sample sheet column {label_column}",
                              patient, path)
        label = labels[0]
    elif label not in labels:
        raise IngestError(f"mask '{path}' has no voxel with label {label}; it holds {labels}",
                          patient, path)
    out = sitk.GetImageFromArray((arr == label).astype(np.uint8))
    out.CopyInformation(mask)
    return out, labels


def match_mask_to_image(mask: sitk.Image, image: sitk.Image, tolerance_mm: float = 0.01,
                        direction_tolerance: float = 1e-4, patient: str | None = None,
                        mask_path: str | None = None, image_path: str | None = None) -> tuple[sitk.Image, dict]:
    """Bring a mask onto the image grid by axis permutations/flips, or fail naming what differs."""
    info = {"mask_reoriented": False, "mask_geometry_snapped": False}
    code = orientation_code(image)
    if orientation_code(mask) != code:
        mask = reorient(mask, code)
        info["mask_reoriented"] = True

    def fmt(v):
        return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"

    def differs(what, m, i, tol):
        return (f"mask '{mask_path}' has {what} {fmt(m)} but image '{image_path}' has {fmt(i)}"
                if np.max(np.abs(np.subtract(m, i))) > tol else None)

    if mask.GetSize() != image.GetSize():
        raise IngestError(f"mask '{mask_path}' has size {mask.GetSize()} but image '{image_path}' "
                          f"has {image.GetSize()}", patient, mask_path)
    spacing_tol = max(1e-6, min(tolerance_mm, 1e-3 * min(image.GetSpacing())))
    for problem in (differs("spacing", mask.GetSpacing(), image.GetSpacing(), spacing_tol),
                    differs("origin", mask.GetOrigin(), image.GetOrigin(), tolerance_mm),
                    differs("direction", mask.GetDirection(), image.GetDirection(), direction_tolerance)):
        if problem:
            raise IngestError(problem, patient, mask_path)
    exact = (mask.GetSpacing() == image.GetSpacing() and mask.GetOrigin() == image.GetOrigin()
             and mask.GetDirection() == image.GetDirection())
    if not exact:  # within tolerance (e.g. float32 rounding in a NIfTI header)
        mask = sitk.Image(mask)
        mask.CopyInformation(image)
        info["mask_geometry_snapped"] = True
    return mask, info


def axial_axis(image: sitk.Image) -> int:
    """The numpy axis (of the (z, y, x) array) that runs head-to-foot."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    itk_axis = int(np.argmax(np.abs(d[2, :])))  # image axis most aligned with patient S-I
    return 2 - itk_axis


def largest_slice(mask_arr: np.ndarray, axis: int = 0) -> tuple[int, int]:
    """(index, area in voxels) of the slice with the most tumour voxels; ties -> lowest index."""
    other = tuple(a for a in range(mask_arr.ndim) if a != axis)
    areas = mask_arr.astype(bool).sum(axis=other)
    k = int(np.argmax(areas))  # argmax returns the first maximum
    return k, int(areas[k])


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


def read_ct(path: str | os.PathLike, what: str = "image", series_uid: str | None = None,
            patient: str | None = None) -> sitk.Image:
    """A 3-D CT in HU (int16 or float32); errors name the patient and the file."""
    path = str(path)
    image = read_volume(path, what, series_uid, patient)
    if image.GetDimension() != 3:
        raise IngestError(f"{what} '{path}' is {image.GetDimension()}-D; expected a 3-D CT", patient, path)
    arr = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        # NaN would pass through every filter and surface as NaN features far downstream.
        nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        found = " and ".join(f"{n} {kind} voxel{'s' * (n != 1)}" for n, kind in ((nan, "NaN"), (inf, "infinite")) if n)
        raise IngestError(f"{what} '{path}' holds {found}; expected finite values", patient, path)
    try:
        return to_hu(image)
    except ValueError as exc:
        raise IngestError(f"{what} '{path}': {exc}", patient, path) from None


def read_mask(path: str | os.PathLike, what: str = "mask", label: int | None = None,
              patient: str | None = None, label_column: str = "mask_label") -> tuple[sitk.Image, list[int]]:
    """A 3-D label image as a 0/1 mask, and the labels it held (``label_column``: the sample
    sheet column that chooses among several)."""
    path = str(path)
    mask = read_volume(path, what, None, patient)
    if mask.GetDimension() != 3:
        raise IngestError(f"{what} '{path}' is {mask.GetDimension()}-D; expected a 3-D label image", patient, path)
    return binarize_mask(mask, label, patient, path, label_column)


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


# Table S1's rows, in the paper's order: (row, header field(s), unit). Two fields beside the
# paper's (total collimation, reconstruction kernel) are read as well and shown after them.
TABLE_S1_ROWS = (
    ("CT version", ("Manufacturer", "ManufacturerModelName"), None),
    ("Tube current", ("ExposureModulationType",), None),
    ("Tube voltage", ("KVP",), "kV"),
    ("Detector collimation", ("SingleCollimationWidth",), "mm"),
    ("Slice thickness", ("SliceThickness",), "mm"),
    ("Pitch", ("SpiralPitchFactor",), ""),
    ("Image matrix", ("Rows", "Columns"), None),
    ("Contrast material", ("ContrastBolusAgent",), None),
    ("Total collimation", ("TotalCollimationWidth",), "mm"),
    ("Reconstruction kernel", ("ConvolutionKernel",), None),
)
MAX_LISTED = 3  # more distinct numbers than this are shown as a range


def _number(v: float, unit: str) -> str:
    # The paper writes a pitch of one as "1.0", a voltage as "120kV": keep that.
    return f"{v:.1f}" if (unit == "" and float(v).is_integer()) else f"{v:g}"


def _summarise(values: list, unit: str | None) -> str:
    """Distinct values, "a or b" as the paper lists them; numbers past MAX_LISTED as a range."""
    flat = []
    for v in values:
        flat.extend(v if isinstance(v, list) else [v])
    flat = [v for v in flat if v is not None]
    if not flat:
        return "-"
    if unit is not None and all(isinstance(v, (int, float)) for v in flat):
        distinct = sorted(set(map(float, flat)))
        if len(distinct) > MAX_LISTED:
            span = f"{_number(distinct[0], unit)}-{_number(distinct[-1], unit)} {unit}".strip()
            return f"{span} ({len(distinct)} values)"
        return " or ".join(f"{_number(v, unit)} {unit}".strip() for v in distinct)
    return " or ".join(sorted({str(v) for v in flat}))


def _ct_versions(acq: list[dict]) -> str:
    """Scanner models grouped by manufacturer: "Revolution CT or LightSpeed CT750 HD (GE); ..."."""
    by_maker: dict[str, set] = {}
    for a in acq:
        if a.get("Manufacturer") or a.get("ManufacturerModelName"):
            by_maker.setdefault(a.get("Manufacturer") or "unknown manufacturer", set()).add(
                a.get("ManufacturerModelName") or "model not recorded")
    if not by_maker:
        return "-"
    return "; ".join(f"{' or '.join(sorted(models))} ({maker})" for maker, models in sorted(by_maker.items()))


def _tube_current(acq: list[dict]) -> str:
    kinds = sorted({str(a["ExposureModulationType"]) for a in acq if a.get("ExposureModulationType")})
    if not kinds:
        return "-"
    return " or ".join("Fixed tube current" if k.upper() == "NONE" else f"Automatic tube current modulation ({k})"
                       for k in kinds)


def table_s1(records: list[dict], institution: dict) -> pd.DataFrame:
    """Table S1: each institution's acquisition settings from the DICOM headers in the
    patients' qc.json (``acquisition``), in the paper's rows; a column per institution
    (``institution``: patient ID -> institution). Patients read from NIfTI, NRRD or MHA
    have no header: the last row says how many patients each column rests on."""
    import pandas as pd

    by_inst: dict[str, list[dict]] = {}
    for q in records:
        acq = q.get("acquisition") or {}
        if any(v is not None for v in acq.values()):
            by_inst.setdefault(institution[q["patient_id"]], []).append(acq)
    n_patients = pd.Series([institution[q["patient_id"]] for q in records]).value_counts()
    institutions = sorted(set(institution[q["patient_id"]] for q in records))
    rows = []
    for name, fields, unit in TABLE_S1_ROWS:
        row = {"Parameters": name}
        for inst in institutions:
            acq = by_inst.get(inst, [])
            if name == "CT version":
                row[inst] = _ct_versions(acq)
            elif name == "Tube current":
                row[inst] = _tube_current(acq)
            elif name == "Image matrix":
                row[inst] = _summarise([f"{a['Rows']}×{a['Columns']}" for a in acq
                                        if a.get("Rows") and a.get("Columns")], None)
            else:
                row[inst] = _summarise([a.get(fields[0]) for a in acq], unit)
        rows.append(row)
    rows.append({"Parameters": "Patients with a DICOM header",
                 **{inst: f"{len(by_inst.get(inst, []))} of {int(n_patients[inst])}" for inst in institutions}})
    table = pd.DataFrame(rows, columns=["Parameters", *institutions])
    return table.rename(columns={inst: f"Institution {inst}" for inst in institutions})
