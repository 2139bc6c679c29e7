"""A throwaway single-node SLURM cluster on 127.0.0.1, for the cluster test.

Debian's slurmctld, slurmd, slurm-client and munge (``.ci/run`` installs them), started as
root in the foreground without systemd, one node with every CPU, most of the memory and
one declared GPU so that a ``--gpus`` request is accepted, in two partitions named as in
workflow/profiles/slurm (``cpu``, the default, and ``gpu``). The config must live at
/etc/slurm/slurm.conf: the jobstep plugin drops ``SLURM_CONF`` inside jobs. An existing
slurm.conf that this module did not write is never touched. Daemons are stopped by PID
and the config files removed: with the SLURM plugin installed, every ``snakemake`` call
asks ``scontrol`` for the config at import, which waits about 9 s for a controller that
a leftover slurm.conf names but nobody runs.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

ETC = Path("/etc/slurm")
MARKER = "# written by ctith tests/slurm_cluster.py"
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "scontrol")
# Finished jobs stay in squeue this long: without slurmdbd, squeue is the status command.
MIN_JOB_AGE_S = 3600


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    absent = [b for b in BINARIES if shutil.which(b) is None]
    if absent:
        return f"not installed: {', '.join(absent)}"
    conf = ETC / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text():
        return f"{conf} belongs to another SLURM installation"
    return None


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf(cpus: int, memory_mb: int, spool: Path) -> str:
    return f"""{MARKER}
ClusterName=ctith
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={spool}/ctld
SlurmdSpoolDir={spool}/d
SlurmctldPidFile={spool}/slurmctld.pid
SlurmdPidFile={spool}/slurmd.pid
SlurmctldLogFile={spool}/slurmctld.log
SlurmdLogFile={spool}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge={MIN_JOB_AGE_S}
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
"""


class Cluster:
    """Start with ``Cluster(spool).start()``; ``stop()`` kills the daemons by PID."""

    def __init__(self, spool: Path):
        self.spool = Path(spool)
        self.procs: list[subprocess.Popen] = []
        self.outputs: list = []  # the daemons' stdout files, closed on stop
        self.cores = os.cpu_count()
        # The node declares twice its cores (slurmd takes the config's word:
        # config_overrides): most cohort jobs wait on Python start-up and Snakemake's status
        # checks, not on a core, so two share one.
        self.cpus = 2 * self.cores
        # Headroom for the OS and the Snakemake main process.
        self.memory_mb = _memory_mb() - 2048

    def start(self, timeout_s: float = 60) -> "Cluster":
        why = missing()
        if why:
            raise RuntimeError(f"cannot start a SLURM test cluster: {why}")
        for sub in ("ctld", "d"):
            (self.spool / sub).mkdir(parents=True, exist_ok=True)
        ETC.mkdir(exist_ok=True)
        (ETC / "slurm.conf").write_text(slurm_conf(self.cpus, self.memory_mb, self.spool))
        # The node's one GPU is a stand-in device: the test checks routing, not CUDA.
        (ETC / "gres.conf").write_text(f"{MARKER}\nNodeName=localhost Name=gpu Count=1 File=/dev/null\n")
        self._start_munge()
        self.procs.append(self._spawn("slurmctld", "-D"))
        self.procs.append(self._spawn("slurmd", "-D", "-N", "localhost"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "--noheader", "-o", "%T"], capture_output=True, text=True)
            if set(state.stdout.split()) == {"idle"}:
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"SLURM node not idle after {timeout_s} s:\n{self.logs()}")

    def _spawn(self, *cmd, **kw) -> subprocess.Popen:
        log = open(self.spool / f"{cmd[0]}.out", "w")
        self.outputs.append(log)
        return subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, **kw)

    def _start_munge(self):
        key = Path("/etc/munge/munge.key")
        for d in ("/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge"):
            Path(d).mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        if not key.exists():
            key.write_bytes(os.urandom(128))
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        self.procs.append(self._spawn("munged", "--foreground", "--force", user="munge", group="munge"))
        deadline = time.monotonic() + 20
        while subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("munged did not start")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                         for p in sorted(self.spool.glob("*.log")) + sorted(self.spool.glob("*.out")))

    def stop(self):
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for log in self.outputs:
            log.close()
        self.outputs.clear()
        for name in ("slurm.conf", "gres.conf"):
            path = ETC / name
            if path.exists() and MARKER in path.read_text():
                path.unlink()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
