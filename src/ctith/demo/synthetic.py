"""Synthetic demo cohort: CT phantoms of retroperitoneal sarcoma with habitats, written.

The cohort is built in two seeded steps so that tests can check the clinical side
without rendering images:

1. ``simulate_cohort(preset, seed)`` (``demo.patients``) draws one ``PatientSpec`` per
   patient and the clinical table;
2. ``render_patient(spec)`` (``demo.render``) draws the venous-phase CT in HU, the
   optional plain CT and the reader-1 / reader-2 masks.

``write_cohort`` (here) writes everything, in the formats a real cohort comes in (NIfTI,
NRRD, MHA, DICOM series; masks stored as other tools store them), with a sample sheet and
a clinical table. Same seed, byte-identical files.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..io import write_tsv
from .patients import PatientSpec, simulate_cohort
from .presets import PROTOCOLS, SCANNER_HEADERS
from .render import PatientImages, render_patient


def _uid(*parts) -> str:
    """A deterministic DICOM UID under the 2.25 (UUID-derived) root."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def acquisition_header(spec: PatientSpec, contrast: bool = True) -> dict:
    """The Table S1 fields of the patient's series (DICOM keywords); ``contrast=False``
    for the plain phase. Pitch is drawn from the patient's own seed, so no other draw of
    the cohort moves."""
    protocol = PROTOCOLS[spec.institution]
    maker, model, single, total, kernel = SCANNER_HEADERS[spec.scanner]
    pitch = protocol["pitches"][int(np.random.default_rng(spec.seed ^ 0xAC0).integers(len(protocol["pitches"])))]
    header = {"Manufacturer": maker, "ManufacturerModelName": model, "KVP": protocol["KVP"],
              "ExposureModulationType": "XYZ_EC", "SingleCollimationWidth": single, "TotalCollimationWidth": total,
              "SpiralPitchFactor": pitch, "ConvolutionKernel": kernel}
    if contrast:
        header["ContrastBolusAgent"] = protocol["ContrastBolusAgent"]
    return header


def write_dicom_series(image: sitk.Image, folder: str | Path, series_uid: str, study_uid: str,
                       patient_id: str, description: str, series_number: int = 1,
                       header: dict | None = None) -> None:
    """Write an int16 HU volume as a CT DICOM series, one file per slice; ``header``: more
    elements by keyword (the acquisition settings).

    Stored as unsigned values with RescaleIntercept -1024, as many scanners do. pydicom
    rather than GDCM writes it, since GDCM stamps the current time into every file.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayFromImage(image)
    sx, sy, sz = image.GetSpacing()
    d = image.GetDirection()  # row-major; column j is index axis j in patient space
    orientation = [f"{v:g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])]
    for k in range(arr.shape[0]):
        sop_uid = f"{series_uid}.{k + 1}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = "2.25.1"
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = study_uid + ".1"
        ds.PatientID = patient_id
        ds.PatientName = patient_id
        ds.Modality = "CT"
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]
        ds.SliceThickness = f"{sz:.3f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.PixelData = (arr[k].astype(np.int32) + 1024).clip(0, 65535).astype("<u2").tobytes()
        for keyword, value in (header or {}).items():
            setattr(ds, keyword, value)
        ds.save_as(folder / f"{description}_{k + 1:04d}.dcm", enforce_file_format=True)


_EXT = {"nifti": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha"}


def _write_volume(image: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _stored_mask(mask: sitk.Image, storage: str) -> sitk.Image:
    """The same physical grid stored another way, as other tools write masks."""
    if storage == "flipped":
        return sitk.Flip(mask, [True, False, False])
    if storage == "permuted":
        return sitk.PermuteAxes(mask, [1, 0, 2])
    return mask


def write_patient(spec: PatientSpec, images: PatientImages, root: str | Path,
                  image_format: str | None = None) -> dict:
    """Write one patient's files under root/<patient_id>/; return its sample-sheet row."""
    root = Path(root)
    fmt = image_format or spec.image_format
    pdir = root / spec.patient_id
    row = {"patient_id": spec.patient_id, "institution": spec.institution, "scanner": spec.scanner,
           "cohort": "", "image": "", "image_series_uid": "", "mask": "", "mask_reader2": "",
           "mask_reader1_repeat": "",
           "plain_ct": "", "plain_ct_series_uid": ""}
    if fmt == "dicom":
        study = _uid("study", spec.seed)
        venous_uid = _uid("venous", spec.seed)
        folder = pdir / "dicom"
        write_dicom_series(images.venous, folder, venous_uid, study, spec.patient_id, "venous", 3,
                           acquisition_header(spec))
        row["image"] = str(folder.relative_to(root))
        row["image_series_uid"] = venous_uid
        if images.plain is not None:  # both phases in one folder, as exported from PACS
            plain_uid = _uid("plain", spec.seed)
            write_dicom_series(images.plain, folder, plain_uid, study, spec.patient_id, "plain", 2,
                               acquisition_header(spec, contrast=False))
            row["plain_ct"] = row["image"]
            row["plain_ct_series_uid"] = plain_uid
    else:
        ext = _EXT[fmt]
        _write_volume(images.venous, pdir / f"venous{ext}")
        row["image"] = f"{spec.patient_id}/venous{ext}"
        if images.plain is not None:
            _write_volume(images.plain, pdir / f"plain{ext}")
            row["plain_ct"] = f"{spec.patient_id}/plain{ext}"
    _write_volume(_stored_mask(images.mask, spec.mask_storage), pdir / "seg_reader1.nii.gz")
    row["mask"] = f"{spec.patient_id}/seg_reader1.nii.gz"
    if images.mask_reader2 is not None:
        _write_volume(images.mask_reader2, pdir / "seg_reader2.nii.gz")
        row["mask_reader2"] = f"{spec.patient_id}/seg_reader2.nii.gz"
    if images.mask_reader1_repeat is not None:
        _write_volume(images.mask_reader1_repeat, pdir / "seg_reader1_repeat.nii.gz")
        row["mask_reader1_repeat"] = f"{spec.patient_id}/seg_reader1_repeat.nii.gz"
    return row


