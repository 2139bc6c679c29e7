"""What a cohort of the paper's size costs through the workflow: every rule, on 2 and 16 cores.

The `paper` preset (274 eligible patients, 512 x 512 CT at 5 mm, tumours of 50-200 mm) is
too slow to render and run whole for a benchmark, so its cost is put together from
measurements:

1. **The DAG**: the workflow planned on the preset's own sample sheet and clinical table (its
   patients, re-delineations, plain CTs, eligibility and split), every image path pointing at
   one placeholder file (nothing is read while planning), as ``run_cost.plan`` plans a run.
2. **Per-patient rules**: a sample of the preset's patients across the tumour-size range,
   rendered with both re-delineations and a plain CT, through every per-patient rule of the
   workflow (Snakemake, ``--cores 2``: two jobs at a time, as in a run). Each patient of the
   cohort gets each rule's seconds interpolated linearly in tumour diameter between the sampled
   patients (the ends held flat).
3. **The networks**: one fold net and the refit trained at the paper's training-cohort sizes on
   random 224 x 224 inputs (the time of an epoch does not depend on what the images show),
   on one thread, for a few epochs; the seconds of an epoch times the epochs the nets of a
   finished demo run ran (``--demo-run``).
4. **Cohort rules**: the seconds each took in that demo run, scaled by the number of eligible
   patients (paper / demo): most of them read one file per patient or bootstrap the patients.

The job list is then replayed on 2 and 16 cores (``run_cost.replay``: Snakemake's greedy
choice by priority, each job's threads), and each rule's share of the job-seconds printed.

    python tests/benchmarks/paper_cost.py --demo-run DEMO_DIR [--sample 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from bench_memory import PER_PATIENT, write_config  # noqa: E402  (the per-patient targets)
from run_cost import plan, read_benchmarks, replay  # noqa: E402

PER_PATIENT_RULES = ("ingest", "semantic", "ith", "radiomics", "radiomics_resegmented", "dl_input")
PRESET = "paper"


def placeholder_cohort(root: Path, specs, clinical: pd.DataFrame) -> Path:
    """The preset's sheets with every file an empty placeholder: enough to plan the DAG."""
    from ctith.io import write_tsv

    (root / "files").mkdir(parents=True, exist_ok=True)

    def placeholder(pid: str, kind: str, present: bool = True) -> str:
        if not present:
            return ""
        path = root / "files" / f"{pid}_{kind}.nii.gz"  # one path per scan: the sheet check wants it
        path.write_bytes(b"")
        return str(path.relative_to(root))

    rows = [{"patient_id": s.patient_id, "institution": s.institution, "scanner": s.scanner, "cohort": "",
             "image": placeholder(s.patient_id, "venous"), "image_series_uid": "",
             "mask": placeholder(s.patient_id, "seg_reader1"),
             "mask_reader2": placeholder(s.patient_id, "seg_reader2", s.has_reader2),
             "mask_reader1_repeat": placeholder(s.patient_id, "seg_reader1_repeat", s.has_reader2),
             "plain_ct": placeholder(s.patient_id, "plain", s.has_plain_ct), "plain_ct_series_uid": ""}
            for s in specs]
    write_tsv(pd.DataFrame(rows), root / "samples.tsv")
    write_tsv(clinical, root / "clinical.tsv")
    return write_config(root, "samples.tsv", "clinical.tsv")


def sample_specs(specs, n: int) -> list:
    """``n`` eligible patients at evenly spaced quantiles of tumour diameter, each with both
    re-delineations and a plain CT (the rules then run on every kind of input)."""
    eligible = sorted((s for s in specs if not s.ineligible_reason), key=lambda s: s.tumour_diameter_mm)
    picks = sorted({int(round(q * (len(eligible) - 1))) for q in np.linspace(0, 1, n)})
    return [replace(eligible[i], has_reader2=True, has_plain_ct=True, image_format="nifti") for i in picks]


def measure_sample(work: Path, specs, clinical: pd.DataFrame, cores: int) -> pd.DataFrame:
    """Every per-patient rule on the sampled patients: (patient, diameter, rule, seconds)."""
    bench = work / "results" / "benchmarks"
    if not bench.exists():
        _run_sample(work, specs, clinical, cores)
    diameter = {s.patient_id: s.tumour_diameter_mm for s in specs}
    out = []
    for rule_dir in bench.iterdir():
        rule = "radiomics_resegmented" if rule_dir.name.startswith("radiomics_reader") else rule_dir.name
        for path in rule_dir.glob("*.tsv"):
            seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
            out.append({"patient_id": path.stem, "diameter_mm": diameter[path.stem], "rule": rule,
                        "seconds": seconds})
    return pd.DataFrame(out)


