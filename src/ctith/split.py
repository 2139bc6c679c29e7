"""Cohort assignment: the sheet's ``cohort`` column, or a seeded stratified split.

Patients whose sheet row names a cohort keep it. The others are assigned by
institution: an external institution's patients form the external validation cohort;
an internal institution's are split by a seeded split stratified by the DM event into
training and internal validation (7:3 by default), as in the paper. The split depends
only on the set of patients, the seed and the outcome, never on the sheet's row order.
Adding patients can move others across the train/validation line: to freeze a split,
copy ``results/cohort/split.tsv``'s cohort column into the sample sheet.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from .errors import InputError

COHORTS = ("train", "internal_validation", "external_validation", "predict")


def assign_cohorts(patients: pd.DataFrame, internal_institutions, external_institutions,
                   train_fraction: float = 0.7, seed: int = 0) -> pd.DataFrame:
    """patients: patient_id, institution, cohort ('' = assign), event (0/1).

    Returns patient_id, institution, cohort, assigned_by ('sample sheet' or 'split').
    """
    df = patients.sort_values("patient_id").reset_index(drop=True)
    out = df[["patient_id", "institution"]].copy()
    out["cohort"] = df["cohort"].fillna("").astype(str)
    out["assigned_by"] = ["sample sheet" if c else "split" for c in out["cohort"]]
    blank = out["cohort"] == ""
    internal, external = set(map(str, internal_institutions)), set(map(str, external_institutions))
    for i in out.index[blank]:
        inst = out.at[i, "institution"]
        if inst in external:
            out.at[i, "cohort"] = "external_validation"
        elif inst not in internal:
            raise InputError(f"institution '{inst}' is in neither split.internal_institutions nor "
                             "split.external_institutions, and the sample sheet gives no cohort",
                             out.at[i, "patient_id"])
    todo = out.index[blank & out["institution"].isin(internal)]
    if len(todo):
        y = df.loc[todo, "event"].astype(int)
        # Stratify within each internal institution so each keeps its 7:3 proportion.
        strata = df.loc[todo, "institution"].astype(str) + ":" + y.astype(str)
        stratify = strata if strata.value_counts().min() >= 2 else y if y.value_counts().min() >= 2 else None
        train, valid = train_test_split(list(todo), train_size=train_fraction, random_state=seed,
                                        shuffle=True, stratify=stratify)
        out.loc[train, "cohort"] = "train"
        out.loc[valid, "cohort"] = "internal_validation"
    return out
