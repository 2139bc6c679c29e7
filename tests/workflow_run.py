"""Running the Snakemake workflow on a test cohort, shared by the end-to-end tests."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
# As a user types it in the repository root: the top-level Snakefile, found by name.
SNAKEMAKE_FROM_ROOT = [sys.executable, "-m", "snakemake"]


# What a hospital's DICOM export carries and no output may: stamped into every DICOM file of
# the end-to-end cohort (the demo writes none of it).
IDENTIFIERS = {"PatientName": "Doe^Jane^Quincy", "PatientBirthDate": "19580412", "PatientID": "MRN40917733",
               "OtherPatientIDs": "HOSP-5521-0987", "AccessionNumber": "ACC7781234", "StudyDate": "20190723",
               "InstitutionName": "Saint Example Sarcoma Centre", "ReferringPhysicianName": "Roe^Richard"}


def stamp_identifiers(cohort: Path) -> int:
    """Write IDENTIFIERS into every DICOM file under ``cohort``; returns how many."""
    import pydicom

    files = sorted(cohort.rglob("*.dcm"))
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTIFIERS.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return len(files)


def copy_scans(work: Path, row: pd.Series, new_id: str) -> pd.Series:
    """A sample-sheet row for a new patient ``new_id`` with copies of ``row``'s files under
    cohort/<new_id>/: one file under two patients is an error of the sheet (a copy under
    another path is caught by its pixel digest, an error only across cohorts)."""
    row = row.copy()
    folder = work / "cohort" / new_id
    folder.mkdir(parents=True, exist_ok=True)
    for col in ("image", "mask", "plain_ct", "mask_reader2", "mask_reader1_repeat"):
        if col in row and row[col]:
            src = work / "cohort" / row[col]
            dst = folder / f"{col}_{src.name}"
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
            row[col] = str(dst.relative_to(work / "cohort"))
    row["patient_id"] = new_id
    return row


def fill_template(cohort: Path, template: Path) -> None:
    """Rewrite a cohort's two sheets as a user filling `ctith template`'s would: the
    template's columns, in its order, nothing else."""
    from ctith import cli

    assert cli.main(["template", str(template), "--defaults", str(REPO / "config.yaml")]) == 0
    for name in ("samples.tsv", "clinical.tsv"):
        columns = (template / name).read_text().rstrip("\n").split("\t")
        table = pd.read_csv(cohort / name, sep="\t", dtype=str, keep_default_na=False)
        table.reindex(columns=columns, fill_value="").to_csv(cohort / name, sep="\t", index=False)


def make_workdir(cohort: Path, root: Path) -> Path:
    work = root / "work"
    work.mkdir()
    shutil.move(str(cohort), work / "cohort")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(samples="cohort/samples.tsv", clinical="cohort/clinical.tsv")
    config["demo"]["generate"] = False
    # The test cohort has 11 training patients (5 with DM, 6 re-segmented): the ICC takes
    # 3 re-segmentations, cross-validation 2 folds; train small and briefly. ComBat in mode
    # train (a new external patient then refits nothing) by scanner (training holds three);
    # the external institution's own scanners pass unharmonised.
    config["reproducibility"].update(icc_cohorts=["train"], min_patients=3)
    config["harmonize"].update(mode="train", batch_column="scanner", unseen_batch="keep")
    config["crossfit"]["folds"] = 2
    # The tiny cohort's 9 patients at institution A: 7:3 keeps three for internal validation.
    config["split"]["train_fraction"] = 0.7
    config["dl"].update(epochs=3, base_width=16)  # the demo config trains 40 epochs of width 64
    config["ith_model"].update(n_trials=3)
    config["survival"]["n_bootstrap"] = 50
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work


def smk(work: Path, *args, check=True, from_root=False) -> subprocess.CompletedProcess:
    """Snakemake on ``work``: workflow/Snakefile given by path, or (``from_root``) started in
    the repository root, where Snakemake finds the top-level Snakefile and profile itself."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = SNAKEMAKE_FROM_ROOT if from_root else SNAKEMAKE
    proc = subprocess.run([*command, "--directory", str(work), "--configfile", str(work / "config.yaml"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO if from_root else work)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def outputs_digest(results: Path) -> dict:
    """relative path -> sha256 of the bytes of every output under ``results``. Logs and
    benchmarks are left out: they record the run (its times), not its results; every other
    file, figures and model files included, is the same bytes in any run with one seed."""
    digest = {}
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results)
        if path.is_file() and rel.parts[0] not in ("logs", "benchmarks"):
            digest[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def dry_run_jobs(work: Path, from_root=False) -> list[tuple[str, tuple]]:
    """(rule, wildcard values) of every job a dry run plans."""
    proc = smk(work, "-n", "--cores", "1", from_root=from_root)
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            w = re.search(r"wildcards: (.*)", block)
            values = tuple(kv.split("=", 1)[1] for kv in w.group(1).split(", ")) if w else ()
            jobs.append((m.group(1), values))
    return jobs


def local_rules() -> set:
    """Rules that never become cluster jobs: the workflow's `localrules` and the target
    rule `all`, which has no action."""
    names = {"all"}
    for smk_file in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\s*\n((?:[ \t]+\w+,?[ \t]*\n?)+)", smk_file.read_text(), re.M):
            names |= set(re.findall(r"\w+", block))
    return names


def rule_blocks():
    """(rule, its text) for every rule in workflow/rules."""
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", path.read_text()):
            m = re.match(r"rule (\w+):", block)
            if m:
                yield m.group(1), block


def declared_mem_mb() -> dict:
    """rule -> the ``mem_mb`` its ``resources:`` declare (a number in the rule)."""
    return {rule: int(m.group(1)) for rule, block in rule_blocks()
            if (m := re.search(r"\bmem_mb=(\d+)", block))}
