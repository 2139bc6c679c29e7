"""The workflow on a real single-node SLURM cluster, through workflow/profiles/slurm.

``.ci/run`` installs Debian's SLURM and munge and sets CTITH_REQUIRE_SLURM, so there this
test cannot skip. Elsewhere it runs where the packages are installed and we are root.
"""

import os
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

import slurm_cluster
from conftest import CI_REPORT, REPO
from workflow_run import declared_mem_mb, dry_run_jobs, local_rules, outputs_digest, smk

pytestmark = pytest.mark.slow
SQUEUE_FIELDS = ["JobID", "Partition", "State", "tres-per-job", "NumCPUs", "MinMemory", "Comment"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = slurm_cluster.missing()
    if why:
        if os.environ.get("CTITH_REQUIRE_SLURM"):
            pytest.fail(f"CTITH_REQUIRE_SLURM is set, but no SLURM test cluster can start: {why}")
        pytest.skip(f"no SLURM test cluster: {why} (.ci/run installs one)")
    with slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm")) as c:
        yield c


def squeue_jobs() -> list[dict]:
    """Every job the controller knows, finished ones included (the test cluster keeps
    them for an hour)."""
    fmt = ",".join(f"{f}:|" for f in SQUEUE_FIELDS)  # '|' as the field separator
    out = subprocess.run(["squeue", "--states=all", "--noheader", "-O", fmt],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(SQUEUE_FIELDS, (v.strip() for v in line.split("|")))) for line in out.splitlines()]


def _megabytes(value: str) -> int:
    """squeue's MinMemory (e.g. '2000M', '4G') in MB."""
    number, unit = float(value[:-1]), value[-1].upper()
    return int(number * {"M": 1, "G": 1024, "T": 1024 ** 2}[unit])


def comment(rule: str, wildcards: tuple) -> str:
    """The plugin's --comment for a job: how its squeue line names rule and wildcards."""
    return f"rule_{rule}" + (f"_wildcards_{'_'.join(wildcards)}" if wildcards else "")


def test_workflow_on_slurm_matches_local_run(cluster, local_run, tmp_path, record_property):
    """The local run's workdir loses two patients' outputs, one with a reader-2 mask, and
    every cohort-level output; SLURM redoes them: each rule of the workflow runs as a
    SLURM job, and the results equal the local run's, byte for byte (sha256 of every output
    but logs and benchmarks: the two-runs determinism check on the tiny cohort). (Redoing the other 20
    patients' copies of the same per-patient rules would add 15 minutes to CI and nothing
    to what this proves.)"""
    work = tmp_path / "work"
    shutil.copytree(local_run.work, work, symlinks=True)  # keeps mtimes
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    done = sorted(p.name for p in (work / "results/patients").iterdir())
    with_r2 = [p for p in samples.loc[samples["mask_reader2"] != "", "patient_id"] if p in done]
    redo = [with_r2[0], next(p for p in reversed(done) if p != with_r2[0])]
    # Snakemake does not remake a missing intermediate file while the final outputs stand,
    # so every cohort-level output goes too.
    for path in [*(p for p in (work / "results").iterdir() if p.name != "patients"),
                 *(work / "results/patients" / pid for pid in redo)]:
        shutil.rmtree(path)
    planned = dry_run_jobs(work)
    per_patient = {rule for rule, wc in local_run.planned if wc and wc[0] in redo}
    assert {"ingest", "ith", "radiomics", "radiomics_resegmented", "semantic", "dl_input"} <= per_patient
    per_model = ("ith_model", "ith_model_predict", "survival_model", "survival_predict", "dl_train")
    cohort_jobs = [(rule, wc) for rule, wc in local_run.planned if not wc or rule in per_model]
    assert sorted(planned) == sorted([(r, wc) for r, wc in local_run.planned if wc and wc[0] in redo]
                                     + cohort_jobs)
    # The profile as shipped, but for the DL rules' 8 threads: a net's weights depend on its
    # thread count (docs/dl.md, Reproducibility), so to compare bytes the DL jobs run on as
    # many threads as the local run gave them (dl.threads), as a user pinning weights would.
    threads = yaml.safe_load((work / "config.yaml").read_text())["dl"]["threads"]
    assert threads <= cluster.cores
    smk(work, "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
        # No slurmdbd here: sacct cannot answer, squeue can.
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--set-threads", f"dl_train={threads}", f"dl_predict={threads}", f"dl_train_features={threads}")

    jobs = squeue_jobs()
    record_property(CI_REPORT, [f"SLURM test cluster: squeue --states=all after the workflow ({len(jobs)} jobs)"]
                    + ["  " + "  ".join(f"{k}={v}" for k, v in job.items()) for job in jobs])

    # Every job but the localrules was a SLURM job, exactly once, and completed.
    local = local_rules()
    assert {"eligibility", "split", "qc_table"} <= local
    remote = sorted(comment(rule, wc) for rule, wc in planned if rule not in local)
    assert sorted(job["Comment"] for job in jobs) == remote
    assert {job["State"] for job in jobs} == {"COMPLETED"}
    # Each job asked SLURM for the memory its rule declares (the profile sets none).
    declared = declared_mem_mb()
    rule_of = {comment(rule, wc): rule for rule, wc in planned}
    assert {job["Comment"]: _megabytes(job["MinMemory"]) for job in jobs} == \
        {job["Comment"]: declared[rule_of[job["Comment"]]] for job in jobs}
    # Each DL training job (the refit and one per cross-fitting fold) went to the GPU
    # partition and asked SLURM for a GPU.
    dl_train = sorted((job for job in jobs if job["Comment"].startswith("rule_dl_train_wildcards_")),
                      key=lambda j: j["Comment"])
    assert [j["Comment"] for j in dl_train] == [f"rule_dl_train_wildcards_{f}" for f in ("fold0", "fold1", "refit")]
    assert {(j["Partition"], j["tres-per-job"], j["NumCPUs"]) for j in dl_train} == {("gpu", "gres:gpu:1", str(threads))}
    assert {job["Partition"] for job in jobs if job not in dl_train} == {"cpu"}

    # Same seed, same results: the cluster run equals the local one, file for file.
    digest = outputs_digest(work / "results")
    assert sorted(digest) == sorted(local_run.digest)
    assert [f for f in digest if digest[f] != local_run.digest[f]] == []
