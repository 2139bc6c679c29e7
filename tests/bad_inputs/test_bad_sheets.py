"""The bad-input corpus, sheets and config: a broken sheet or config stops the run before
any job, with one message per problem naming the patient, the column or the key; an odd
but readable sheet (Windows line ends, a byte-order mark, spaces around IDs) reads as the
clean one, and nothing reruns."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_run import dry_run_jobs, make_workdir, smk

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bad_sheets")]


def _snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ingested_work(tiny_cohort_dir, tmp_path_factory) -> Path:
    """The tiny cohort ingested once; each case breaks its own copy."""
    root = tmp_path_factory.mktemp("ingested")
    cohort = root / "c"
    shutil.copytree(tiny_cohort_dir, cohort)
    work = make_workdir(cohort, root)
    smk(work, "--cores", "2", "--until", "ingest")
    return work


def _sheets(work):
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    clinical = pd.read_csv(work / "cohort/clinical.tsv", sep="\t", dtype=str, keep_default_na=False)
    return samples, clinical


def _link(work, samples, target: str) -> None:
    """Patient A003's image as a symbolic link to ``target`` (relative to its folder)."""
    os.symlink(target, work / "cohort/A003/link.nii.gz")
    samples.loc[2, "image"] = "A003/link.nii.gz"


def _config(work, section, key, value):
    config = yaml.safe_load((work / "config.yaml").read_text())
    (config[section] if section else config)[key] = value
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _symlink_loop(work, samples, clinical):
    os.symlink("link.nii.gz", work / "cohort/A003/loop.nii.gz")
    _link(work, samples, "loop.nii.gz")


# (case, how it breaks (work, samples, clinical), the message; "config" cases say so in the heading)
SHEET_CASES = [
    ("duplicate ID", lambda w, s, c: s.loc.__setitem__((1, "patient_id"), s.loc[0, "patient_id"]),
     r"sample sheet '[^']*samples\.tsv': patient A001 appears more than once \(rows 2, 3\)"),
    ("ID with '..'", lambda w, s, c: s.loc.__setitem__((1, "patient_id"), "../x"),
     r"row 3: patient ID '\.\./x' is not a safe token"),
    ("ID with a space inside", lambda w, s, c: s.loc.__setitem__((1, "patient_id"), "A 1"),
     r"row 3: patient ID 'A 1' is not a safe token"),
    ("patient missing from the clinical table", lambda w, s, c: c.drop(index=0, inplace=True),
     r"patient A001: missing from clinical table '[^']*clinical\.tsv'"),
    ("image file missing", lambda w, s, c: s.loc.__setitem__((2, "image"), "A003/gone.nii.gz"),
     r"patient A003: image '[^']*A003/gone\.nii\.gz' \(sample sheet column 'image'\) does not exist"),
    ("image is a symbolic link loop", _symlink_loop,
     r"patient A003: image '[^']*A003/link\.nii\.gz' \(sample sheet column 'image'\) is a symbolic link loop"),
    ("image is a dangling symbolic link", lambda w, s, c: _link(w, s, "moved/venous.nii.gz"),
     r"patient A003: image '[^']*link\.nii\.gz' \(sample sheet column 'image'\) is a symbolic link to "
     r"'moved/venous\.nii\.gz', which does not exist"),
    ("time is text", lambda w, s, c: c.loc.__setitem__((2, "dm_time_months"), "n/a"),
     r"row 4 \(patient A003\): column 'dm_time_months': 'n/a' is not of type 'number'"),
    ("time is negative", lambda w, s, c: c.loc.__setitem__((2, "dm_time_months"), "-1"),
     r"row 4 \(patient A003\): column 'dm_time_months': -1\.0 is less than the minimum of 0"),
    ("event is not 0/1", lambda w, s, c: c.loc.__setitem__((2, "dm_event"), "3"),
     r"row 4 \(patient A003\): column 'dm_event': 3 is not one of \[0, 1\]"),
    ("outcome blank for a study patient", lambda w, s, c: c.loc.__setitem__((2, "dm_event"), ""),
     r"patient A003: 'dm_event' is blank in clinical table"),
    ("column an eligibility criterion needs is missing", lambda w, s, c: c.pop("histology"),
     r"clinical table '[^']*' has no column 'histology' \(config clinical_columns\.histology\), needed by "
     r"eligibility criteria 'Inclusion 1: [^']*', 'Inclusion 5 / Exclusion 1: [^']*'; the survival models' "
     r"clinical variables \(survival\.clinical\.variables; models clinical, clinical_ith, combined\)$"),
    ("sample sheet without its institution column", lambda w, s, c: s.pop("institution"),
     r"sample sheet '[^']*samples\.tsv' has no column 'institution'$"),
    ("training cohort without events", lambda w, s, c: c.__setitem__("dm_event", "0"),
     r"the training cohort's \d+ patients include no distant metastasis \(dm_event = 1\)"),
    ("unknown config key", lambda w, s, c: _config(w, "ith", "n_clusters", [2, 3]),
     r"config key 'ith\.n_clusters' is not a ctith setting; did you mean 'clusters'\?"),
    ("misspelt top-level config key", lambda w, s, c: _config(w, None, "sed", 3),
     r"config key 'sed' is not a ctith setting; did you mean 'seed'\?"),
    ("config value out of range", lambda w, s, c: _config(w, "crossfit", "folds", 1),
     r"config 'crossfit\.folds': 1 is less than the minimum of 2"),
]


