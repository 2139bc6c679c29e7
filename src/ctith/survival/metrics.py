"""A frozen survival model's metrics on one cohort.

``survival_metrics`` uses scikit-survival's metrics: Harrell's and Uno's C, the
cumulative/dynamic AUC per horizon and the integrated Brier score, each with a percentile
bootstrap CI over resampled patients. A horizon that the data cannot support gives None,
never a number computed from nothing. The time-dependent ROC and calibration points behind
the survival figures are here too; the decision curves are in :mod:`.decision`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from .cox import SurvivalError, surv_array

if TYPE_CHECKING:
    import pandas as pd


def horizon_problem(time_train, event_train, time_test, event_test, t: float) -> str | None:
    """Why the cumulative/dynamic AUC and the Brier score cannot be evaluated at ``t``
    on this cohort (None when they can). scikit-survival needs min(test time) <= t <
    max(test time), a censoring distribution (Kaplan-Meier of the training cohort) that
    is still positive at t, at least one case (event by t) and one control (still event-free
    after t)."""
    time_train, time_test = np.asarray(time_train, float), np.asarray(time_test, float)
    event_train, event_test = np.asarray(event_train, bool), np.asarray(event_test, bool)
    if not time_test.min() <= t < time_test.max():
        return f"outside the cohort's follow-up [{time_test.min():g}, {time_test.max():g})"
    if t >= time_train.max():
        return f"beyond the training cohort's follow-up ({time_train.max():g})"
    if not (event_test & (time_test <= t)).any():
        return "no event by this time"
    if not (time_test > t).any():
        return "no patient event-free after this time"
    if _censoring_survival(time_train, event_train, time_test[event_test & (time_test <= t)]).min() <= 0:
        return "the training cohort's censoring distribution reaches zero"
    return None


def _censoring_survival(time_train, event_train, at) -> np.ndarray:
    """Kaplan-Meier of the censoring times (censoring as the event), as scikit-survival's
    IPCW weights use it."""
    from sksurv.nonparametric import CensoringDistributionEstimator

    cens = CensoringDistributionEstimator().fit(surv_array(time_train, event_train))
    at = np.asarray(at, dtype=float)
    if at.size == 0:
        return np.ones(1)
    with np.errstate(all="ignore"):
        try:
            return cens.predict_proba(at)
        except ValueError:  # beyond the last training time with a censoring probability left
            return np.zeros(1)


def bootstrap_indices(n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """Resamples of n patients, (n_bootstrap, n). Depends only on (n, n_bootstrap, seed), so
    every model evaluated on one cohort with one seed sees the same resamples (paired)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_bootstrap, n))


def _point_metrics(y_train, time_test, event_test, risk, surv, times, ok_times):
    from sksurv.metrics import (concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc,
                                integrated_brier_score)

    y_test = surv_array(time_test, event_test)
    out = {"c_index": None, "uno_c": None, "auc": {t: None for t in times}, "ibs": None, "auc_dm": None}
    if 0 < event_test.sum() < len(event_test):
        from sklearn.metrics import roc_auc_score

        out["auc_dm"] = float(roc_auc_score(event_test, risk))
    if event_test.any() and len(np.unique(time_test)) > 1:
        try:
            out["c_index"] = float(concordance_index_censored(event_test, time_test, risk)[0])
        except ValueError:  # no comparable pair
            pass
    if not ok_times:
        return out
    tau = max(ok_times)
    try:
        out["uno_c"] = float(concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0])
    except (ValueError, ZeroDivisionError):
        pass
    # scikit-survival weights every event of the cohort by the censoring distribution, also
    # events after the last horizon, where it may have reached zero. Censoring the follow-up
    # just after the last horizon changes no case, control or weight at any horizon up to
    # it, so the AUC and Brier scores are exactly those of the full follow-up.
    end = np.nextafter(tau, np.inf)
    y_cut = surv_array(np.minimum(time_test, end), event_test & (time_test <= tau))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        auc, _ = cumulative_dynamic_auc(y_train, y_cut, risk, np.asarray(ok_times, float))
    for t, a in zip(ok_times, auc):
        out["auc"][t] = float(a) if np.isfinite(a) else None
    if len(ok_times) >= 2:
        cols = [times.index(t) for t in ok_times]
        out["ibs"] = float(integrated_brier_score(y_train, y_cut, surv[:, cols], np.asarray(ok_times, float)))
    return out


