"""Shared fixtures: the real abdominal CT and small generated demo cohorts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctith.demo.synthetic import write_cohort

REPO = Path(__file__).resolve().parents[1]
# A real abdominal CT with organ masks (TotalSegmentator's test files, CC BY 4.0; README
# beside it), in the repository: a fresh clone runs every real-CT test.
REAL_CT = REPO / "tests" / "data" / "real_ct"


@dataclass
class RealCT:
    image: Path
    masks: dict


@pytest.fixture(scope="session")
def real_ct() -> RealCT:
    return RealCT(REAL_CT / "abdomen_ct.nii.gz",
                  {p.name.split(".")[0]: p for p in (REAL_CT / "masks").glob("*.nii.gz")})


@pytest.fixture(scope="session")
def tiny_cohort_dir(tmp_path_factory) -> Path:
    """The `tiny` preset written once per session (read-only for tests: copy to change)."""
    out = tmp_path_factory.mktemp("tiny") / "cohort"
    write_cohort(out, "tiny", seed=7)
    return out


@pytest.fixture(scope="session")
def workflow_cohort_dir(tmp_path_factory) -> Path:
    """The `tiny` preset with more patients, for end-to-end runs: 22 eligible, 11 of them in
    training (5 with DM), enough for SMOTE inside 2-fold cross-validation."""
    out = tmp_path_factory.mktemp("workflow") / "cohort"
    write_cohort(out, "tiny", seed=7, n_patients={"A": 18, "B": 6})
    return out


@pytest.fixture
def tiny_cohort(tiny_cohort_dir, tmp_path) -> Path:
    """A private, writable copy of the tiny cohort."""
    dst = tmp_path / "cohort"
    shutil.copytree(tiny_cohort_dir, dst)
    return dst


@dataclass
class LocalRun:
    work: Path      # a finished workdir: copy it before changing anything in it
    planned: list   # (rule, wildcard values) of each job the dry run planned
    digest: dict    # outputs_digest of its results, taken right after the run


@pytest.fixture(scope="session")
def local_run(workflow_cohort_dir, tmp_path_factory) -> LocalRun:
    """The whole workflow run once with the local executor on the workflow cohort (its DICOM
    files carrying identifiers): the reference that the end-to-end and SLURM tests compare
    against."""
    from workflow_run import dry_run_jobs, fill_template, make_workdir, outputs_digest, smk, stamp_identifiers

    root = tmp_path_factory.mktemp("local_run")
    shutil.copytree(workflow_cohort_dir, root / "cohort")
    assert stamp_identifiers(root / "cohort")  # names, dates and IDs in the headers, as a PACS export has
    fill_template(root / "cohort", root / "template")  # a cohort made from `ctith template` runs end to end
    work = make_workdir(root / "cohort", root)
    planned = dry_run_jobs(work)
    smk(work, "--cores", "2")
    return LocalRun(work, planned, outputs_digest(work / "results"))


# The tests share one finished workflow run (local_run) and the SLURM test cluster: under
# pytest-xdist (pyproject's addopts: two workers) they form one group, run by one worker
# from the start, while the other worker takes the remaining tests. The SLURM phase mostly
# waits on the scheduler, so the unit tests fill its idle core.
SHARED_RUN_FIXTURES = {"local_run", "cluster"}
SHARED_RUN_GROUP = "shared_run"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Put the tests on the shared run in one group, and every group's tests (a module's
    ``xdist_group`` marker: tests sharing an expensive module fixture) on one worker."""
    shared = [item for item in items if SHARED_RUN_FIXTURES & set(getattr(item, "fixturenames", ()))]
    for item in shared:
        item.add_marker(pytest.mark.xdist_group(SHARED_RUN_GROUP))
    if getattr(config.option, "loadgroup", False):  # an xdist worker with --dist loadgroup
        from _pytest.nodeid import coerce_node_id

        for item in items:
            group = item.get_closest_marker("xdist_group")
            if group:
                # xdist groups by an '@group' suffix on the test ID. xdist 3.8 writes it where
                # pytest 8 kept the ID; pytest 9 keeps it in `_id`, so the suffix goes there.
                item._id = coerce_node_id(f"{item.nodeid}@{group.args[0]}")
    # First in line, so the long group starts at once.
    items[:] = shared + [item for item in items if item not in shared]


# Lines that tests want in the CI log whether they pass or not (e.g. the SLURM queue): a
# test records them with ``record_property(CI_REPORT, lines)``; they travel with its report,
# so they reach the terminal from an xdist worker too.
CI_REPORT = "ci_report"
_REPORTED: list[str] = []


def pytest_runtest_logreport(report):
    for name, value in getattr(report, "user_properties", ()):
        if name == CI_REPORT and report.when == "call":
            _REPORTED.extend(value)


def pytest_terminal_summary(terminalreporter):
    if _REPORTED:
        terminalreporter.section("reported by the tests")
        for line in _REPORTED:
            terminalreporter.write_line(line)
