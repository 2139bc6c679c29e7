"""An incremental run against the full run: one patient to predict arrives after the study.

In a fresh working folder, with the repository's config.yaml (the demo cohort by
default), the script:

1. runs the whole workflow (``snakemake --cores N``) and times it;
2. adds one patient to predict: a copy of an internal-validation patient's scan under a
   new ID, sample-sheet cohort ``predict``, outcome columns blank;
3. lists the jobs the dry run plans (its per-patient jobs and its prediction only: no fit,
   no cohort table) and times the run;
4. prints both wall times and their ratio (target: under 5%), and checks that every fitted
   file under results/cohort is byte-identical before and after.

    python tests/benchmarks/bench_incremental.py [--preset demo|paper] [--cores 2] [--work DIR]

(The `tiny` preset needs the tests' small-cohort settings, tests/workflow_run.py: too few
re-segmented training patients for the default ICC filter.)

After the README's first command in a fresh clone, ``--work . --full-seconds T`` (T: its
measured time) times the incremental run on that run's results instead of running again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]


def snakemake(work: Path, *args) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
                           "--directory", str(work), "--configfile", str(work / "config.yaml"), *args],
                          capture_output=True, text=True, env=env, cwd=work)
    if proc.returncode:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0, proc.stdout + proc.stderr


def cohort_digests(results: Path) -> dict:
    """sha256 of every file under results/cohort (the study's tables and fitted files) and the
    model bundle: a patient to predict may change none of them."""
    paths = [p for d in ("cohort", "model_bundle") for p in sorted((results / d).rglob("*")) if p.is_file()]
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def add_predict_patient(config: dict, work: Path, new_id: str) -> str:
    samples_path, clinical_path = work / config["samples"], work / config["clinical"]
    samples = pd.read_csv(samples_path, sep="\t", dtype=str, keep_default_na=False)
    clinical = pd.read_csv(clinical_path, sep="\t", dtype=str, keep_default_na=False)
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t").set_index("patient_id")["cohort"]
    donor = samples[samples["patient_id"].map(split).eq("internal_validation")].iloc[0].copy()
    donor_id = donor["patient_id"]
    row = clinical[clinical["patient_id"] == donor_id].copy()
    donor["patient_id"], donor["cohort"] = new_id, "predict"
    row["patient_id"], row["dm_event"], row["dm_time_months"] = new_id, "", ""
    pd.concat([samples, donor.to_frame().T]).to_csv(samples_path, sep="\t", index=False)
    pd.concat([clinical, row]).to_csv(clinical_path, sep="\t", index=False)
    return donor_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo", choices=["demo", "paper"])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--work", help="working folder (default: a new temporary one, kept)")
    ap.add_argument("--full-seconds", type=float,
                    help="the full run was made in --work already (with its config.yaml) and took this long")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ctith_incremental_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.full_seconds is None:
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        config["demo"]["preset"] = args.preset
        (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        print(f"working folder {work}; preset {args.preset}; {args.cores} cores", flush=True)
        full, _ = snakemake(work, "--cores", str(args.cores))
    else:
        config = yaml.safe_load((work / "config.yaml").read_text())
        full = args.full_seconds
    print(f"full run: {full:.0f} s", flush=True)
    before = cohort_digests(work / "results")
    donor = add_predict_patient(config, work, "PRED01")
    _, dry = snakemake(work, "-n", "--quiet", "rules")
    planned = [line.split()[0] for line in dry.splitlines()
               if len(line.split()) == 2 and line.split()[1].isdigit() and line.split()[0] not in ("total", "job")]
    print(f"added PRED01 (a copy of {donor}'s scan); the dry run plans: {', '.join(sorted(set(planned)))}")
    incremental, _ = snakemake(work, "--cores", str(args.cores))
    after = cohort_digests(work / "results")
    changed = sorted(k for k in before if before[k] != after.get(k))
    print(f"add-one-predict-patient run: {incremental:.0f} s")
    print(f"ratio: {100 * incremental / full:.1f}% of the full run (target: under 5%)")
    print("study tables and fitted files: " + ("byte-identical" if not changed else f"CHANGED: {changed[:5]}"))
    print(f"prediction: {work / 'results/predict/PRED01/prediction.json'}")
    if changed:
        sys.exit(1)


if __name__ == "__main__":
    main()
