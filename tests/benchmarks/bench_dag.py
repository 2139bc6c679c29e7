"""DAG building at cohort scale: `snakemake -n` of this workflow against a toy of the same job count.

For each cohort size, writes a sample sheet and clinical table of N placeholder patients
(every path points at one empty file: nothing is read at parse time), times a dry run of
the real workflow, counts its jobs, then times a dry run of a toy workflow (a chain of
one-line rules per sample, sized to the same job count) in the same run, and prints both
and their ratio. Every cluster job re-parses the Snakefile, so parse time matters.

    python tests/benchmarks/bench_dag.py [--patients 1000 5000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]


def write_cohort(root: Path, n: int) -> None:
    (root / "placeholder.nii.gz").write_bytes(b"")
    ids = [f"{'A' if i % 3 else 'B'}{i:05d}" for i in range(n)]
    samples = pd.DataFrame({"patient_id": ids, "institution": [p[0] for p in ids], "scanner": "",
                            "cohort": "", "image": "placeholder.nii.gz", "image_series_uid": "",
                            "mask": "placeholder.nii.gz",
                            "mask_reader2": ["placeholder.nii.gz" if i % 4 == 0 else "" for i in range(n)],
                            "plain_ct": ["placeholder.nii.gz" if i % 2 == 0 else "" for i in range(n)],
                            "plain_ct_series_uid": ""})
    samples.to_csv(root / "samples.tsv", sep="\t", index=False)
    clinical = pd.DataFrame({
        "patient_id": ids, "dm_event": [i % 3 == 0 for i in range(n)], "dm_time_months": 24.0, "age": 55,
        "sex": "F", "histology": "RLPS", "t_stage": "T2", "n_stage": "N0", "resection_margin": "R0",
        "plain_ct_done": 1, "ct_to_treatment_days": 5, "image_quality": "adequate", "prior_malignancy": 0,
        "therapy_before_ct": 0, "nonmetastatic_death_6m": 0})
    clinical["dm_event"] = clinical["dm_event"].astype(int)
    clinical.to_csv(root / "clinical.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(samples="samples.tsv", clinical="clinical.tsv")
    config["demo"]["generate"] = False
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def dry_run(snakefile: Path, workdir: Path, *extra) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "-s", str(snakefile),
           "--directory", str(workdir), "--cores", "1", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    total = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.M)
    return seconds, int(total.group(1)) if total else -1


def toy(root: Path, n: int, rules_per_sample: int) -> Path:
    lines = [f"SAMPLES = [f'S{{i:05d}}' for i in range({n})]", "",
             "rule all:", f"    input: expand('out/{{s}}.r{rules_per_sample - 1}', s=SAMPLES)", ""]
    for r in range(rules_per_sample):
        src = "'in.txt'" if r == 0 else f"'out/{{s}}.r{r - 1}'"
        lines += [f"rule r{r}:", f"    input: {src}", f"    output: 'out/{{s}}.r{r}'", "    shell: 'touch {output}'", ""]
    (root / "in.txt").write_text("")
    (root / "Snakefile").write_text("\n".join(lines))
    return root / "Snakefile"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="+", default=[1000, 5000])
    args = ap.parse_args()
    for n in args.patients:
        with tempfile.TemporaryDirectory() as tmp:
            real_dir, toy_dir = Path(tmp) / "real", Path(tmp) / "toy"
            real_dir.mkdir()
            toy_dir.mkdir()
            write_cohort(real_dir, n)
            t_real, jobs = dry_run(REPO / "workflow" / "Snakefile", real_dir, "--configfile", str(real_dir / "config.yaml"))
            per_sample = max(1, round(jobs / n))
            t_toy, toy_jobs = dry_run(toy(toy_dir, n, per_sample), toy_dir)
        print(f"{n} patients: workflow dry run {t_real:.1f} s ({jobs} jobs); toy of {per_sample} rules per "
              f"sample {t_toy:.1f} s ({toy_jobs} jobs); ratio {t_real / t_toy:.2f}", flush=True)


if __name__ == "__main__":
    main()