class _ResampledMetrics:
    """``_point_metrics`` for bootstrap resamples of one cohort, in numpy.

    scikit-survival's metrics refit the censoring Kaplan-Meier and validate their inputs on
    every call (about 20 ms a resample); here the censoring probabilities are computed once
    per patient and horizon, and a resample only indexes them. Same definitions as
    scikit-survival: Harrell's and Uno's comparable pairs (an event against later times and
    against censoring at its own time), risks within 1e-8 tied (half a pair), cases by t
    weighted by 1/G(T), Brier scores with 1/G(T) and 1/G(t). Tested equal to
    ``_point_metrics`` on resamples with tied times and tied risks.
    """

    tol = 1e-8

    def __init__(self, time_train, event_train, time, event, risk, surv, times, ok):
        self.time, self.event, self.risk, self.surv = time, event, risk, surv
        self.times, self.ok = times, ok
        self.cols = {t: times.index(t) for t in ok}
        self.t_train_max = float(np.max(time_train))
        if ok:
            end = np.nextafter(max(ok), np.inf)
            g_y = _censoring_survival(time_train, event_train, np.minimum(time, end))
            g_y = np.where(event & (time <= max(ok)), g_y, np.inf)  # only events by the last horizon weigh
            self.inv_g_y = np.where(np.isfinite(g_y) & (g_y > 0), 1.0 / g_y, 0.0)
            self.inv_g_t = {t: 1.0 / _censoring_survival(time_train, event_train, [t])[0] for t in ok}

    def supported(self, T, E) -> list:
        return [t for t in self.ok if T.min() <= t < T.max() and (E & (T <= t)).any() and (T > t).any()]

    def __call__(self, idx) -> dict:
        T, E, r = self.time[idx], self.event[idx], self.risk[idx]
        out = {"c_index": None, "uno_c": None, "auc": {t: None for t in self.times}, "ibs": None, "auc_dm": None}
        diff = r[:, None] - r[None, :]  # row: the event, column: the comparison
        tie = np.abs(diff) <= self.tol
        score = (diff > 0) & ~tie
        pair = E[:, None] & ((T[None, :] > T[:, None]) | ((T[None, :] == T[:, None]) & ~E[None, :]))
        value = np.where(pair, score + 0.5 * tie, 0.0)
        if E.any() and len(np.unique(T)) > 1 and pair.any():
            out["c_index"] = float(value.sum() / pair.sum())
        if 0 < E.sum() < len(E):
            mw = (r[E][:, None] > r[~E][None, :]) + 0.5 * (r[E][:, None] == r[~E][None, :])
            out["auc_dm"] = float(mw.mean())
        ok = self.supported(T, E)
        if not ok:
            return out
        tau = max(ok)
        w = np.where(E & (T < tau), self.inv_g_y[idx], 0.0) ** 2
        den = (w[:, None] * pair).sum()
        if den > 0:
            out["uno_c"] = float((w[:, None] * value).sum() / den)
        inv_g = self.inv_g_y[idx]
        briers = []
        for t in ok:
            case, control = E & (T <= t), T > t
            wc = np.where(case, inv_g, 0.0)
            num = (wc[:, None] * control[None, :] * ((diff > 0) & ~tie) + 0.5 * wc[:, None] * control[None, :] * tie)
            out["auc"][t] = float(num.sum() / (wc.sum() * control.sum()))
            s = self.surv[idx, self.cols[t]]
            briers.append(np.mean(s ** 2 * wc + (1 - s) ** 2 * control * self.inv_g_t[t]))
        if len(ok) >= 2:
            out["ibs"] = float(np.trapezoid(briers, ok) / (ok[-1] - ok[0]))
        return out


