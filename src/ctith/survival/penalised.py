"""Penalised Cox models for the clinical and combined models (``survival.clinical_selection:
penalised``, the default).

At a few dozen events, univariable screening then backward AIC keeps noise variables and
over-fits (Steyerberg, *Clinical Prediction Models*, ch. 11). Here every candidate clinical
column and every signature enter one elastic-net Cox model (scikit-survival's
``CoxnetSurvivalAnalysis``) on standardised covariates; the penalty is chosen by
cross-validated partial likelihood (Verweij & van Houwelingen 1993) on the shared
cross-fitting folds of the training cohort, so it is chosen on the same folds that gave the
signatures their out-of-fold values. Signatures may be left unpenalised: they are the
hypothesis under test, and each is already one shrunken, cross-fitted score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .clinical import ClinicalEncoder
from .cox import CoxModel, SurvivalError, efron_log_likelihoods, surv_array
from .fitting import model_record
from .tables import HORIZONS


@dataclass(frozen=True)
class PenaltyParams:
    """``survival.penalised`` in the config."""

    l1_ratio: float = 0.5  # 1: lasso; towards 0: ridge (0 itself is not allowed by Coxnet)
    n_alphas: int = 50
    alpha_min_ratio: float = 0.01
    rule: str = "min"  # min: the best cross-validated likelihood; 1se: the largest penalty within 1 SE of it
    penalise_signatures: bool = False


def _standardise(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = X.to_numpy(dtype=float)
    mean, sd = values.mean(axis=0), values.std(axis=0)
    constant = sd <= 1e-12
    if constant.any():
        raise SurvivalError(f"covariate(s) {list(X.columns[constant])} take one value in the training cohort")
    return (values - mean) / sd, mean, sd


def _varying(X: pd.DataFrame) -> list[str]:
    """Columns that vary: a level absent from a bootstrap resample cannot be estimated there,
    and its coefficient is 0."""
    return [c for c in X.columns if X[c].std(ddof=0) > 1e-12]


def _coxnet(params: PenaltyParams, penalty_factor, alphas=None):
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    return CoxnetSurvivalAnalysis(l1_ratio=params.l1_ratio, n_alphas=params.n_alphas, alphas=alphas,
                                  alpha_min_ratio=params.alpha_min_ratio, penalty_factor=penalty_factor,
                                  max_iter=100000)


def _path(Z, time, event, params, penalty_factor, alphas=None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients along the penalty path, (n_features, n_alphas), and the alphas."""
    est = _coxnet(params, penalty_factor, alphas)
    try:
        est.fit(Z, surv_array(time, event))
    except ArithmeticError as exc:  # Coxnet diverges where a covariate separates the events
        raise SurvivalError(f"the penalised Cox path did not converge ({exc}); raise "
                            "survival.penalised.alpha_min_ratio") from exc
    return np.asarray(est.coef_, dtype=float), np.asarray(est.alphas_, dtype=float)


def cross_validated_likelihood(Z, time, event, folds, alphas, params, penalty_factor) -> np.ndarray:
    """Verweij & van Houwelingen's cross-validated partial likelihood, per fold and alpha,
    (n_folds, n_alphas): the log partial likelihood of all training patients at the
    coefficients fitted without fold k, minus that of the patients outside fold k. Each
    fold's term is what the held-out patients add to the likelihood, so sums over folds
    compare penalties without a fold's size biasing it."""
    folds = np.asarray(folds)
    out = []
    for k in np.unique(folds):
        inner = folds != k
        if not event[inner].any():
            raise SurvivalError(f"cross-fitting fold {k}: no event outside it to fit the penalised Cox model")
        coefs, _ = _path(Z[inner], time[inner], event[inner], params, penalty_factor, alphas)
        # Coxnet ends a path early once the deviance stops changing; the smaller penalties
        # would give the same fit, so their coefficients are the last ones.
        coefs = np.concatenate([coefs, np.repeat(coefs[:, -1:], len(alphas) - coefs.shape[1], axis=1)], axis=1)
        out.append(efron_log_likelihoods(Z, time, event, coefs)
                   - efron_log_likelihoods(Z[inner], time[inner], event[inner], coefs))
    return np.asarray(out)


def choose_alpha(alphas, cvpl, rule: str = "min") -> int:
    """Index of the chosen alpha: the largest cross-validated likelihood, or (``1se``) the
    largest alpha whose likelihood is within one standard error (across folds) of it."""
    total = cvpl.sum(axis=0)
    best = int(np.argmax(total))
    if rule == "min":
        return best
    if rule != "1se":
        raise SurvivalError(f"survival.penalised.rule {rule!r}: 'min' or '1se'")
    se = cvpl[:, best].std(ddof=1) * np.sqrt(cvpl.shape[0]) if cvpl.shape[0] > 1 else 0.0
    ok = np.flatnonzero(total >= total[best] - se)
    return int(ok[np.argmax(alphas[ok])])


