"""One summary of a run's failed jobs: each patient whose job failed, with the job's
one-line error, printed when the run ends (the workflow's ``onerror``) and kept in
``results/logs/failed_jobs.tsv``.

The default profile keeps going past a failed job, so every other patient finishes. The
cohort stages then wait: each takes every eligible patient, and a patient whose files
failed is still one. Leaving it out instead would make the split, the cross-fitting folds
and every fit depend on which jobs happened to fail (a node lost on a cluster would
quietly change the study), and fixing the file later would refit everything. Fix the
patient's files, or take the patient out of the sheets (or add an eligibility criterion),
and rerun: only what is missing runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

_JOB = re.compile(r"^\s*jobid: (\d+)\s*$")
_WILDCARDS = re.compile(r"^\s*wildcards: (.*)$")
_LOG = re.compile(r"^\s*log: (\S+)")
_ERROR_RULE = re.compile(r"^Error in rule (\S+):\s*$")
_ERROR_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception): ")


def failed_jobs(log_text: str) -> list[dict]:
    """The failed jobs of a Snakemake log: rule, jobid, patient (from the job's wildcards;
    '' for a cohort job) and the job's own log file."""
    wildcards, jobid, failed, current = {}, None, [], None
    for line in log_text.splitlines():
        if m := _ERROR_RULE.match(line):
            current = {"rule": m.group(1), "jobid": "", "patient": "", "log": ""}
            failed.append(current)
            continue
        if m := _JOB.match(line):
            jobid = m.group(1)
            if current is not None and not current["jobid"]:
                current["jobid"] = jobid
        elif m := _WILDCARDS.match(line):
            wildcards[jobid] = dict(kv.split("=", 1) for kv in m.group(1).split(", ") if "=" in kv)
        elif (m := _LOG.match(line)) and current is not None and not current["log"]:
            current["log"] = m.group(1)
        elif not line.startswith(" "):
            current = None if line.strip() else current
    for job in failed:
        job["patient"] = wildcards.get(job["jobid"], {}).get("patient", "")
    return failed


def error_line(log_path: str | Path) -> str:
    """The job's one-line error: the last line of its log naming an error, else its last
    non-empty line."""
    path = Path(log_path)
    if not path.is_file():
        return f"(no log at {path})"
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    named = [line for line in lines if _ERROR_LINE.match(line)]
    return (named or lines or ["(empty log)"])[-1]


def failure_summary(logs, out: str | Path | None = None) -> str:
    """The text printed when a run ends with failed jobs (one line per failed job, per
    patient first), also written as a table to ``out``. ``logs``: the run's Snakemake log
    file(s), as its ``onerror`` handler gets them."""
    logs = [logs] if isinstance(logs, (str, Path)) else list(logs)
    jobs = [job for p in logs if Path(p).is_file() for job in failed_jobs(Path(p).read_text(errors="replace"))]
    if not jobs:
        return ""
    table = pd.DataFrame(jobs)
    table["error"] = [error_line(p) if p else "" for p in table["log"]]
    table = table.sort_values(["patient", "rule"], key=lambda c: c.eq("") if c.name == "patient" else c,
                              kind="stable")
    if out:
        from ..io import write_tsv

        write_tsv(table[["patient", "rule", "error", "log"]], out)
    patients = table.loc[table["patient"] != ""]
    lines = [f"{len(table)} job(s) failed ({patients['patient'].nunique()} patient(s)); the others finished:"]
    lines += [f"  - {r.patient + ' ' if r.patient else ''}[{r.rule}] {r.error}" for r in table.itertuples()]
    if len(patients):
        lines.append("The cohort stages wait for every eligible patient: fix the files of "
                     f"{', '.join(sorted(patients['patient'].unique()))}, or take them out of the sheets, and rerun "
                     "(only what is missing runs).")
    if out:
        lines.append(f"Table: {out}")
    return "\n".join(lines)
