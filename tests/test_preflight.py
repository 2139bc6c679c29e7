"""What `ctith validate` and the workflow's parse say before any job runs: columns every
configured stage needs, institutions the split must place, cross-fitting folds the
training cohort can fill, validation cohorts too small to speak; config overlays merged as
Snakemake merges --configfile."""

import pandas as pd
import pytest
import yaml

from ctith import cli
from ctith.cohort import sheets
from ctith.cohort.preflight import check_study, cohort_size_warnings, fold_problems
from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def _write(tmp_path, overlay: dict):
    path = tmp_path / "my_cohort.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def _overlay(cohort, **extra):
    return {"samples": str(cohort / "samples.tsv"), "clinical": str(cohort / "clinical.tsv"),
            "demo": {"generate": False}, **extra}


def test_merge_is_snakemakes():
    from snakemake.utils import update_config

    base = {"a": 1, "s": {"x": [1, 2], "y": {"p": 1, "q": 2}}, "l": [1]}
    overlay = {"s": {"x": [3], "y": {"q": 5}}, "l": [2, 3], "n": {"k": 1}}
    expected = yaml.safe_load(yaml.safe_dump(base))
    update_config(expected, overlay)
    assert sheets.merge_config(base, overlay) == expected
    assert base["s"]["y"] == {"p": 1, "q": 2}  # the defaults are not changed in place


