"""Bad inputs of one patient: each case breaks one patient's files (or sheet row) its own way.

A case is (name, what it needs, how it breaks, the rule whose log tells, the words the log
must hold). ``test_bad_inputs.py`` breaks every case on its own patient of one cohort, runs
the per-patient rules with ``--keep-going`` and checks each bad patient's one message and
every other patient's complete outputs. An ``outcome`` of "warning" is an input that is
odd but usable: the run goes on and the patient's qc.json says what was odd.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ctith.demo.synthetic import write_dicom_series


@dataclass(frozen=True)
class PatientCase:
    name: str
    needs: tuple  # sample-sheet columns the patient must have filled
    breaks: Callable[[Path, pd.DataFrame, str], None]  # (cohort folder, sample sheet, patient)
    rule: str  # whose log holds the message ("ingest", "ith", "semantic", ...)
    message: str  # regular expression the message must match (after "patient <ID>: ")
    outcome: str = "error"  # error | warning (then ``message`` is one of qc.json's warnings)


def _path(cohort: Path, samples: pd.DataFrame, pid: str, column: str) -> Path:
    return cohort / samples.set_index("patient_id").at[pid, column]


def _set(samples: pd.DataFrame, pid: str, column: str, value: str) -> None:
    samples.loc[samples["patient_id"] == pid, column] = value


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray], like: sitk.Image | None = None) -> None:
    """Apply ``change`` to the voxels of ``path`` and write it back with the same geometry."""
    image = sitk.ReadImage(str(path))
    out = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)))
    out.CopyInformation(like or image)
    sitk.WriteImage(out, str(path))


def _geometry(path: Path, **set_to) -> None:
    image = sitk.ReadImage(str(path))
    for what, value in set_to.items():
        getattr(image, f"Set{what}")(value(getattr(image, f"Get{what}")()))
    sitk.WriteImage(image, str(path))


def _tumour_voxels(cohort, samples, pid) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(_path(cohort, samples, pid, "mask")))) > 0


def _as_dicom(cohort: Path, samples: pd.DataFrame, pid: str, column: str, folder: str, study: str) -> Path:
    """Rewrite a patient's NIfTI volume as a DICOM series folder and point the sheet at it."""
    image = sitk.ReadImage(str(_path(cohort, samples, pid, column)))
    out = cohort / pid / folder
    series = "2.25." + str(int(hashlib.sha256(f"{pid}/{folder}".encode()).hexdigest()[:24], 16))
    write_dicom_series(image, out, series, study, pid, column)
    _set(samples, pid, column, f"{pid}/{folder}")
    _set(samples, pid, f"{'image' if column == 'image' else 'plain_ct'}_series_uid", "")
    return out


def not_a_ct(cohort, samples, pid):
    _path(cohort, samples, pid, "image").write_bytes(b"not a CT at all")


def truncated(cohort, samples, pid):
    path = _path(cohort, samples, pid, "image")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def nan_voxels(cohort, samples, pid):
    inside = _tumour_voxels(cohort, samples, pid)
    _rewrite(_path(cohort, samples, pid, "image"),
             lambda a: np.where(inside & (np.arange(a.size).reshape(a.shape) % 97 == 0), np.nan, a).astype(np.float32))


def infinite_voxels(cohort, samples, pid):
    def change(a):
        a = a.astype(np.float32)
        a[0, 0, :3] = np.inf
        return a
    _rewrite(_path(cohort, samples, pid, "image"), change)


