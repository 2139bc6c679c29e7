"""One patient broken among many: every other patient's jobs finish (the default profile
keeps going), and the run ends with one summary naming the patient and its error."""

import pandas as pd

from ctith.report.run_summary import error_line, failed_jobs
from conftest import REPO
from workflow_run import make_workdir, smk


def test_one_broken_patient_among_many(tiny_cohort, tiny_cohort_dir, tmp_path):
    work = make_workdir(tiny_cohort, tmp_path)
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str)
    nifti = samples.loc[samples["image"].str.endswith(".nii.gz"), "image"]
    # The largest file: Snakemake starts the jobs with the largest inputs first, so its
    # failure comes while the others still wait (without keep-going they would not run).
    broken = max(nifti.index, key=lambda i: (work / "cohort" / nifti[i]).stat().st_size)
    pid = samples.at[broken, "patient_id"]
    image = work / "cohort" / samples.at[broken, "image"]
    image.write_bytes(image.read_bytes()[:-2000])  # truncated in transfer
    targets = [f"results/patients/{p}/qc.json" for p in samples["patient_id"]]
    # A user's --profile (keep-going is not in it): the workflow's default profile, loaded
    # beside, keeps the run going.
    run = smk(work, "--profile", str(REPO / "workflow/profiles/workstation"), *targets, check=False)
    assert run.returncode != 0
    finished = [p for p in samples["patient_id"] if (work / f"results/patients/{p}/qc.json").exists()]
    assert sorted(finished) == sorted(set(samples["patient_id"]) - {pid})
    assert (f"1 job(s) failed (1 patient(s)); the others finished:\n  - {pid} [ingest] IngestError: patient {pid}: "
            f"cannot read image") in run.stderr
    assert f"fix the files of {pid}, or take them out of the sheets" in run.stderr
    table = pd.read_csv(work / "results/logs/failed_jobs.tsv", sep="\t")
    assert table[["patient", "rule"]].values.tolist() == [[pid, "ingest"]]
    # Fixed: the rerun runs that patient alone and forgets the failure.
    image.write_bytes((tiny_cohort_dir / samples.at[broken, "image"]).read_bytes())
    run = smk(work, "--cores", "2", *targets)
    assert "1 of 1 steps (100%) done" in run.stderr
    assert not (work / "results/logs/failed_jobs.tsv").exists()


def test_a_cohort_job_is_listed_without_a_patient(tmp_path):
    (tmp_path / "split.log").write_text("Traceback ...\nCtithError: the split failed\n\n")
    log = f"""[Sun Dec  6 23:50:01 2026]
localrule split:
    jobid: 7
    reason: Missing output files
Error in rule split:
    message: None
    jobid: 7
    log: {tmp_path / 'split.log'} (check log file(s) for error details)
"""
    (job,) = failed_jobs(log)
    assert job == {"rule": "split", "jobid": "7", "patient": "", "log": str(tmp_path / "split.log")}
    assert error_line(job["log"]) == "CtithError: the split failed"