def truth_table(specs: list[PatientSpec]) -> pd.DataFrame:
    """Ground truth for tests and sanity checks; no pipeline stage reads it."""
    rows = []
    for s in specs:
        rows.append({
            "patient_id": s.patient_id, "true_heterogeneity": round(s.true_heterogeneity, 6),
            "n_habitats": len(s.habitats), "habitats": ",".join(s.habitats),
            "fragment_scale_mm": round(s.fragment_scale_mm, 4),
            "tumour_diameter_mm": round(s.tumour_diameter_mm, 3),
            "enhancement_hu": round(s.enhancement_hu, 3), "spacing_xy": s.spacing_xy,
            "image_format": s.image_format, "mask_storage": s.mask_storage,
            "ineligible_reason": s.ineligible_reason,
            "linear_predictor": round(s.extra["linear_predictor"], 6),
        })
    return pd.DataFrame(rows)


def _render_and_write(spec: PatientSpec, root: Path) -> dict:
    return write_patient(spec, render_patient(spec), root)


def write_cohort(out_dir: str | Path, preset: str = "demo", seed: int = 20240601,
                 n_patients: dict | None = None, progress=None, n_jobs: int = 1) -> Path:
    """Generate the cohort into out_dir; return the sample sheet path.

    Written into a temporary sibling folder and renamed at the end, so an interrupted
    run never leaves a half-written cohort that looks complete. Each patient is drawn
    from its own seed, so ``n_jobs`` worker processes write the same bytes as one.
    """
    out_dir = Path(out_dir)
    specs, clinical = simulate_cohort(preset, seed, n_patients)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if n_jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the caller may be a threaded process (Snakemake parses the workflow in one).
        with ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_render_and_write, spec, tmp) for spec in specs]
            rows = []
            for i, (spec, fut) in enumerate(zip(specs, futures)):
                rows.append(fut.result())
                if progress:
                    progress(i + 1, len(specs), spec.patient_id)
    else:
        rows = []
        for i, spec in enumerate(specs):
            rows.append(_render_and_write(spec, tmp))
            if progress:
                progress(i + 1, len(specs), spec.patient_id)
    write_tsv(pd.DataFrame(rows), tmp / "samples.tsv")
    write_tsv(clinical, tmp / "clinical.tsv")
    write_tsv(truth_table(specs), tmp / "truth.tsv")
    (tmp / "README.md").write_text(
        f"# Synthetic ctith demo cohort\n\nPreset `{preset}`, seed {seed}; made by `ctith demo`.\n"
        "Synthetic phantoms, not patient data. `truth.tsv` holds the generator's ground truth\n"
        "(true heterogeneity, habitats); no pipeline stage reads it.\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir / "samples.tsv"
