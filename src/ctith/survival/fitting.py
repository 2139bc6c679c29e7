"""One survival model, fitted on the training cohort and evaluated, frozen, on every cohort.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .cox import CoxModel, SurvivalError
from .metrics import bootstrap_indices, survival_metrics
from .tables import HORIZONS, metrics_rows, predictions_table, risk_cutoff

if TYPE_CHECKING:
    import pandas as pd


TRAIN = "train"


def fit_cox_model(name: str, X: pd.DataFrame, outcome: pd.DataFrame, penalizer: float = 0.0,
                  horizons=HORIZONS) -> dict:
    """Fit one Cox model on the training patients (the rows of X; ``outcome``:
    ``dm_time_months`` and ``dm_event``). Returns the model file's content: coefficients,
    baseline, the risk cut-off (the training median), horizons and follow-up range."""
    if len(X) == 0:
        raise SurvivalError(f"model {name}: no training patient")
    t_tr = outcome.loc[X.index, "dm_time_months"].to_numpy(dtype=float)
    e_tr = outcome.loc[X.index, "dm_event"].to_numpy().astype(bool)
    return model_record(name, CoxModel(penalizer=penalizer).fit(X, t_tr, e_tr), X, horizons)


def model_record(name: str, model: CoxModel, X: pd.DataFrame, horizons=HORIZONS) -> dict:
    """The model file's content of a Cox model fitted on the rows of X (training patients)."""
    risk = model.predict_risk(X)
    # The training risks' distribution (5% steps; no patient's own value): where a new
    # patient's risk falls, on the one-page prediction report.
    return {"name": name, **model.to_dict(), "risk_cutoff": risk_cutoff(risk),
            "training_risk_quantiles": np.quantile(risk, np.linspace(0, 1, 21)).tolist(),
            "horizons": list(horizons), "training_follow_up_months": list(model.train_time_range_)}


def events_per_variable(n_events: int, candidate_parameters: int, kept_parameters: int) -> dict:
    """Events per candidate parameter (what the model building spent) and per kept one."""
    def ratio(k):
        return round(n_events / k, 2) if k else None

    return {"events": int(n_events), "candidate_parameters": int(candidate_parameters),
            "kept_parameters": int(kept_parameters), "epv_candidates": ratio(candidate_parameters),
            "epv_kept": ratio(kept_parameters)}


def evaluate_model(fitted: dict, X: pd.DataFrame, covariates: pd.Series, outcome: pd.DataFrame, cohort: pd.Series,
                   n_bootstrap: int = 1000, seed: int = 0,
                   subgroups: pd.Series | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """A fitted model (``fit_cox_model``'s record), frozen, on every patient of X: the
    per-patient predictions and the long-form metrics per cohort (training rows are
    apparent). ``covariates`` says 'oof' or 'refit' per patient. ``subgroups``: a further
    label per patient (e.g. 'external_validation:B', ``institution_subgroups``), blank for
    none; each label gets its own metric rows beside its cohort's."""
    model = CoxModel.from_dict(fitted)
    horizons = fitted["horizons"]
    cohort = cohort.reindex(X.index)
    train = X.index[(cohort == TRAIN).to_numpy()]
    if len(train) == 0:
        raise SurvivalError(f"model {fitted['name']}: no training patient to evaluate against")
    t_tr = outcome.loc[train, "dm_time_months"].to_numpy(dtype=float)
    e_tr = outcome.loc[train, "dm_event"].to_numpy().astype(bool)
    predictions = predictions_table(model, X, cohort, covariates, fitted["risk_cutoff"], horizons)
    rows = []
    for c, ids in evaluation_groups(X.index, cohort, subgroups):
        t = outcome.loc[ids, "dm_time_months"].to_numpy(dtype=float)
        e = outcome.loc[ids, "dm_event"].to_numpy().astype(bool)
        risk = model.predict_risk(X.loc[ids])
        r = survival_metrics(t_tr, e_tr, t, e, risk, model.predict_survival(X.loc[ids], horizons), horizons,
                             n_bootstrap, seed)
        rows += metrics_rows(fitted["name"], c, r)
        rows += cohort_calibration_rows(fitted["name"], c, t, e, risk, model.baseline_cumulative_hazard, horizons,
                                        n_bootstrap, seed)
    return predictions, rows


def evaluation_groups(index, cohort: pd.Series, subgroups: pd.Series | None = None) -> list:
    """(label, patient IDs) to evaluate on, in ``index``'s order: training, each other cohort,
    then each subgroup label (``institution_subgroups``)."""
    cohort = cohort.reindex(index)
    groups = [(c, index[(cohort == c).to_numpy()]) for c in [TRAIN] + sorted(set(cohort.dropna()) - {TRAIN})]
    if subgroups is not None:
        sub = subgroups.reindex(index).fillna("")
        groups += [(g, index[(sub == g).to_numpy()]) for g in sorted(set(sub) - {""})]
    return groups


def cohort_calibration_rows(name, cohort, time, event, risk, baseline_cumhaz_at, horizons, n_bootstrap, seed):
    """Calibration intercept and slope per horizon on the resamples every metric uses."""
    from .calibration import calibration_metrics, calibration_rows

    indices = bootstrap_indices(len(time), n_bootstrap, seed)
    cal = calibration_metrics(time, event, risk, baseline_cumhaz_at, horizons, indices)
    return calibration_rows(name, cohort, cal, len(time), int(np.sum(event)), n_bootstrap)


def fit_and_evaluate(name: str, X: pd.DataFrame, covariates: pd.Series, outcome: pd.DataFrame, cohort: pd.Series,
                     penalizer: float = 0.0, horizons=HORIZONS, n_bootstrap: int = 1000,
                     seed: int = 0) -> tuple[dict, pd.DataFrame, list[dict]]:
    """Fit one Cox model on the training cohort and evaluate it, frozen, on every cohort.

    ``X``: covariates of every patient (training rows out-of-fold where they come from a
    fitted signature; ``covariates`` says 'oof' or 'refit' per patient). ``outcome``:
    ``dm_time_months`` and ``dm_event``. ``cohort``: 'train' or a validation cohort's name.
    Returns the model file's content, the per-patient predictions and the long-form
    metrics. Nothing here reads a validation patient's outcome before the model and
    cut-off exist.
    """
    train = X.index[(cohort.reindex(X.index) == TRAIN).to_numpy()]
    fitted = fit_cox_model(name, X.loc[train], outcome, penalizer, horizons)
    return (fitted, *evaluate_model(fitted, X, covariates, outcome, cohort, n_bootstrap, seed))