def fit_penalised_cox(X: pd.DataFrame, time, event, folds, params: PenaltyParams,
                      unpenalised=()) -> tuple[CoxModel, dict]:
    """Fit the elastic-net Cox model on the training patients (rows of X), the penalty by
    cross-validated partial likelihood on ``folds`` (each training patient's fold).

    Returns a ``CoxModel`` on the covariates kept (non-zero coefficients, on their own
    scale; the baseline hazard by Breslow's estimator at the penalised coefficients) and
    what was decided: the path, the cross-validated likelihood per alpha, the alpha chosen,
    every candidate's coefficient."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    if not event.any():
        raise SurvivalError(f"the training cohort ({len(time)} patients) has no event: a Cox model cannot be fitted")
    constant = [c for c in X.columns if c not in _varying(X)]
    X = X[_varying(X)]
    Z, mean, sd = _standardise(X)
    factor = np.array([0.0 if (c in unpenalised and not params.penalise_signatures) else 1.0 for c in X.columns])
    if not factor.any():
        raise SurvivalError("every covariate is unpenalised: fit a plain Cox model instead")
    coefs, alphas = _path(Z, time, event, params, factor)
    cvpl = cross_validated_likelihood(Z, time, event, folds, alphas, params, factor)
    chosen = choose_alpha(alphas, cvpl, params.rule)
    beta = coefs[:, chosen] / sd  # back to each covariate's own unit
    keep = [c for c, b in zip(X.columns, beta) if b != 0.0]
    model = CoxModel.from_coefficients(X[keep], time, event, beta[beta != 0.0], penalizer=float(alphas[chosen]))
    record = {
        "method": "elastic-net Cox (scikit-survival CoxnetSurvivalAnalysis), standardised covariates",
        "params": asdict(params), "unpenalised": [c for c, f in zip(X.columns, factor) if f == 0.0],
        "alpha": float(alphas[chosen]), "alpha_index": chosen, "alphas": alphas.tolist(),
        "cv_partial_likelihood": cvpl.sum(axis=0).tolist(),
        "candidates": {c: float(b) for c, b in zip(X.columns, beta)},
        "kept": keep, "constant": constant,
    }
    return model, record


def clinical_candidates(clinical: pd.DataFrame, spec: dict, train) -> tuple[pd.DataFrame, dict]:
    """Every candidate clinical variable, encoded with levels from the training patients
    (``train``: their IDs) only; the penalised fit then decides which to keep. Returns the
    encoded columns of the rows of ``clinical`` and the record for the model file (the
    penalised fit fills in ``chosen``)."""
    enc = ClinicalEncoder(spec).fit(clinical.loc[train])
    return enc.transform(clinical), {"encoder": enc.to_dict(), "chosen": list(spec), "columns": enc.describe(),
                                     "encoder_columns": enc.columns_, "selection": None}


def fit_penalised_model(name: str, X: pd.DataFrame, outcome: pd.DataFrame, folds, params: PenaltyParams,
                        unpenalised=(), horizons=HORIZONS) -> dict:
    """``fit_penalised_cox`` on the training patients (rows of X; ``outcome``: ``dm_time_months``
    and ``dm_event``; ``folds``: their cross-fitting folds, aligned with X), as the model
    file's content (``survival.model_record``) with the penalised fit's record under
    ``penalised``."""
    model, record = fit_penalised_cox(X, outcome.loc[X.index, "dm_time_months"], outcome.loc[X.index, "dm_event"],
                                      np.asarray(folds), params, unpenalised)
    fitted = model_record(name, model, X[model.feature_names_], horizons)
    fitted["penalised"] = record
    return fitted


def model_building_table(fitted: dict) -> pd.DataFrame:
    """One row per model: how it was built, its events per candidate and per kept parameter,
    the penalty chosen (penalised) and the covariates kept with their coefficients."""
    rows = []
    for f in fitted.values():
        epv = f.get("events_per_variable", {})
        pen = f.get("penalised") or {}
        rows.append({
            "Model": f["name"], "Selection": f.get("selection", ""), "Events": epv.get("events"),
            "Candidate parameters": epv.get("candidate_parameters"), "EPV (candidates)": epv.get("epv_candidates"),
            "Kept parameters": epv.get("kept_parameters"), "EPV (kept)": epv.get("epv_kept"),
            "Penalty (alpha)": f"{pen['alpha']:.4g}" if pen else "-",
            "Coefficients (log-HR per unit)": ", ".join(f"{n} {c:+.3f}" for n, c in zip(f["features"], f["coef"]))
                                              or "none kept (baseline only)",
        })
    return pd.DataFrame(rows)
