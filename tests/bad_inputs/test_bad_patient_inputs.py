"""The bad-input corpus, per patient: every case of ``patient_cases.CASES`` breaks its own
patient of one cohort; one run of the per-patient rules with ``--keep-going`` then shows
each bad patient's one clear message, and every other patient complete."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ctith.demo.synthetic import write_cohort
from patient_cases import CASES, PatientCase
from workflow_run import make_workdir, smk

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bad_patient_inputs")]

# What the per-patient rules write for each patient (the cohort rules are not run).
PER_PATIENT = ["qc.json", "image.nii.gz", "mask.nii.gz", "ith/scores.json", "radiomics/features.tsv",
               "dl/input.npy", "semantic.json"]


@dataclass
class BrokenRun:
    work: Path
    patient: dict  # case name -> its patient
    eligible: list
    samples: pd.DataFrame
    output: str  # Snakemake's stdout and stderr


def _assign(samples: pd.DataFrame, eligible: list) -> dict:
    """One patient per case: an eligible patient with NIfTI files and the columns it needs,
    each patient used once. Cases needing the rarer columns choose first."""
    row = samples.set_index("patient_id")
    free = [p for p in eligible if row.at[p, "image"].endswith(".nii.gz")]
    chosen = {}
    for case in sorted(CASES, key=lambda c: -len(c.needs)):
        fits = [p for p in free if all(row.at[p, col].endswith(".nii.gz") for col in case.needs)]
        assert fits, f"the cohort has no free patient for case {case.name!r}"
        chosen[case.name] = fits[0]
        free.remove(fits[0])
    return chosen


def _targets(pid: str, row: pd.Series) -> list[str]:
    out = [f"results/patients/{pid}/{f}" for f in PER_PATIENT]
    if row["mask_reader2"]:
        out.append(f"results/patients/{pid}/radiomics/features_reader2.tsv")
    return out


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory) -> BrokenRun:
    root = tmp_path_factory.mktemp("bad_patients")
    # 36 patients: enough for every case on its own patient, and some left whole.
    write_cohort(root / "cohort", "tiny", seed=11, n_patients={"A": 30, "B": 6})
    work = make_workdir(root / "cohort", root)
    cohort = work / "cohort"
    samples = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    truth = pd.read_csv(cohort / "truth.tsv", sep="\t", keep_default_na=False)
    eligible = truth.loc[truth["ineligible_reason"] == "", "patient_id"].tolist()
    if "mask_label" not in samples:
        samples["mask_label"] = ""
    patient = _assign(samples, eligible)
    for case in CASES:
        case.breaks(cohort, samples, patient[case.name])
    samples.to_csv(cohort / "samples.tsv", sep="\t", index=False)
    row = samples.set_index("patient_id")
    targets = [t for pid in eligible for t in _targets(pid, row.loc[pid])]
    proc = smk(work, "--cores", "2", "--keep-going", *targets, check=False)
    return BrokenRun(work, patient, eligible, samples, proc.stdout + proc.stderr)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_patient_input(broken_run, case: PatientCase):
    pid = broken_run.patient[case.name]
    work = broken_run.work
    if case.outcome == "warning":  # usable: the patient is complete, its qc.json says what was odd
        qc = json.loads((work / f"results/patients/{pid}/qc.json").read_text())
        assert any(re.search(case.message, w) for w in qc["warnings"]), qc["warnings"]
        row = broken_run.samples.set_index("patient_id").loc[pid]
        for target in _targets(pid, row):
            assert (work / target).is_file(), target
        return
    log = work / f"results/logs/{case.rule}/{pid}.log"
    text = log.read_text().strip()
    first = text.splitlines()[0] if text else ""
    assert len(text.splitlines()) == 1, text  # one line: no traceback
    assert re.match(rf"\w+Error: patient {pid}: ", first), first
    assert re.search(case.message, first), first
    # The failed job's outputs are not left behind half-written.
    leftovers = [p for p in (work / "results/patients" / pid).rglob("*") if p.is_file() and ".tmp" in p.name]
    assert not leftovers


def test_every_other_patient_is_complete(broken_run):
    bad = {p for name, p in broken_run.patient.items()
           if next(c for c in CASES if c.name == name).outcome == "error"}
    good = [p for p in broken_run.eligible if p not in bad]
    assert len(good) >= 5
    rows = broken_run.samples.set_index("patient_id")
    for pid in good:
        for target in _targets(pid, rows.loc[pid]):
            assert (broken_run.work / target).is_file(), (target, broken_run.output[-3000:])
    # Snakemake lists every failed job and nothing else failed.
    blocks = broken_run.output.split("Error in rule ")[1:]
    failed = {re.search(r"log: results/logs/\w+/(\w+)\.log", b).group(1) for b in blocks}
    assert failed == bad