def _run_sample(work: Path, specs, clinical: pd.DataFrame, cores: int) -> None:
    """Render the sampled patients and run their per-patient rules (kept with --keep: a second
    call reads the first one's benchmark files)."""
    from ctith.demo.render import render_patient
    from ctith.demo.synthetic import write_patient
    from ctith.io import write_tsv

    cohort = work / "cohort"
    rows = []
    t = time.perf_counter()
    for spec in specs:
        row = write_patient(spec, render_patient(spec), cohort)
        rows.append({**row, "cohort": "train"})
    print(f"rendered {len(specs)} patients in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    write_tsv(pd.DataFrame(rows), cohort / "samples.tsv")
    ids = [s.patient_id for s in specs]
    # Only per-patient targets are asked for, but the sheets' check wants a training cohort that
    # can cross-fit: alternate outcomes (no per-patient rule reads them), two folds.
    rows = clinical[clinical["patient_id"].isin(ids)].copy()
    rows["dm_event"] = np.arange(len(rows)) % 2
    write_tsv(rows, cohort / "clinical.tsv")
    config = write_config(work, "cohort/samples.tsv", "cohort/clinical.tsv", {"crossfit": {"folds": 2}})
    targets = [t.format(p=pid) for pid in ids for t in PER_PATIENT]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
                           "--configfile", str(config), "--cores", str(cores), *targets], cwd=work, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"the sample's per-patient rules failed:\n{proc.stderr[-3000:]}")


def per_patient_seconds(sample: pd.DataFrame, rule: str, diameter_mm: float) -> float:
    s = sample[sample["rule"] == rule].groupby("diameter_mm")["seconds"].mean()
    return float(np.interp(diameter_mm, s.index.to_numpy(), s.to_numpy()))


def _epoch_seconds(n_fit: int, n_val: int, epochs: int) -> float:
    """Seconds of an epoch of a net on ``n_fit`` + ``n_val`` random images, one thread."""
    import torch

    from ctith.dl import training as dl

    torch.set_num_threads(1)
    n = n_fit + n_val
    rng = np.random.default_rng(0)
    images = rng.random((n, 3, 224, 224), dtype=np.float32)
    labels = (np.arange(n) % 5 < 2).astype(int)
    params = dl.TrainParams(epochs=epochs, min_epochs=1, patience=10**6, inner_val_fraction=n_val / n, device="cpu")
    history = dl.train(images, labels, params, log=lambda s: None).history
    return statistics.median(h["epoch_seconds"] for h in history[1:])


def net_seconds(n_train: int, demo_run: Path, folds: int, epochs: int) -> dict:
    """fit name -> seconds: a fold net (without one of ``folds`` folds) and the refit of a
    training cohort of ``n_train``, at the epochs the demo run's nets ran."""
    nets = {d.name: json.loads((d / "training.json").read_text())
            for d in (demo_run / "results/cohort/dl").iterdir() if (d / "training.json").exists()}
    fold_epochs = statistics.mean(i["epochs_run"] for k, i in nets.items() if k.startswith("fold"))
    refit_epochs = nets["refit"]["epochs_run"]
    fold_n = n_train - n_train // folds
    sizes = {"fold": fold_n, "refit": n_train}
    out = {}
    for name, n in sizes.items():
        n_val = int(np.ceil(0.2 * n))
        seconds = _epoch_seconds(n - n_val, n_val, epochs)
        ran = fold_epochs if name == "fold" else refit_epochs
        out[name] = seconds * ran
        print(f"{name} net of {n} patients: {seconds:.1f} s an epoch x {ran:.1f} epochs = {out[name]:.0f} s",
              file=sys.stderr)
    return out