def survival_metrics(time_train, event_train, time_test, event_test, risk, surv, times, n_bootstrap: int = 1000,
                     seed: int = 0, indices: np.ndarray | None = None) -> dict:
    """Metrics of a frozen model's predictions on one cohort.

    ``risk``: higher means earlier DM (the linear predictor; never a survival probability).
    ``surv``: S(t | x) at ``times``, shape (n_patients, len(times)), for the Brier score.
    The training cohort's outcomes serve only the IPCW censoring distribution.

    Returns Harrell's C (``c_index``, ``c_index_ci``), Uno's C (``uno_c``, ``uno_c_ci``),
    ``auc[t] = (value, lo, hi)`` or None per horizon (lo, hi None without resamples),
    ``auc_dm`` (the risk's ROC AUC for DM status, as Table S2 and S4 report) and ``auc_dm_ci``, ``ibs`` (over the horizons this cohort
    supports, ``ibs_times``) and ``ibs_ci``, ``n_bootstrap_used`` (resamples that gave Harrell's
    C) and per horizon ``n_bootstrap_skipped``. CIs are 2.5/97.5 percentiles of the
    resampled values; every resample is drawn from ``bootstrap_indices(n, n_bootstrap, seed)``
    unless ``indices`` are given.
    """
    times = [float(t) for t in times]
    time_train, event_train = np.asarray(time_train, float), np.asarray(event_train).astype(bool)
    time_test, event_test = np.asarray(time_test, float), np.asarray(event_test).astype(bool)
    risk = np.asarray(risk, dtype=float)
    surv = np.asarray(surv, dtype=float).reshape(len(time_test), len(times))
    if risk.shape != time_test.shape:
        raise SurvivalError(f"{risk.size} risks for {time_test.size} patients")
    y_train = surv_array(time_train, event_train)

    def supported(tt, ee):
        return [t for t in times if horizon_problem(time_train, event_train, tt, ee, t) is None]

    ok = supported(time_test, event_test)
    point = _point_metrics(y_train, time_test, event_test, risk, surv, times, ok)
    if indices is None:
        indices = bootstrap_indices(len(time_test), n_bootstrap, seed)
    boot = {"c_index": [], "uno_c": [], "ibs": [], "auc_dm": [], **{t: [] for t in times}}
    resampled = _ResampledMetrics(time_train, event_train, time_test, event_test, risk, surv, times, ok)
    for idx in indices:
        b = resampled(idx)
        for key in ("c_index", "uno_c", "ibs", "auc_dm"):
            if b[key] is not None and point[key] is not None:
                boot[key].append(b[key])
        for t in ok:
            if b["auc"][t] is not None:
                boot[t].append(b["auc"][t])

    def ci(values, estimate):
        if estimate is None or not values:
            return None
        lo, hi = np.percentile(values, [2.5, 97.5])
        return (float(lo), float(hi))

    result = {
        "n": int(len(time_test)), "n_events": int(event_test.sum()),
        "c_index": point["c_index"], "c_index_ci": ci(boot["c_index"], point["c_index"]),
        "uno_c": point["uno_c"], "uno_c_ci": ci(boot["uno_c"], point["uno_c"]),
        "ibs": point["ibs"], "ibs_ci": ci(boot["ibs"], point["ibs"]), "ibs_times": ok if point["ibs"] else [],
        "auc_dm": point["auc_dm"], "auc_dm_ci": ci(boot["auc_dm"], point["auc_dm"]),
        "auc": {}, "n_bootstrap": int(len(indices)), "n_bootstrap_used": len(boot["c_index"]),
        "n_bootstrap_skipped": {},
        "horizon_problems": {t: horizon_problem(time_train, event_train, time_test, event_test, t) for t in times},
    }
    for t in times:
        a = point["auc"][t]
        c = ci(boot[t], a)
        result["auc"][t] = None if a is None else (a, *(c or (None, None)))
        result["n_bootstrap_skipped"][t] = int(len(indices) - len(boot[t])) if a is not None else int(len(indices))
    return result


def cumulative_dynamic_roc(time_train, event_train, time_test, event_test, risk, t: float):
    """The ROC curve behind ``cumulative_dynamic_auc`` at ``t``: cases had DM by t, weighted
    by the inverse of the training cohort's censoring distribution at their DM time;
    controls are still DM-free after t. Returns (false positive rate, true positive rate)
    from the highest cut-off down; their area is scikit-survival's AUC."""
    from sksurv.nonparametric import CensoringDistributionEstimator

    time_test, event_test = np.asarray(time_test, float), np.asarray(event_test, bool)
    risk = np.asarray(risk, float)
    cens = CensoringDistributionEstimator().fit(surv_array(time_train, event_train))
    case = event_test & (time_test <= t)
    control = time_test > t
    w = np.zeros(len(time_test))
    w[case] = 1.0 / cens.predict_proba(time_test[case])
    cut = np.unique(risk)[::-1]
    tpr = np.array([w[case & (risk >= c)].sum() for c in cut]) / w[case].sum()
    fpr = np.array([(control & (risk >= c)).sum() for c in cut]) / control.sum()
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


def calibration_points(time, event, predicted_dm, t: float, groups: int = 5):
    """Predicted against observed risk of DM by t, by quantile group of the prediction:
    mean predicted 1 - S(t | x) and the Kaplan-Meier estimate 1 - S(t) in each group."""
    from sksurv.nonparametric import kaplan_meier_estimator

    time, event, pred = np.asarray(time, float), np.asarray(event, bool), np.asarray(predicted_dm, float)
    order = np.argsort(pred, kind="stable")
    rows = []
    for idx in np.array_split(order, groups):
        if len(idx) == 0:
            continue
        x, s = kaplan_meier_estimator(event[idx], time[idx])
        known = time[idx].max() >= t
        observed = 1.0 - (s[x <= t][-1] if (x <= t).any() else 1.0) if known else np.nan
        rows.append({"predicted": float(pred[idx].mean()), "observed": float(observed), "n": int(len(idx))})
    return rows