def two_d_image(cohort, samples, pid):
    path = _path(cohort, samples, pid, "image")
    image = sitk.ReadImage(str(path))
    sitk.WriteImage(image[:, :, image.GetSize()[2] // 2], str(path))


def mask_cropped(cohort, samples, pid):
    path = _path(cohort, samples, pid, "mask")
    sitk.WriteImage(sitk.ReadImage(str(path))[:-2, :, :], str(path))


def mask_empty(cohort, samples, pid):
    _rewrite(_path(cohort, samples, pid, "mask"), lambda a: a * 0)


def mask_two_labels(cohort, samples, pid):
    def change(a):
        a = a.copy()
        k = int(np.argmax(a.reshape(a.shape[0], -1).sum(axis=1)))
        a[k][a[k] > 0] = 2
        return a
    _rewrite(_path(cohort, samples, pid, "mask"), change)


def mask_fractional(cohort, samples, pid):
    _rewrite(_path(cohort, samples, pid, "mask"), lambda a: a.astype(np.float32) * 0.5)


def wrong_label(cohort, samples, pid):
    _set(samples, pid, "mask_label", "3")


def mask_spacing(cohort, samples, pid):
    _geometry(_path(cohort, samples, pid, "mask"), Spacing=lambda s: (1.0, 1.0, 5.0))


def mask_origin(cohort, samples, pid):
    _geometry(_path(cohort, samples, pid, "mask"), Origin=lambda o: tuple(np.add(o, (0.0, 0.0, 5.0))))


def mask_direction(cohort, samples, pid):
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    _geometry(_path(cohort, samples, pid, "mask"), Direction=lambda d: (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))


def two_series_no_uid(cohort, samples, pid):
    """The patient's venous and plain CT as two series of one DICOM folder, no UID named."""
    folder = _as_dicom(cohort, samples, pid, "image", "dicom", "2.25.71")
    plain = sitk.ReadImage(str(_path(cohort, samples, pid, "plain_ct")))
    write_dicom_series(plain, folder, "2.25.72", "2.25.71", pid, "plain", series_number=2)


def uneven_spacing(cohort, samples, pid):
    """One gap between slices 7.5 mm where the others are 5 mm."""
    import pydicom

    folder = _as_dicom(cohort, samples, pid, "image", "dicom", "2.25.73")
    files = sorted(folder.glob("*.dcm"))
    for f in files[len(files) // 2:]:
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], f"{float(ds.ImagePositionPatient[2]) + 2.5:.6f}"]
        ds.save_as(f, enforce_file_format=True)


def missing_slice(cohort, samples, pid):
    folder = _as_dicom(cohort, samples, pid, "image", "dicom", "2.25.74")
    sorted(folder.glob("*.dcm"))[len(list(folder.glob("*.dcm"))) // 2].unlink()


def no_dicom_in_folder(cohort, samples, pid):
    folder = cohort / pid / "export"
    folder.mkdir()
    (folder / "README.txt").write_text("the PACS export went elsewhere\n")
    _set(samples, pid, "image", f"{pid}/export")


def mask_at_border(cohort, samples, pid):
    """The tumour shifted to the image's left edge (a cropped field of view)."""
    def change(a):
        cols = np.flatnonzero(a.any(axis=(0, 1)))
        return np.roll(a, -int(cols[0]), axis=2)
    _rewrite(_path(cohort, samples, pid, "mask"), change)


def tiny_tumour(cohort, samples, pid):
    """A 3 x 3 x 3 voxel tumour: smaller than the ITH feature window (5 x 5)."""
    def change(a):
        z, y, x = (int(np.median(i)) for i in np.nonzero(a))
        out = np.zeros_like(a)
        out[z - 1:z + 2, y - 1:y + 2, x - 1:x + 2] = 1
        return out
    _rewrite(_path(cohort, samples, pid, "mask"), change)


def one_slice_mask(cohort, samples, pid):
    """Only the largest slice delineated: the 2.5D input takes its CT neighbours n +- 2."""
    def change(a):
        k = int(np.argmax(a.reshape(a.shape[0], -1).sum(axis=1)))
        out = np.zeros_like(a)
        out[k] = a[k]
        return out
    _rewrite(_path(cohort, samples, pid, "mask"), change)


def plain_other_frame(cohort, samples, pid):
    """Venous and plain CT as DICOM from two exams: two frames of reference, same grid."""
    _as_dicom(cohort, samples, pid, "image", "dicom_venous", "2.25.75")
    _as_dicom(cohort, samples, pid, "plain_ct", "dicom_plain", "2.25.76")


def plain_elsewhere(cohort, samples, pid):
    _geometry(_path(cohort, samples, pid, "plain_ct"), Origin=lambda o: tuple(np.add(o, (400.0, 0.0, 0.0))))


def plain_unreadable(cohort, samples, pid):
    _path(cohort, samples, pid, "plain_ct").write_bytes(b"\x00" * 64)


def reader2_empty(cohort, samples, pid):
    _rewrite(_path(cohort, samples, pid, "mask_reader2"), lambda a: a * 0)


def dangling_slice_link(cohort, samples, pid):
    """A DICOM folder of links (a PACS cache) with one link broken: GDCM would then list
    2 of the series' 19 slices."""
    folder = _as_dicom(cohort, samples, pid, "image", "dicom", "2.25.77")
    os.symlink(folder / "gone.dcm", folder / "image_9999.dcm")


MASK = r"mask '[^']*seg_reader1\.nii\.gz'"
CASES = [
    PatientCase("image is not a CT", (), not_a_ct, "ingest",
                r"cannot read image '[^']*venous\.nii\.gz': compressed stream is damaged \(Not a gzipped file"),
    PatientCase("image gzip truncated", (), truncated, "ingest",
                r"cannot read image '[^']*venous\.nii\.gz': (compressed stream is damaged|file is truncated)"),
    PatientCase("image has NaN voxels", (), nan_voxels, "ingest",
                r"image '[^']*venous\.nii\.gz' holds \d+ NaN voxels; expected finite values"),
    PatientCase("image has infinite voxels", (), infinite_voxels, "ingest",
                r"image '[^']*venous\.nii\.gz' holds 3 infinite voxels; expected finite values"),
    PatientCase("image is 2-D", (), two_d_image, "ingest", r"image '[^']*venous\.nii\.gz' is 2-D; expected a 3-D CT"),
    PatientCase("mask smaller than image", (), mask_cropped, "ingest", MASK + r" has size \(126, 128, \d+\)"),
    PatientCase("mask empty", (), mask_empty, "ingest", MASK + r" is empty"),
    PatientCase("mask holds two labels", (), mask_two_labels, "ingest", MASK + r" holds 2 labels \[1, 2\]"),
    PatientCase("mask holds fractions", (), mask_fractional, "ingest", MASK + r" holds non-integer values"),
    PatientCase("mask_label not in mask", (), wrong_label, "ingest", MASK + r" has no voxel with label 3"),
    PatientCase("mask spacing differs", (), mask_spacing, "ingest",
                MASK + r" has spacing \(1, 1, 5\) but image '[^']*' has \(0\.\d+, 0\.\d+, 5\)"),
    PatientCase("mask origin differs", (), mask_origin, "ingest", MASK + r" has origin .* but image '[^']*' has"),
    PatientCase("mask direction differs", (), mask_direction, "ingest", MASK + r" has direction .* but image"),
    PatientCase("DICOM folder with two series, no UID", ("plain_ct",), two_series_no_uid, "ingest",
                r"image folder '[^']*dicom' holds 2 DICOM series \(.*\); name one"),
    PatientCase("DICOM slices unevenly spaced", (), uneven_spacing, "ingest",
                r"image folder '[^']*dicom': slices are not evenly spaced: .*7\.5 mm"),
    PatientCase("DICOM slice missing", (), missing_slice, "ingest",
                r"image folder '[^']*dicom': slices are not evenly spaced: .*10 mm .*missing"),
    PatientCase("DICOM folder holds no DICOM", (), no_dicom_in_folder, "ingest",
                r"image folder '[^']*export' holds no DICOM series"),
    PatientCase("DICOM slice is a dangling link", (), dangling_slice_link, "ingest",
                r"image folder '[^']*dicom' holds a broken link 'image_9999\.dcm'"),
    PatientCase("tumour slice smaller than ITH window", (), tiny_tumour, "ith",
                r"the largest tumour slice \(\d+\) spans 3 x 3 pixels, smaller than the 5 x 5 feature window"),
    PatientCase("plain CT on another frame of reference", ("plain_ct",), plain_other_frame, "semantic",
                r"plain CT '[^']*dicom_plain' is on frame of reference 2\.25\.76\.1 but the venous CT on "
                r"2\.25\.75\.1"),
    PatientCase("plain CT does not cover the tumour", ("plain_ct",), plain_elsewhere, "semantic",
                r"plain CT '[^']*plain\.nii\.gz' covers 0% of the tumour"),
    PatientCase("plain CT unreadable", ("plain_ct",), plain_unreadable, "semantic",
                r"cannot read plain CT '[^']*plain\.nii\.gz'"),
    PatientCase("reader-2 mask empty", ("mask_reader2",), reader2_empty, "radiomics_reader2",
                r"mask '[^']*seg_reader2\.nii\.gz' is empty"),
    PatientCase("mask touches the image border", (), mask_at_border, "ingest",
                r"tumour touches the in-plane image border", outcome="warning"),
    PatientCase("mask covers one slice", (), one_slice_mask, "ingest",
                r"mask covers 1 slice", outcome="warning"),
]