def test_an_overlay_of_overrides_validates(tiny_cohort_dir, tmp_path, capsys, monkeypatch):
    """Only the user's keys in the file: merged over the repository's config.yaml (the
    default of --defaults, as `snakemake --configfile` merges over the workflow's own),
    from any working directory; with other defaults that lack a setting, it is named."""
    overlay = _write(tmp_path, _overlay(tiny_cohort_dir, crossfit={"folds": 2}))
    monkeypatch.chdir(tmp_path)  # a user's own folder, no config.yaml in it
    assert cli.main(["validate", "--config", str(overlay)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("OK: ") and "train " in out.out
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump({k: v for k, v in CONFIG.items() if k != "seed"}))
    assert cli.main(["validate", "--config", str(overlay), "--defaults", str(tmp_path / "partial.yaml")]) == 1
    assert "'seed' is a required property" in capsys.readouterr().err


def test_every_problem_the_trial_hit_is_one_line_before_any_job(tiny_cohort, tmp_path, capsys):
    """The own-cohort trial's three late failures, said at once: a survival variable
    removed, an institution the split does not name, ten folds on a small training cohort
    (counted without the unplaced patients)."""
    clinical = pd.read_csv(tiny_cohort / "clinical.tsv", sep="\t", dtype=str)
    clinical.drop(columns="necrosis").to_csv(tiny_cohort / "clinical.tsv", sep="\t", index=False)
    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str)
    samples.loc[samples["institution"] == "B", "institution"] = "C"
    samples.to_csv(tiny_cohort / "samples.tsv", sep="\t", index=False)
    overlay = _write(tmp_path, _overlay(tiny_cohort))
    assert cli.main(["validate", "--config", str(overlay), "--defaults", str(REPO / "config.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("SheetError: 3 problem(s)") and err.count("\n  - ") == 3
    assert ("has no column 'necrosis', needed by the survival models' clinical variables "
            "(survival.clinical.variables; models clinical, clinical_ith, combined); Table S3 row "
            "'Cystic spaces or necrosis' (reader1)") in err
    assert "institution 'C' (" in err and "is in neither split.internal_institutions" in err
    assert "stratified 10-fold cross-fitting (crossfit.folds) needs at least 10 of each: set crossfit.folds to" in err


def test_fold_feasibility_names_the_largest_feasible_number():
    split = pd.DataFrame({"patient_id": [f"P{i}" for i in range(12)], "cohort": ["train"] * 10 + ["external_validation"] * 2})
    events = pd.Series([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1], index=split["patient_id"])
    assert fold_problems(split, events, 3) == []
    (line,) = fold_problems(split, events, 10)
    assert "3 patients with DM and 7 without" in line and "set crossfit.folds to 3 or fewer" in line
    (line,) = fold_problems(split, events.where(events.index != "P1", 0).where(events.index != "P2", 0), 2)
    assert "the cohort is too small to cross-fit" in line


def test_small_validation_cohorts_warn_with_their_figures():
    ids = [f"P{i:02d}" for i in range(40)]
    split = pd.DataFrame({"patient_id": ids, "cohort": ["internal_validation"] * 8 + ["external_validation"] * 32})
    events = pd.Series([1] * 3 + [0] * 5 + [1] * 12 + [0] * 20, index=ids)
    (line,) = cohort_size_warnings(split, events)
    assert line.startswith("internal validation: 8 patients, 3 with DM")


def test_check_study_on_the_demo_config_passes(tiny_cohort_dir):
    config = {**CONFIG, **_overlay(tiny_cohort_dir), "crossfit": {"folds": 2}}
    inputs = sheets.load_inputs(config)
    from ctith.cohort.eligibility import eligible_ids

    eligible = eligible_ids(inputs.clinical, inputs.samples["institution"], config["eligibility"]["criteria"])
    check = check_study(config, inputs.samples, inputs.clinical, eligible)
    assert check.problems == [] and set(check.split["patient_id"]) == set(eligible)
    assert check.warnings and all("with DM (below 15 patients or 6 DM" in w for w in check.warnings)


def test_parse_says_the_same_before_any_job(tiny_cohort, tmp_path):
    """The workflow's parse runs the same check: a dry run with ten folds on the tiny
    cohort stops with the fold line, having planned nothing."""
    from workflow_run import make_workdir, smk

    work = make_workdir(tiny_cohort, tmp_path)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["crossfit"]["folds"] = 10
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    run = smk(work, "-n", "--cores", "1", check=False)
    assert run.returncode != 0 and "Job stats" not in run.stdout
    assert "stratified 10-fold cross-fitting (crossfit.folds) needs at least 10 of each" in run.stdout


def test_a_results_folder_keeps_its_cohort(tiny_cohort, tmp_path):
    """A run on the user's cohort, then `snakemake --report` as a user would first type it,
    without --configfile, in a folder whose config.yaml is the demo's: the parse stops,
    naming the run's sheets, before building the demo; with the override it plans."""
    import shutil
    import subprocess

    from workflow_run import SNAKEMAKE, make_workdir, smk

    work = make_workdir(tiny_cohort, tmp_path)
    record = work / "results/cohort/sheets.json"
    smk(work, "-n", "--cores", "1")
    assert not record.exists()  # a dry run, repeated while fixing the sheets, ties nothing
    smk(work, "--cores", "1", "results/patients/A001/qc.json")
    assert yaml.safe_load(record.read_text()) == {"samples": "cohort/samples.tsv", "clinical": "cohort/clinical.tsv"}
    (work / "config.yaml").rename(work / "my_cohort.yaml")
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    run = subprocess.run([*SNAKEMAKE, "--directory", str(work), "--report", str(tmp_path / "report.html")],
                         capture_output=True, text=True, cwd=work)
    assert run.returncode != 0 and not (work / "results/demo").exists()
    assert ("the results here are the run of samples 'cohort/samples.tsv' and clinical table "
            "'cohort/clinical.tsv'") in run.stdout + run.stderr
    assert "Pass that run's --configfile (for --report too)" in run.stdout + run.stderr
    run = subprocess.run([*SNAKEMAKE, "--directory", str(work), "--configfile", "my_cohort.yaml", "-n", "--cores", "1"],
                         capture_output=True, text=True, cwd=work)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert not (work / "results/demo").exists()


def test_validate_reads_each_masks_label(tiny_cohort, tmp_path, capsys):
    """A multi-label reader-1 mask (tumour 2, an organ 1) labelled by mask_label, and a
    reader-2 file that holds only label 1: validate names the reader-2 file and its label
    column, before any job; the reader-2 label column fixes it."""
    import numpy as np
    import SimpleITK as sitk

    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str).fillna("")
    row = samples.index[samples["mask_reader2"] != ""][0]
    pid = samples.at[row, "patient_id"]
    mask_path = tiny_cohort / samples.at[row, "mask"]
    mask = sitk.ReadImage(str(mask_path))
    arr = sitk.GetArrayFromImage(mask).astype(np.uint8) * 2
    arr[0, 0, :4] = 1  # a second structure
    relabelled = sitk.GetImageFromArray(arr)
    relabelled.CopyInformation(mask)
    sitk.WriteImage(relabelled, str(mask_path))
    samples["mask_label"] = ""
    samples.at[row, "mask_label"] = "2"
    samples.to_csv(tiny_cohort / "samples.tsv", sep="\t", index=False)
    overlay = _write(tmp_path, _overlay(tiny_cohort, crossfit={"folds": 2}))
    args = ["validate", "--config", str(overlay), "--defaults", str(REPO / "config.yaml")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n  - ") == 2  # reader 2's file and reader 1's repeat
    assert (f"patient {pid}: mask '" in err and "has no voxel with label 2; it holds [1] [sample sheet column "
            "'mask_reader2'] (label 2: column mask_reader2_label, else mask_label)" in err)
    assert cli.main([*args, "--no-images"]) == 0
    for column in ("mask_reader2_label", "mask_reader1_repeat_label"):
        samples[column] = ""
        samples.at[row, column] = "1"
    samples.to_csv(tiny_cohort / "samples.tsv", sep="\t", index=False)
    assert cli.main(args) == 0


def test_a_folder_of_ones_own_with_only_overrides(tiny_cohort, tmp_path):
    """`snakemake --directory my_run --configfile my_cohort.yaml`, the overlay holding only
    the user's keys and no config.yaml in the folder: the repository's config.yaml is the
    base wherever the run is, as `ctith validate` takes it."""
    import subprocess

    from workflow_run import SNAKEMAKE

    overlay = _write(tmp_path, _overlay(tiny_cohort, crossfit={"folds": 2}))
    work = tmp_path / "my_run"
    work.mkdir()
    run = subprocess.run([*SNAKEMAKE, "--directory", str(work), "--configfile", str(overlay), "-n", "--cores", "1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "ingest" in run.stdout and not (work / "results/demo").exists()


def test_relative_paths_read_from_the_runs_folder(tiny_cohort, tmp_path, capsys, monkeypatch):
    """An overlay with relative sheet paths, for `snakemake --directory my_run`: validate
    reads them from the same folder with --directory (from where it was started without)."""
    import shutil

    work = tmp_path / "my_run"
    work.mkdir()
    shutil.move(str(tiny_cohort), work / "data")
    overlay = _write(tmp_path, _overlay(work / "data", crossfit={"folds": 2}))
    overlay.write_text(overlay.read_text().replace(str(work) + "/", ""))
    monkeypatch.chdir(tmp_path)
    args = ["validate", "--config", overlay.name, "--no-images"]
    assert cli.main(args) == 1
    assert "data/samples.tsv" in capsys.readouterr().err
    assert cli.main([*args, "--directory", "my_run"]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


def test_a_clinical_row_without_a_sample_row_is_said_and_left_out(tiny_cohort, tmp_path, capsys):
    """A clinical export holding one more patient than the sample sheet: a warning naming it,
    and the study's clinical sheet without it, so giving that patient a sample row later
    (to predict) changes no study sheet."""
    from workflow_run import make_workdir, smk

    clinical = pd.read_csv(tiny_cohort / "clinical.tsv", sep="\t", dtype=str)
    extra = clinical.iloc[[0]].assign(patient_id="Z999")
    pd.concat([clinical, extra]).to_csv(tiny_cohort / "clinical.tsv", sep="\t", index=False)
    overlay = _write(tmp_path, _overlay(tiny_cohort, crossfit={"folds": 2}))
    line = "1 clinical table row(s) have no sample-sheet row and are not in the study: Z999"
    assert cli.main(["validate", "--config", str(overlay), "--no-images"]) == 0
    assert f"warning: {line}" in capsys.readouterr().err
    work = make_workdir(tiny_cohort, tmp_path)
    run = smk(work, "-n", "--cores", "1")
    assert line in run.stderr
    study = pd.read_csv(work / "results/cohort/study/clinical.tsv", sep="\t", dtype=str)
    assert "Z999" not in set(study["patient_id"]) and len(study) == len(clinical)
