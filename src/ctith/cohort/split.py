"""Cohort assignment: the sheet's ``cohort`` column, or a seeded stratified split.

Patients whose sheet row names a cohort keep it. The others are assigned by
institution: an external institution's patients form the external validation cohort;
an internal institution's are split by a seeded split stratified by the DM event into
training and internal validation (142:31 of 173 by default, as in the paper's Table S2). The split depends
only on the set of patients, the seed and the outcome, never on the sheet's row order.
Adding patients can move others across the train/validation line: to freeze a split,
copy ``results/cohort/split.tsv``'s cohort column into the sample sheet.

The workflow computes the split when it parses the sheets, so that a fit rule's inputs
are the training patients' files only (``training_sheets``): a new validation or
``predict`` patient then leaves every fitted file alone.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from ..errors import InputError

COHORTS = ("train", "internal_validation", "external_validation", "predict")
# The paper's split of its 173 internal patients, 142 training and 31 internal validation:
# train_test_split floors the training count, and floor(0.821 x 173) = 142.
TRAIN_FRACTION = 0.821


def unplaced(patients: pd.DataFrame, internal_institutions, external_institutions) -> pd.Series:
    """True for each patient (a row with institution and cohort) whose cohort the split
    must decide but whose institution neither split list names."""
    named = set(map(str, internal_institutions)) | set(map(str, external_institutions))
    return (patients["cohort"].fillna("").astype(str) == "") & ~patients["institution"].astype(str).isin(named)


def assign_cohorts(patients: pd.DataFrame, internal_institutions, external_institutions,
                   train_fraction: float = TRAIN_FRACTION, seed: int = 0) -> pd.DataFrame:
    """patients: patient_id, institution, cohort ('' = assign), event (0/1).

    Returns patient_id, institution, cohort, assigned_by ('sample sheet' or 'split').
    """
    df = patients.sort_values("patient_id").reset_index(drop=True)
    out = df[["patient_id", "institution"]].copy()
    out["cohort"] = df["cohort"].fillna("").astype(str)
    out["assigned_by"] = ["sample sheet" if c else "split" for c in out["cohort"]]
    blank = out["cohort"] == ""
    internal, external = set(map(str, internal_institutions)), set(map(str, external_institutions))
    lost = unplaced(out, internal, external)
    if lost.any():
        i = out.index[lost][0]
        raise InputError(f"institution '{out.at[i, 'institution']}' is in neither split.internal_institutions nor "
                         "split.external_institutions, and the sample sheet gives no cohort", out.at[i, "patient_id"])
    out.loc[blank & out["institution"].astype(str).isin(external), "cohort"] = "external_validation"
    todo = out.index[blank & out["institution"].isin(internal)]
    if len(todo):
        y = df.loc[todo, "event"].astype(int)
        # Stratify within each internal institution so each keeps the train fraction.
        strata = df.loc[todo, "institution"].astype(str) + ":" + y.astype(str)
        stratify = strata if strata.value_counts().min() >= 2 else y if y.value_counts().min() >= 2 else None
        try:
            train, valid = train_test_split(list(todo), train_size=train_fraction, random_state=seed,
                                            shuffle=True, stratify=stratify)
        except ValueError as exc:  # too few patients for the fraction to leave one on each side
            raise InputError(f"the internal institutions' {len(todo)} patients to split cannot be split at "
                             f"split.train_fraction {train_fraction} ({exc})") from None
        out.loc[train, "cohort"] = "train"
        out.loc[valid, "cohort"] = "internal_validation"
    return out


def split_cohorts(samples: pd.DataFrame, clinical: pd.DataFrame, eligible, internal_institutions,
                  external_institutions, train_fraction: float = TRAIN_FRACTION, seed: int = 0) -> pd.DataFrame:
    """The split of the eligible patients, from the validated sheets (``sheets.Inputs``:
    indexed by patient_id). A ``predict`` patient keeps that cohort and has no say in the
    draw: it has no outcome, and the study's split must not move when one arrives."""
    eligible = list(eligible)
    s = samples.loc[eligible]
    event = clinical.reindex(eligible)["dm_event"]
    patients = pd.DataFrame({"patient_id": s["patient_id"].to_numpy(), "institution": s["institution"].to_numpy(),
                             "cohort": s["cohort"].to_numpy(), "event": event.fillna(0).to_numpy()})
    split = assign_cohorts(patients, internal_institutions, external_institutions, train_fraction, seed)
    train = split["cohort"] == "train"
    if train.any() and not patients.set_index("patient_id").loc[split.loc[train, "patient_id"], "event"].astype(int).any():
        # Every fit would fail on its own, each with its own message: say it once, first.
        raise InputError(f"the training cohort's {int(train.sum())} patients include no distant metastasis "
                         "(dm_event = 1): no model can learn to predict it")
    return split


def training_sheets(split: pd.DataFrame, samples: pd.DataFrame, clinical_raw: pd.DataFrame, id_column: str,
                    path_columns=()) -> dict[str, pd.DataFrame]:
    """The training patients' rows of the split, the sample sheet (without its file paths,
    which are relative to the sheet's own folder) and the clinical table as the user wrote
    it (``clinical_raw``, its patient ID in ``id_column``): what every fit reads, and all
    it reads of the sheets.

    Only what a fit uses goes in: not how each patient's cohort was decided (the split's
    ``assigned_by``, the sample sheet's ``cohort``). Freezing a split by copying its cohort
    column into the sample sheet then leaves these sheets, and every fit, as they were."""
    train = split.loc[split["cohort"] == "train"].sort_values("patient_id")
    ids = train["patient_id"].tolist()
    keep = [c for c in samples.columns if c not in path_columns and c != "cohort"]
    clinical = clinical_raw.loc[clinical_raw[id_column].str.strip().isin(ids)]  # IDs are read stripped
    return {"split": train.drop(columns="assigned_by", errors="ignore").reset_index(drop=True),
            "samples": samples.loc[ids, keep].reset_index(drop=True),
            "clinical": clinical.sort_values(id_column).reset_index(drop=True)}
