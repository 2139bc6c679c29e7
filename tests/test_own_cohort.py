"""The own-cohort trial of issue 30, as a test: a cohort made from the real CT as a user
brings one (NIfTI, NRRD, MHA and DICOM series; a multi-label mask; a second reader's mask
labelled otherwise; the user's own clinical column names; a third institution; a survival
variable left out; too few patients for ten folds). Every problem is one line of `ctith
validate` and of the workflow's parse, before any job; fixed as the lines say, the cohort
validates, plans and its scans of every format ingest."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from ctith import cli
from ctith.demo.synthetic import _uid, write_dicom_series
from conftest import REPO
from workflow_run import SNAKEMAKE

# The user's names for the canonical clinical columns (config clinical_columns).
USER_COLUMNS = {"patient_id": "PatientID", "dm_event": "DM", "dm_time_months": "DM_months", "age": "Age",
                "sex": "Sex", "histology": "Histology", "t_stage": "T_stage", "n_stage": "N_stage"}
INSTITUTIONS = ["Hospital North"] * 16 + ["Hospital South"] * 6 + ["Hospital East"] * 2
ORGANS = ["kidney_left", "kidney_right", "spleen", "iliopsoas_left"]
# Patient index -> how its files are stored (the rest: NIfTI).
IMAGE_FORMAT = {1: "nrrd", 2: "mha", 7: "nrrd", 8: "mha", 3: "dicom", 9: "dicom"}
MULTI_LABEL = 4     # reader 1: tumour 2 beside the liver 1; reader 2 delineated the tumour alone, as 1
SECOND_READER = (0, 4, 5, 6, 10)


def _mask(real_ct, i: int) -> sitk.Image:
    mask = sitk.ReadImage(str(real_ct.masks[ORGANS[i % len(ORGANS)]]), sitk.sitkUInt8)
    variant = (i // len(ORGANS)) % 3  # as delineated, eroded, dilated
    if variant == 1:
        return sitk.BinaryErode(mask, [1, 1, 1])
    return sitk.BinaryDilate(mask, [1, 1, 1]) if variant == 2 else mask


def build_trial_cohort(real_ct, clinical_source, out):
    """Sheets and scans of 24 patients made from the real CT, each scan its own (a little
    patient-specific noise, else ingest's pixel digest calls them one scan); returns the
    sample sheet and the clinical table as written."""
    ct = sitk.ReadImage(str(real_ct.image), sitk.sitkInt16)
    hu = sitk.GetArrayFromImage(ct)
    clinical = pd.read_csv(clinical_source, sep="\t", dtype=str, keep_default_na=False)
    ids = [f"RPS{i + 1:03d}" for i in range(len(INSTITUTIONS))]
    rows = []
    for i, pid in enumerate(ids):
        folder = out / pid
        folder.mkdir(parents=True)
        noisy = hu + np.random.default_rng(i).integers(-2, 3, hu.shape).astype(np.int16)
        image = sitk.GetImageFromArray(noisy)
        image.CopyInformation(ct)
        fmt = IMAGE_FORMAT.get(i, "nifti")
        ext = {"nifti": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha", "dicom": ".nii.gz"}[fmt]
        row = {"patient_id": pid, "institution": INSTITUTIONS[i], "scanner": "", "cohort": "", "mask_label": "",
               "mask_reader2": ""}
        if fmt == "dicom":
            write_dicom_series(image, folder / "dicom", _uid(pid, "series"),
                                    _uid(pid, "study"), pid, "venous")
            row["image"] = f"{pid}/dicom"
        else:
            sitk.WriteImage(image, str(folder / f"ct{ext}"), useCompression=True)
            row["image"] = f"{pid}/ct{ext}"
        mask = _mask(real_ct, i)
        if i == MULTI_LABEL:
            liver = sitk.ReadImage(str(real_ct.masks["liver"]), sitk.sitkUInt8)
            mask = sitk.Mask(liver, sitk.Not(mask) > 0) + mask * 2  # ITK-SNAP: one label image
            row["mask_label"] = "2"
        sitk.WriteImage(mask, str(folder / f"seg{ext}"), useCompression=True)
        row["mask"] = f"{pid}/seg{ext}"
        if i in SECOND_READER:
            sitk.WriteImage(sitk.BinaryDilate(_mask(real_ct, i), [1, 1, 0]), str(folder / "seg_reader2.nii.gz"))
            row["mask_reader2"] = f"{pid}/seg_reader2.nii.gz"
        rows.append(row)
    samples = pd.DataFrame(rows)
    clinical = clinical.iloc[:len(ids)].assign(patient_id=ids).rename(columns=USER_COLUMNS)
    samples.to_csv(out / "samples.tsv", sep="\t", index=False)
    clinical.to_csv(out / "clinical.tsv", sep="\t", index=False)
    return samples, clinical


def _problem_lines(text: str) -> list[str]:
    return [line[4:] for line in text.splitlines() if line.startswith("  - ")]


@pytest.fixture
def trial(real_ct, workflow_cohort_dir, tmp_path):
    cohort = tmp_path / "data"
    samples, clinical = build_trial_cohort(real_ct, workflow_cohort_dir / "clinical.tsv", cohort)
    clinical.drop(columns="necrosis").to_csv(cohort / "clinical.tsv", sep="\t", index=False)
    overlay = {"samples": str(cohort / "samples.tsv"), "clinical": str(cohort / "clinical.tsv"),
               "demo": {"generate": False}, "clinical_columns": USER_COLUMNS,
               "split": {"internal_institutions": ["Hospital North"], "external_institutions": ["Hospital South"]}}
    return cohort, samples, clinical, overlay


def _validate(tmp_path, overlay, capsys) -> tuple[int, str]:
    path = tmp_path / "my_cohort.yaml"
    path.write_text(yaml.safe_dump(overlay))
    code = cli.main(["validate", "--config", str(path), "--defaults", str(REPO / "config.yaml")])
    out = capsys.readouterr()
    return code, out.out + out.err


def _snakemake(tmp_path, *args) -> subprocess.CompletedProcess:
    work = tmp_path / "my_run"
    work.mkdir(exist_ok=True)
    return subprocess.run([*SNAKEMAKE, "--directory", str(work), "--configfile", str(tmp_path / "my_cohort.yaml"),
                           "--cores", "1", *args], capture_output=True, text=True, cwd=tmp_path)


def test_the_trials_problems_one_line_each_before_any_job(trial, tmp_path, capsys):
    cohort, samples, clinical, overlay = trial
    code, said = _validate(tmp_path, overlay, capsys)
    assert code == 1
    lines = _problem_lines(said)
    assert said.startswith(f"SheetError: {len(lines)} problem(s)") and len(lines) == 4, said
    necrosis, east, folds, reader2 = lines
    assert necrosis.startswith(f"clinical table '{cohort / 'clinical.tsv'}' has no column 'necrosis', needed by the "
                               "survival models' clinical variables")
    assert east == ("institution 'Hospital East' (2 eligible patients without a cohort in the sample sheet, e.g. "
                    "RPS023) is in neither split.internal_institutions nor split.external_institutions (internal: "
                    "['Hospital North'], external: ['Hospital South'])")
    assert re.fullmatch(r"the training cohort has \d+ patients with DM and \d+ without; stratified 10-fold "
                        r"cross-fitting \(crossfit\.folds\) needs at least 10 of each: set crossfit\.folds to \d+ or "
                        r"fewer", folds), folds
    largest = int(re.search(r"set crossfit\.folds to (\d+) or fewer", folds).group(1))
    pid = samples.at[MULTI_LABEL, "patient_id"]
    assert reader2.startswith(f"patient {pid}: mask '") and "has no voxel with label 2; it holds [1]" in reader2
    assert reader2.endswith("[sample sheet column 'mask_reader2'] (label 2: column mask_reader2_label, else mask_label)")

    # The parse says the same lines (the masks' labels are ingest's: every cluster job parses).
    run = _snakemake(tmp_path, "-n")
    assert run.returncode != 0 and "Job stats" not in run.stdout + run.stderr
    assert _problem_lines(run.stdout + run.stderr) == [necrosis, east, folds]
    assert not (tmp_path / "my_run" / "results").exists()

    # Fixed as the lines say: the column back, the institution placed, the folds the line
    # names, reader 2's own label.
    clinical.to_csv(cohort / "clinical.tsv", sep="\t", index=False)
    overlay["split"]["external_institutions"].append("Hospital East")
    overlay["crossfit"] = {"folds": largest}
    samples["mask_reader2_label"] = ["1" if i == MULTI_LABEL else "" for i in range(len(samples))]
    samples.to_csv(cohort / "samples.tsv", sep="\t", index=False)
    code, said = _validate(tmp_path, overlay, capsys)
    assert code == 0 and said.startswith(f"OK: {len(samples)} patients in"), said

    # Every storage ingests: NRRD, MHA, a DICOM series, the multi-label mask; the split
    # rule takes the institutions' names, spaces and all.
    pids = [samples.at[i, "patient_id"] for i in (1, 2, 3, MULTI_LABEL)]
    run = _snakemake(tmp_path, *[f"results/patients/{p}/qc.json" for p in pids], "results/cohort/split.tsv")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    for p in pids:
        qc = yaml.safe_load((tmp_path / "my_run/results/patients" / p / "qc.json").read_text())
        assert qc["tumour_voxels"] > 1000, (p, qc)
    split = pd.read_csv(tmp_path / "my_run/results/cohort/split.tsv", sep="\t")
    assert set(split["institution"]) == set(INSTITUTIONS)
    assert not (tmp_path / "my_run/results/demo").exists()
