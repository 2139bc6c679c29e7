"""Cross-fitting folds shared by every signature that feeds a survival model.

A signature used as a covariate must score each training patient with a model that never
saw that patient (out-of-fold), or the survival model over-weights it. All signatures
(ITH model, Rad-score, DL) use one fold assignment: stratified on DM, seeded, keyed by
patient ID (not by row order), so that every stage, in any row order, agrees on it.
Validation patients are scored by the model refitted on all training patients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import CtithError

if TYPE_CHECKING:
    import pandas as pd

OOF, REFIT = "oof", "refit"


class CrossfitError(CtithError):
    pass


def training_or_refit(refit: pd.Series, cohort: pd.Series, training: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A score that feeds another model: a training patient's value from the fit (``training``,
    by patient: out of fold with cross-fitting folds), everyone else's from the refitted model
    (``refit``). Returns the values in ``refit``'s order and the training mask; a training
    patient the fit did not score (a model fitted on another split) is an error."""
    import pandas as pd

    is_train = (cohort.reindex(refit.index) == "train").to_numpy()
    missing = refit.index[is_train & ~refit.index.isin(training.index)]
    if len(missing):
        raise CrossfitError(f"patient {missing[0]}: a training patient the fit did not score; was the model "
                            "fitted on another split?")
    values = np.where(is_train, pd.to_numeric(training.reindex(refit.index)).to_numpy(), refit.to_numpy())
    return values, is_train


def assign_folds(patient_ids, event, n_folds: int, seed: int) -> pd.Series:
    """Fold number (0..n_folds-1) of each training patient: scikit-learn's shuffled
    ``StratifiedKFold`` on DM status, over the patients sorted by ID."""
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    y = pd.Series(np.asarray(event).astype(int), index=pd.Index(patient_ids, name="patient_id")).sort_index()
    if y.index.has_duplicates:
        raise CrossfitError(f"patient {y.index[y.index.duplicated()][0]} appears twice in the training cohort")
    smaller = int(np.bincount(y.to_numpy(), minlength=2).min())
    if smaller < n_folds:
        raise CrossfitError(f"the training cohort has {smaller} patients of its smaller DM class; stratified "
                            f"{n_folds}-fold cross-fitting needs at least {n_folds}: lower crossfit.folds")
    fold = np.empty(len(y), dtype=int)
    for k, (_, te) in enumerate(StratifiedKFold(n_folds, shuffle=True, random_state=seed)
                                .split(np.zeros(len(y)), y.to_numpy())):
        fold[te] = k
    return pd.Series(fold, index=y.index, name="fold")


def merge_folds(folds: pd.Series, n_groups: int) -> pd.Series:
    """Fold k becomes group k mod ``n_groups``: fewer, larger folds for a costly model (the
    network's cross-fitting needs out-of-fold scores, not ten nets), while the cheap ones keep
    ``folds``. Stratified folds deal each DM class round-robin, so the unions stay stratified;
    modulo pairs the first (larger) folds with the last. ``n_groups`` at or above the number of
    folds leaves them as they are."""
    n_folds = len(set(folds.tolist()))
    if n_groups < 2:
        raise CrossfitError(f"cross-fitting needs at least 2 folds, not {n_groups}")
    if n_groups >= n_folds:
        return folds.copy()
    return (folds % n_groups).rename(folds.name)


def fold_positions(folds: pd.Series, patient_ids) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, held-out rows) per fold, as positions in ``patient_ids``' order."""
    ids = list(patient_ids)
    missing = [p for p in ids if p not in folds.index]
    if missing:
        raise CrossfitError(f"patient {missing[0]} is a training patient without a cross-fitting fold")
    f = folds.reindex(ids).to_numpy()
    return [(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in sorted(set(f.tolist()))]


def read_folds(path) -> pd.Series:
    from ..io import read_table

    t = read_table(path)
    return t.set_index("patient_id")["fold"].astype(int)


def two_stage_scores(refit_features: pd.DataFrame, fold_features: dict, folds: pd.Series, fit,
                     name: str = "score", groups: pd.Series | None = None) -> tuple[pd.DataFrame, object, dict]:
    """Cross-fit a score computed from features that a fitted model made (e.g. DL_F: the
    network's deep features, then a LASSO-Cox on them).

    ``refit_features``: every patient's features from the first-stage model fitted on all
    training patients. ``fold_features``: fold k -> the training patients' features from
    the first-stage model fitted without fold k. ``fit(X, folds)`` fits the second stage on
    the rows of X (training patients; ``folds`` gives their folds, for its own tuning) and
    returns an object with ``predict(X) -> Series``. ``groups`` (default ``folds``): the
    cross-fitting group of each training patient, when the first stage held out merged folds
    (:func:`merge_folds`); ``fold_features`` is then keyed by group, and the second stages
    still tune on ``folds``.

    A training patient of group k is scored by group k's second stage on group k's features
    (neither stage saw them); every other patient by the refit of both stages. Returns the
    table (patient_id, ``name``, fit, ``name``_refit) in ``refit_features``' row order, the
    refitted second stage and the group second stages.
    """
    import pandas as pd

    train = folds.index
    missing = train.difference(refit_features.index)
    if len(missing):
        raise CrossfitError(f"patient {missing[0]} has a cross-fitting fold but no first-stage features")
    refit = fit(refit_features.loc[train], folds)
    refit_score = refit.predict(refit_features)
    score = refit_score.copy()
    groups = folds if groups is None else groups.reindex(train)
    if groups.isna().any():
        raise CrossfitError(f"patient {groups.index[groups.isna()][0]} has a cross-fitting fold but no group")
    models = {}
    for k in sorted(set(groups.tolist())):
        if k not in fold_features:
            raise CrossfitError(f"no first-stage model was fitted without fold {k}")
        feats = fold_features[k]
        held, rest = train[(groups == k).to_numpy()], train[(groups != k).to_numpy()]
        absent = held.append(rest).difference(feats.index)
        if len(absent):
            raise CrossfitError(f"patient {absent[0]}: no features from the model fitted without fold {k}")
        models[k] = fit(feats.loc[rest], folds.loc[rest])
        score.loc[held] = models[k].predict(feats.loc[held]).to_numpy()
    is_train = refit_features.index.isin(train)
    table = pd.DataFrame({"patient_id": refit_features.index, name: score.to_numpy(),
                          "fit": np.where(is_train, OOF, REFIT), f"{name}_refit": refit_score.to_numpy()})
    return table, refit, models
