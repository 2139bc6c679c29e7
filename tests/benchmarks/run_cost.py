"""What a finished run cost, rule by rule, and what its DAG would take on more cores.

Reads a finished run's job DAG (Snakemake's own, as it plans the run with ``--forceall``)
and every job's benchmark file (wall seconds and CPU seconds), and prints:

- each rule's jobs, job-seconds, share of the job-seconds, median (range) per job, and the
  CPU-seconds its jobs used;
- the run's wall time, from the first to the last timestamp of its Snakemake log (with
  ``--wall``, a time measured outside instead);
- a replay of the DAG on N cores: Snakemake's greedy choice (highest priority first) with
  each job's measured seconds and its ``threads`` (at most N), giving the makespan, each
  rule's share of the wall time (its jobs' seconds over the makespan, divided by the
  cores they ran beside), and the serial phases: the stretches in which fewer jobs were
  ready than the cores could run, with the rules that ran then. The replay at the run's
  own cores against the measured wall time is the overhead between jobs (Snakemake's
  scheduling, process start-up): the replay of other core counts adds that same share.

Job times are those measured on the run's machine: on a host with more cores each job is
taken to run as fast as it did there (every rule but the network's is single-threaded).

    python tests/benchmarks/run_cost.py RUN_DIR [--configfile my.yaml] [--cores 2 16]
"""

from __future__ import annotations

import argparse
import heapq
import os
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Job:
    key: int
    rule: str
    threads: int
    priority: int
    benchmark: str | None
    deps: list = field(default_factory=list)
    wildcards: dict = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def plan(run_dir: Path, configfiles: list[Path], snakefile: Path) -> list[Job]:
    """Every job of the run's DAG as Snakemake plans it from scratch (``--forceall``)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    cwd = os.getcwd()
    logs = run_dir / ".snakemake" / "log"
    before = set(logs.glob("*")) if logs.exists() else set()
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1024),  # no thread count capped
                          config_settings=ConfigSettings(configfiles=[p.resolve() for p in configfiles]),
                          snakefile=snakefile.resolve(), workdir=run_dir.resolve())
        dag_api = wf.dag(dag_settings=DAGSettings(forceall=True))
        workflow = dag_api.workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        dag = workflow.dag
        dag.update_priority()  # each job's priority, its rule's function of the wildcards included
        jobs = {job: Job(i, job.rule.name, int(job.threads), _priority(dag, job),
                         str(job.benchmark) if job.benchmark else None, wildcards=dict(job.wildcards.items()))
                for i, job in enumerate(dag.jobs)}
        for job, j in jobs.items():
            j.deps = [jobs[d].key for d in dag.dependencies[job] if d in jobs]
    os.chdir(cwd)
    for path in set(logs.glob("*")) - before:  # this planning's own log: not the run's
        path.unlink()
    return sorted(jobs.values(), key=lambda j: j.key)


def _priority(dag, job) -> int:
    try:
        return int(dag.priority(job))  # the rule's, or its function of the wildcards
    except KeyError:  # the target rule
        return 0


def read_benchmarks(jobs: list[Job], run_dir: Path) -> list[str]:
    """Each job's measured wall and CPU seconds; the jobs without a benchmark file."""
    missing = []
    for j in jobs:
        path = run_dir / j.benchmark if j.benchmark else None
        if path is None or not path.exists():
            if j.rule != "all":
                missing.append(j.rule)
            continue
        row = pd.read_csv(path, sep="\t").iloc[-1]
        j.seconds = float(row["s"])
        cpu = pd.to_numeric(row.get("cpu_time"), errors="coerce")
        j.cpu_seconds = float(cpu) if pd.notna(cpu) else 0.0
    return missing


