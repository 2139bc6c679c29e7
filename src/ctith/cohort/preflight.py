"""What the sheets and the config can tell before any job runs, beyond each sheet's own
contract (``ctith.cohort.sheets``): whether the configured institutions cover the cohort, whether
the split leaves the cross-fitting folds enough patients of each outcome, and whether
the validation cohorts are large enough to say anything.

:func:`preflight` runs at parse (``workflow/rules/common.smk``) and in ``ctith validate``,
so both say the same, each problem as one line, all at once. Nothing here reads an image:
every cluster job re-parses the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..errors import CtithError
from .eligibility import eligible_ids
from .sheets import Inputs, load_inputs, study_inputs
from .split import split_cohorts, unplaced

# Below these a validation cohort's C-index is mostly noise. On the former 8-patient demo
# cohort (3 DM), even the generating model's C-index ranged 0.41-1.00 over random
# cohorts of that size; at 16 patients with 7 DM the demo's true model gets 0.68-1.00
# (Table S4's bootstrap CI), at 26 with 13 DM 0.70-0.93.
MIN_VALIDATION_PATIENTS = 15
MIN_VALIDATION_EVENTS = 6
VALIDATION = ("internal_validation", "external_validation")


@dataclass
class StudyCheck:
    """The split (None where the sheets cannot make one), the problems that stop the run
    and the warnings that do not."""

    split: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Preflight:
    """The sheets as read (``inputs``: every row, patients to predict included), the study's
    rows (``study``), its eligible patients and what :func:`check_study` says of them."""

    inputs: Inputs
    study: Inputs
    eligible: list
    check: StudyCheck

    @property
    def problems(self) -> list[str]:
        return self.inputs.problems + self.check.problems


def preflight(config: dict) -> Preflight:
    """Read and validate the config's sheets (a ``SheetError`` if they cannot be read or break
    their contract), and check the study they make: what both the workflow's parse and
    ``ctith validate`` say."""
    inputs = load_inputs(config)
    study = study_inputs(inputs)
    eligible = eligible_ids(study.clinical, study.samples["institution"], config["eligibility"]["criteria"])
    check = check_study(config, study.samples, study.clinical, eligible)
    check.warnings += unlisted_clinical_rows(inputs.samples.index, inputs.clinical.index)
    return Preflight(inputs, study, eligible, check)


def institution_problems(samples: pd.DataFrame, internal, external) -> list[str]:
    """Patients (rows of the sample sheet: institution, cohort) whose cohort the split must
    decide but whose institution the split config does not name: one line per institution,
    with its patient count and first patient."""
    todo = samples.loc[unplaced(samples, internal, external).to_numpy()]
    problems = []
    for inst, ids in todo.groupby(todo["institution"].astype(str)).groups.items():
        problems.append(f"institution '{inst}' ({len(ids)} eligible patients without a cohort in the sample "
                        f"sheet, e.g. {sorted(ids)[0]}) is in neither split.internal_institutions nor "
                        f"split.external_institutions (internal: {sorted(map(str, internal))}, external: "
                        f"{sorted(map(str, external))})")
    return problems


def fold_problems(split: pd.DataFrame, events: pd.Series, folds: int) -> list[str]:
    """Stratified ``folds``-fold cross-fitting needs that many training patients with DM and
    that many without; say so with the counts and the largest feasible number."""
    train = split.loc[split["cohort"] == "train", "patient_id"]
    dm = pd.to_numeric(events.reindex(train), errors="coerce").fillna(0).astype(int)
    with_dm, without = int(dm.sum()), int((dm == 0).sum())
    smaller = min(with_dm, without)
    if smaller >= folds:
        return []
    fix = f"set crossfit.folds to {smaller} or fewer" if smaller >= 2 else "the cohort is too small to cross-fit"
    return [f"the training cohort has {with_dm} patients with DM and {without} without; stratified {folds}-fold "
            f"cross-fitting (crossfit.folds) needs at least {folds} of each: {fix}"]


def cohort_size_warnings(split: pd.DataFrame, events: pd.Series) -> list[str]:
    """A validation cohort below MIN_VALIDATION_PATIENTS or MIN_VALIDATION_EVENTS."""
    warnings = []
    for cohort in VALIDATION:
        ids = split.loc[split["cohort"] == cohort, "patient_id"]
        if ids.empty:
            continue
        n, n_dm = len(ids), int(pd.to_numeric(events.reindex(ids), errors="coerce").fillna(0).sum())
        if n < MIN_VALIDATION_PATIENTS or n_dm < MIN_VALIDATION_EVENTS:
            warnings.append(f"{cohort.replace('_', ' ')}: {n} patients, {n_dm} with DM (below "
                            f"{MIN_VALIDATION_PATIENTS} patients or {MIN_VALIDATION_EVENTS} DM, its C-index and AUC "
                            "carry little: their CIs will be wide)")
    return warnings


def unlisted_clinical_rows(samples_ids, clinical_ids, shown: int = 3) -> list[str]:
    """Clinical rows without a sample-sheet row: not part of the study (a clinical export
    often holds more patients), said once so that a mistyped ID is seen. Such a row joins
    the study only when its patient gets a sample-sheet row."""
    unlisted = sorted(set(map(str, clinical_ids)) - set(map(str, samples_ids)))
    if not unlisted:
        return []
    more = f" and {len(unlisted) - shown} more" if len(unlisted) > shown else ""
    return [f"{len(unlisted)} clinical table row(s) have no sample-sheet row and are not in the study: "
            f"{', '.join(unlisted[:shown])}{more}"]


def check_study(config: dict, samples: pd.DataFrame, clinical: pd.DataFrame, eligible) -> StudyCheck:
    """The split of the ``eligible`` patients of the validated sheets (``sheets.Inputs``'
    frames, indexed by patient ID; patients to predict left out), with every problem the
    institutions and the cross-fitting folds have, and the validation cohorts' size
    warnings."""
    s = config["split"]
    check = StudyCheck()
    eligible = list(eligible)
    check.problems += institution_problems(samples.loc[eligible], s["internal_institutions"],
                                           s["external_institutions"])
    lost = unplaced(samples.loc[eligible], s["internal_institutions"], s["external_institutions"])
    if lost.any():  # the folds as if those patients were left out, said beside
        eligible = list(lost.index[~lost.to_numpy()])
    try:
        check.split = split_cohorts(samples, clinical, eligible, s["internal_institutions"],
                                    s["external_institutions"], s["train_fraction"], config["seed"])
    except CtithError as exc:
        check.problems.append(str(exc))
        return check
    events = clinical["dm_event"]
    check.problems += fold_problems(check.split, events, config["crossfit"]["folds"])
    check.warnings += cohort_size_warnings(check.split, events)
    if lost.any():  # a split without them is not the study's
        check.split = None
    return check