def cohort_seconds(demo_run: Path) -> tuple[dict, int]:
    """rule -> mean seconds of its jobs in the demo run; and the demo's eligible patients."""
    jobs = plan(demo_run, [], demo_run / "Snakefile" if (demo_run / "Snakefile").exists() else REPO / "Snakefile")
    read_benchmarks(jobs, demo_run)
    by_rule = defaultdict(list)
    for j in jobs:
        by_rule[j.rule].append(j.seconds)
    n = len(pd.read_csv(demo_run / "results/cohort/eligible.tsv", sep="\t"))
    return {r: statistics.mean(v) for r, v in by_rule.items()}, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-run", type=Path, required=True, help="a finished demo run (its folder)")
    ap.add_argument("--sample", type=int, default=8, help="patients rendered and run through the per-patient rules")
    ap.add_argument("--cores", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--net-epochs", type=int, default=3, help="epochs timed per net (the first left out)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--tsv", type=Path, help="write every job's estimated seconds here")
    args = ap.parse_args()
    from ctith.demo.patients import simulate_cohort

    work = args.keep or Path(tempfile.mkdtemp(prefix="ctith_paper_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        specs, clinical = simulate_cohort(PRESET, args.seed)
        config = placeholder_cohort(work / "dag", specs, clinical)
        jobs = plan(work / "dag", [config], REPO / "Snakefile")
        sample = measure_sample(work / "sample", sample_specs(specs, args.sample), clinical, cores=2)
        by_key = {j.key: j for j in jobs}
        refit = next(j for j in jobs if j.rule == "dl_train" and j.wildcards["fit"] == "refit")
        n_train = sum(1 for k in refit.deps if by_key[k].rule == "dl_input")
        folds = sum(1 for j in jobs if j.rule == "dl_train") - 1
        cached = work / "nets.json"  # with --keep, a second call reuses the nets' times
        if not cached.exists():
            cached.write_text(json.dumps(net_seconds(n_train, args.demo_run, folds, args.net_epochs)))
        nets = json.loads(cached.read_text())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cohort, n_demo = cohort_seconds(args.demo_run)
    diameters = {s.patient_id: s.tumour_diameter_mm for s in specs}
    n_eligible = sum(1 for j in jobs if j.rule == "ingest")
    scale = n_eligible / n_demo
    for j in jobs:
        if j.rule in PER_PATIENT_RULES:
            j.seconds = per_patient_seconds(sample, j.rule, diameters[j.wildcards["patient"]])
        elif j.rule == "dl_train":
            j.seconds = nets["refit" if j.wildcards["fit"] == "refit" else "fold"]
        elif j.rule != "all":
            j.seconds = cohort.get(j.rule, 0.0) * scale
    report(jobs, sample, args.cores, n_eligible, n_train, scale)
    if args.tsv:
        pd.DataFrame([{"rule": j.rule, **j.wildcards, "seconds": j.seconds} for j in jobs]).to_csv(
            args.tsv, sep="\t", index=False)


def report(jobs, sample: pd.DataFrame, cores: list[int], n_eligible: int, n_train: int, scale: float) -> None:
    print(f"paper preset: {n_eligible} eligible patients, {n_train} in training; {len(jobs)} jobs")
    print("\nsampled patients (seconds per rule):")
    print(sample.pivot_table(index=["patient_id", "diameter_mm"], columns="rule", values="seconds",
                             aggfunc="mean").round(1).to_string())
    table = defaultdict(list)
    for j in jobs:
        if j.rule != "all":
            table[j.rule].append(j.seconds)
    total = sum(sum(v) for v in table.values())
    print(f"\n{'rule':<28}{'jobs':>5}{'job-s':>9}{'share':>7}{'median s':>10}   source")
    for rule, v in sorted(table.items(), key=lambda kv: -sum(kv[1])):
        source = ("sample, by diameter" if rule in PER_PATIENT_RULES else "nets at the paper's size"
                  if rule == "dl_train" else f"demo x {scale:.2f}")
        print(f"{rule:<28}{len(v):>5}{sum(v):>9,.0f}{sum(v) / total:>7.1%}{statistics.median(v):>10.1f}   {source}")
    print(f"{'all':<28}{sum(len(v) for v in table.values()):>5}{total:>9,.0f}")
    for c in cores:
        rep = replay(jobs, c)
        serial = sorted(rep["serial_by_rule"].items(), key=lambda kv: -kv[1])[:3]
        print(f"\non {c} cores: {rep['makespan']:,.0f} s ({rep['makespan'] / 3600:.2f} h, "
              f"{rep['makespan'] / 60:.0f} min); cores idle {rep['idle_core_seconds'] / (rep['makespan'] * c):.0%}; "
              "one job at a time: " + ", ".join(f"{k} {v:,.0f} s" for k, v in serial))


if __name__ == "__main__":
    main()
