"""Reading a CT and its masks: DICOM series (a folder; the series picked by UID when it
holds several), NIfTI, NRRD and MHA through SimpleITK, with every check that a file can be
trusted as read (NIfTI headers against their data, DICOM slices evenly stacked), the
allow-listed acquisition fields of Table S1, and ITK-SNAP label images as 0/1 masks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import IngestError


# Table S1's acquisition settings: the only DICOM header fields read into any output. An
# allow-list, so no name, date or identifier can reach qc.json, a table or a log.
ACQUISITION_TAGS = ("Manufacturer", "ManufacturerModelName", "KVP", "ExposureModulationType",
                    "SingleCollimationWidth", "TotalCollimationWidth", "SliceThickness", "SpiralPitchFactor",
                    "Rows", "Columns", "ContrastBolusAgent", "ConvolutionKernel")


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