def log_wall(run_dir: Path) -> tuple[float, float] | None:
    """The latest finished run's log: Snakemake's elapsed time (the parse included, where the
    demo cohort is built) and the seconds from its first job's start to its last job's end."""
    logs = [p for p in sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
            if "Finished jobid" in p.read_text()]
    if not logs:
        return None
    text = logs[-1].read_text()
    stamps = re.findall(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", text, re.M)
    elapsed = re.search(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text, re.M)
    if len(stamps) < 2 or not elapsed:
        return None
    t = [datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in (stamps[0], stamps[-1])]
    h, m, sec = elapsed.groups()
    return int(h) * 3600 + int(m) * 60 + float(sec), (t[1] - t[0]).total_seconds()


def rule_table(jobs: list[Job]) -> pd.DataFrame:
    rows = defaultdict(list)
    for j in jobs:
        if j.benchmark:
            rows[j.rule].append(j)
    total = sum(j.seconds for j in jobs)
    out = []
    for rule, js in rows.items():
        s = [j.seconds for j in js]
        out.append({"rule": rule, "jobs": len(js), "job_s": sum(s), "share": sum(s) / total,
                    "median_s": statistics.median(s), "min_s": min(s), "max_s": max(s),
                    "cpu_s": sum(j.cpu_seconds for j in js), "threads": max(j.threads for j in js)})
    return pd.DataFrame(out).sort_values("job_s", ascending=False, ignore_index=True)


def replay(jobs: list[Job], cores: int) -> dict:
    """The DAG on ``cores`` cores: greedy by priority, as Snakemake's greedy scheduler.

    Returns the makespan; the serial time, in which one job ran alone (holding every core, or
    leaving the others idle for want of a ready job), by rule; and the idle core-seconds."""
    by_key = {j.key: j for j in jobs}
    waiting = {j.key: len(j.deps) for j in jobs}
    children = defaultdict(list)
    for j in jobs:
        for d in j.deps:
            children[d].append(j.key)
    ready = [(-j.priority, j.key) for j in jobs if not j.deps]
    heapq.heapify(ready)
    running, now, free = [], 0.0, cores  # running: (end, key)
    serial, idle = defaultdict(float), 0.0

    def finish(key):
        nonlocal free
        free += min(by_key[key].threads, cores)
        for c in children[key]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (-by_key[c].priority, c))

    while ready or running:
        deferred = []
        while ready:
            prio, key = heapq.heappop(ready)
            need = min(by_key[key].threads, cores)
            if need <= free:
                free -= need
                heapq.heappush(running, (now + by_key[key].seconds, key))
            else:
                deferred.append((prio, key))
        for item in deferred:
            heapq.heappush(ready, item)
        end = running[0][0]
        if len(running) == 1:
            serial[by_key[running[0][1]].rule] += end - now
        idle += (end - now) * free
        now = end
        while running and running[0][0] <= now:  # every job ending at this moment
            finish(heapq.heappop(running)[1])
    return {"makespan": now, "idle_core_seconds": idle, "serial_by_rule": dict(serial)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="the folder the run ran in (results/, .snakemake/ inside)")
    ap.add_argument("--configfile", type=Path, nargs="*", default=[], help="the run's --configfile")
    ap.add_argument("--snakefile", type=Path,
                    help="the workflow that ran (default: RUN_DIR/Snakefile in a clone, else this checkout's)")
    ap.add_argument("--cores", type=int, nargs="+", default=[2, 16], help="replay the DAG on these cores")
    ap.add_argument("--run-cores", type=int, default=2, help="the cores the run itself had")
    ap.add_argument("--wall", type=float, help="the run's measured wall seconds (default: its log's)")
    ap.add_argument("--tsv", type=Path, help="write the per-rule table here")
    args = ap.parse_args()
    snakefile = args.snakefile or (args.run_dir / "Snakefile" if (args.run_dir / "Snakefile").exists()
                                   else REPO / "Snakefile")
    jobs = plan(args.run_dir, args.configfile, snakefile)
    missing = read_benchmarks(jobs, args.run_dir)
    if missing:
        print(f"warning: {len(missing)} jobs without a benchmark file ({', '.join(sorted(set(missing)))})",
              file=sys.stderr)
    table = rule_table(jobs)
    walls = log_wall(args.run_dir)
    wall = args.wall or (walls[1] if walls else None)
    total = table["job_s"].sum()
    print(f"{len(jobs)} jobs, {total:,.0f} job-seconds, {table['cpu_s'].sum():,.0f} CPU-seconds"
          + (f"; Snakemake's elapsed time {walls[0]:,.0f} s ({walls[0] / 60:.1f} min), its jobs from the first's "
             f"start to the last's end {walls[1]:,.0f} s ({walls[1] / 60:.1f} min)" if walls else "")
          + (f"; wall {wall:,.0f} s" if args.wall else ""))
    own = replay(jobs, args.run_cores)
    overhead = wall / own["makespan"] if wall else 1.0
    if wall:
        print(f"replay on {args.run_cores} cores: {own['makespan']:,.0f} s; the run took {overhead:.2f}x that "
              "(the time between jobs)")
    print(f"\n{'rule':<28}{'jobs':>5}{'job-s':>9}{'share':>7}{'wall share':>11}{'median s':>10}{'range s':>14}"
          f"{'CPU-s':>8}{'thr':>4}")
    for r in table.itertuples():
        wall_share = r.job_s * min(r.threads, args.run_cores) / args.run_cores / own["makespan"]
        print(f"{r.rule:<28}{r.jobs:>5}{r.job_s:>9,.0f}{r.share:>7.1%}{wall_share:>11.1%}{r.median_s:>10.1f}"
              f"{f'{r.min_s:.1f}-{r.max_s:.1f}':>14}{r.cpu_s:>8,.0f}{r.threads:>4}")
    for cores in args.cores:
        rep = replay(jobs, cores)
        est = rep["makespan"] * overhead
        serial = sorted(rep["serial_by_rule"].items(), key=lambda kv: -kv[1])
        serial_s = sum(v for _, v in serial)
        print(f"\non {cores} cores: DAG replay {rep['makespan']:,.0f} s; with the measured time between jobs "
              f"{est:,.0f} s ({est / 60:.1f} min). Cores idle {rep['idle_core_seconds'] / (rep['makespan'] * cores):.0%}"
              f" of the time. One job at a time {serial_s:,.0f} s ({serial_s / rep['makespan']:.0%}): "
              + ", ".join(f"{k} {v:,.0f} s ({v / rep['makespan']:.0%})" for k, v in serial[:5]))
    if args.tsv:
        table.to_csv(args.tsv, sep="\t", index=False)


if __name__ == "__main__":
    main()