@pytest.mark.parametrize("breaks, message", [c[1:] for c in SHEET_CASES], ids=[c[0] for c in SHEET_CASES])
def test_broken_sheet_stops_before_anything_runs(ingested_work, tmp_path, breaks, message):
    work = tmp_path / "work"
    shutil.copytree(ingested_work, work, symlinks=True)  # keeps mtimes: nothing is out of date
    before = _snapshot(work / "results")
    samples, clinical = _sheets(work)
    breaks(work, samples, clinical)
    samples.to_csv(work / "cohort/samples.tsv", sep="\t", index=False)
    clinical.to_csv(work / "cohort/clinical.tsv", sep="\t", index=False)
    proc = smk(work, "--cores", "2", "--keep-going", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    problems = re.search(r"(\d+) problem\(s\) in the (input sheets|config):\n((?:  - .*\n?)+)", out)
    assert problems, out[-3000:]
    assert problems.group(1) == "1", problems.group(0)  # one problem, one line
    assert re.search(message, problems.group(3).strip()), problems.group(3)
    assert "Traceback" not in out
    assert _snapshot(work / "results") == before  # nothing lost, nothing rewritten


def _crlf(work):
    for name in ("samples.tsv", "clinical.tsv"):
        path = work / "cohort" / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def _bom(work):
    for name in ("samples.tsv", "clinical.tsv"):
        path = work / "cohort" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


def _spaces(work):
    samples, clinical = _sheets(work)
    samples.loc[1, "patient_id"] += " "
    clinical.loc[2, "patient_id"] = " " + clinical.loc[2, "patient_id"] + "  "
    samples.to_csv(work / "cohort/samples.tsv", sep="\t", index=False)
    clinical.to_csv(work / "cohort/clinical.tsv", sep="\t", index=False)


@pytest.mark.parametrize("change", [_crlf, _bom, _spaces], ids=["Windows line ends", "UTF-8 byte-order mark",
                                                               "spaces around IDs"])
def test_readable_sheet_oddities_read_as_the_clean_sheet(ingested_work, tmp_path, change):
    clean = tmp_path / "clean"
    shutil.copytree(ingested_work, clean, symlinks=True)
    planned = dry_run_jobs(clean)
    work = tmp_path / "work"
    shutil.copytree(ingested_work, work, symlinks=True)
    change(work)
    assert sorted(dry_run_jobs(work)) == sorted(planned)  # the same jobs: none reingested, none lost
    targets = ["results/cohort/eligible.tsv", "results/cohort/split.tsv"]
    for w in (clean, work):
        smk(w, "--cores", "1", *targets)
    for target in targets:
        assert (work / target).read_bytes() == (clean / target).read_bytes(), target
    # The fits' view of the clinical table (written as the sheets are read) has every training patient.
    train = [pd.read_csv(w / "results/cohort/train/clinical.tsv", sep="\t", dtype=str) for w in (work, clean)]
    assert sorted(train[0]["patient_id"].str.strip()) == sorted(train[1]["patient_id"])
