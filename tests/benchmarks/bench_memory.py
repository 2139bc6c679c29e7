"""Peak memory (RSS) of every rule against the memory it declares (``resources: mem_mb``).

Two sources, printed side by side per rule:
- ``--results DIR``: a finished run's ``benchmarks/`` files (Snakemake's ``max_rss``, MB),
  the largest job of each rule;
- ``--paper``: the `paper` preset's largest tumour (512 x 512 matrix, with a plain CT and
  both re-delineations) as a one-patient cohort in a temporary folder, through every
  per-patient rule of the workflow.

The declared ``mem_mb`` is read from workflow/rules. Exits 1 when a measured peak passes
what its rule declares, or a rule declares none.

    python tests/benchmarks/bench_memory.py --results results --paper [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from ctith.demo.patients import simulate_cohort
from ctith.demo.render import render_patient
from ctith.demo.synthetic import write_patient
from ctith.io import write_tsv

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from workflow_run import declared_mem_mb, rule_blocks  # noqa: E402  (the tests' reading of the rules)
PER_PATIENT = ("results/patients/{p}/ith/scores.json", "results/patients/{p}/radiomics/features.tsv",
               "results/patients/{p}/radiomics/features_reader2.tsv",
               "results/patients/{p}/radiomics/features_reader1_repeat.tsv",
               "results/patients/{p}/semantic.json", "results/patients/{p}/dl/input.npy")


def peak_rss(results: Path) -> dict:
    """rule -> (largest max_rss in MB, jobs) from a run's benchmark files, each matched to
    the rule whose ``benchmark:`` pattern names it."""
    patterns = []
    for rule, block in rule_blocks():
        m = re.search(r'benchmark:\s*\n\s*"results/([^"]+)"', block)
        if m:
            patterns.append((rule, re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(m.group(1))) + "$")))
    out: dict = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = str(path.relative_to(results))
        rule = next((r for r, pattern in patterns if pattern.match(rel)), None)
        if rule is None:
            continue
        with open(path) as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row.get("max_rss") not in (None, "", "NA", "-"):
                    peak, n = out.get(rule, (0.0, 0))
                    out[rule] = (max(peak, float(row["max_rss"])), n + 1)
    return out


def write_config(root: Path, samples: str, clinical: str, overrides: dict | None = None) -> Path:
    """The repository's config.yaml with these sheets and top-level sections, no demo, in root."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(samples=samples, clinical=clinical, **(overrides or {}))
    config["demo"]["generate"] = False
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def paper_patient(work: Path, seed: int) -> str:
    """The paper preset's largest eligible tumour, with a plain CT and both re-delineations,
    written into ``work`` as a training cohort with three copies of itself under other IDs:
    the sheets' check wants a training cohort that can cross-fit (two folds, two patients of
    each outcome), and only the first patient's rules are asked for."""
    specs, clinical = simulate_cohort("paper", seed)
    spec = max((s for s in specs if not s.ineligible_reason), key=lambda s: s.tumour_diameter_mm)
    spec = replace(spec, has_reader2=True, has_plain_ct=True, image_format="nifti")
    cohort = work / "cohort"
    row = write_patient(spec, render_patient(spec), cohort)
    pid = spec.patient_id
    rows = [row]
    for i in range(1, 4):
        copy = f"{pid}C{i}"
        shutil.copytree(cohort / pid, cohort / copy)
        rows.append({k: (v.replace(f"{pid}/", f"{copy}/", 1) if isinstance(v, str) else v) for k, v in row.items()}
                    | {"patient_id": copy})
    write_tsv(pd.DataFrame(rows).assign(cohort="train"), cohort / "samples.tsv")
    own = clinical[clinical["patient_id"] == pid]
    outcomes = pd.concat([own.assign(patient_id=r["patient_id"]) for r in rows]).assign(dm_event=[1, 0, 1, 0])
    write_tsv(outcomes, cohort / "clinical.tsv")
    write_config(work, "cohort/samples.tsv", "cohort/clinical.tsv", {"crossfit": {"folds": 2}})
    print(f"paper patient {pid}: tumour {spec.tumour_diameter_mm:.0f} mm, "
          f"matrix {spec.matrix}, spacing {spec.spacing_xy} mm")
    return pid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", help="a finished run's results/ folder")
    ap.add_argument("--paper", action="store_true", help="run the paper preset's largest tumour")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="ctith_mem_"))
    work.mkdir(parents=True, exist_ok=True)
    snakemake = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
                 "--configfile", "config.yaml"]
    try:
        paper = {}
        if args.paper:
            pid = paper_patient(work, args.seed)
            targets = [t.format(p=pid) for t in PER_PATIENT]
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
            proc = subprocess.run([*snakemake, "--cores", "2", *targets], cwd=work, env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:])
                return 2
            paper = peak_rss(work / "results")
        run = peak_rss(Path(args.results)) if args.results else {}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    declared = declared_mem_mb()
    rules = sorted({rule for rule, _ in rule_blocks()} | set(run) | set(paper))
    over = []
    print(f"{'rule':<26}{'declared mem_mb':>16}{'peak RSS, run (jobs)':>24}{'peak RSS, paper patient':>26}")
    for rule in rules:
        mem = declared.get(rule)
        r, n = run.get(rule, (None, 0))
        p, _ = paper.get(rule, (None, 0))
        if mem is None or any(v is not None and v > mem for v in (r, p)):
            over.append(rule)
        cells = [f"{mem}" if mem else "-", f"{r:.0f} MB ({n})" if r is not None else "-",
                 f"{p:.0f} MB" if p is not None else "-"]
        print(f"{rule:<26}{cells[0]:>16}{cells[1]:>24}{cells[2]:>26}")
    if over:
        print(f"over the declared memory, or none declared: {over}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
