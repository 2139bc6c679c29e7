"""Survival models of time to distant metastasis, and their metrics (the paper's endpoint).

``CoxModel`` wraps scikit-survival's ``CoxPHSurvivalAnalysis`` with Efron's handling of
tied event times (as R and lifelines; scikit-survival's default is Breslow). Covariates
are centred at their training means, so the linear predictor and the Breslow baseline
are those of an average training patient, and the whole fitted model (coefficients,
means, baseline cumulative hazard) is plain numbers: ``to_dict``/``from_dict`` round-trip
it through JSON, and a frozen model scores new patients without refitting or unpickling.

``survival_metrics`` evaluates a frozen model on one cohort with scikit-survival's
metrics: Harrell's and Uno's C, the cumulative/dynamic AUC per horizon and the integrated
Brier score, each with a percentile bootstrap CI over resampled patients. A horizon that
the data cannot support gives None, never a number computed from nothing.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from .errors import CtithError

if TYPE_CHECKING:
    import pandas as pd


class SurvivalError(CtithError):
    pass


def surv_array(time, event):
    """scikit-survival's structured outcome array (event: bool, time: float)."""
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(event).astype(bool), time=np.asarray(time, dtype=float))


class CoxModel:
    """Cox proportional hazards (Efron ties), optional ridge penalty.

    ``penalizer`` is scikit-survival's ``alpha``: the log partial likelihood is penalised
    by ``penalizer / 2 * sum(coef ** 2)``. A small value keeps the fit finite when a
    covariate separates events almost perfectly.
    """

    def __init__(self, penalizer: float = 0.0, ties: str = "efron", n_iter: int = 100):
        self.penalizer = penalizer
        self.ties = ties
        self.n_iter = n_iter

    def fit(self, X: pd.DataFrame, time, event) -> CoxModel:
        import pandas as pd
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        X = _numeric_frame(X)
        time = np.asarray(time, dtype=float)
        event = np.asarray(event).astype(bool)
        if len(X) != len(time) or len(time) != len(event):
            raise SurvivalError(f"{len(X)} rows of covariates for {len(time)} times and {len(event)} events")
        if not event.any():
            raise SurvivalError(f"the training cohort ({len(time)} patients) has no event: a Cox model "
                                "cannot be fitted")
        if not np.isfinite(X.to_numpy()).all():
            bad = X.columns[~np.isfinite(X.to_numpy()).all(axis=0)].tolist()
            raise SurvivalError(f"covariate(s) with missing or infinite values: {bad}")
        self.feature_names_ = list(X.columns)
        self.means_ = X.mean(axis=0).to_numpy(dtype=float)
        Xc = X.to_numpy(dtype=float) - self.means_
        est = CoxPHSurvivalAnalysis(alpha=self.penalizer, ties=self.ties, n_iter=self.n_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(Xc, surv_array(time, event))
        self.converged_ = not any("converge" in str(w.message) for w in caught)
        # Breslow's estimator of the baseline cumulative hazard, at the covariate means.
        return self._set_fit(Xc, time, event, est.coef_, est.cum_baseline_hazard_)

    def _set_fit(self, Xc, time, event, coef, cum_baseline_hazard) -> CoxModel:
        import pandas as pd

        self.coef_ = pd.Series(np.asarray(coef, dtype=float), index=self.feature_names_, name="coef")
        self.baseline_times_ = np.asarray(cum_baseline_hazard.x, dtype=float)
        self.baseline_cumhaz_ = np.asarray(cum_baseline_hazard.y, dtype=float)
        self.log_likelihood_ = float(efron_log_likelihoods(Xc, time, event, coef[:, None])[0])
        self.null_log_likelihood_ = float(efron_log_likelihoods(Xc, time, event, np.zeros((Xc.shape[1], 1)))[0])
        self.train_time_range_ = (float(time.min()), float(time.max()))
        self.n_train_, self.n_train_events_ = int(len(time)), int(event.sum())
        return self

    @classmethod
    def from_coefficients(cls, X: pd.DataFrame, time, event, coef, penalizer: float = 0.0) -> CoxModel:
        """A Cox model with coefficients fitted elsewhere (a penalised fit): the training
        means, Breslow's baseline at those coefficients, the log-likelihoods. ``X`` may have
        no column (the penalty kept none): every patient then gets the baseline."""
        from sksurv.linear_model.coxph import BreslowEstimator

        m = cls(penalizer=penalizer)
        X = _numeric_frame(X)
        time, event = np.asarray(time, dtype=float), np.asarray(event).astype(bool)
        m.feature_names_ = list(X.columns)
        m.means_ = X.mean(axis=0).to_numpy(dtype=float)
        Xc = X.to_numpy(dtype=float).reshape(len(time), -1) - m.means_
        coef = np.asarray(coef, dtype=float).reshape(-1)
        m.converged_ = True
        baseline = BreslowEstimator().fit(Xc @ coef, event, time)
        return m._set_fit(Xc, time, event, coef, baseline.cum_baseline_hazard_)

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Linear predictor (log relative hazard against an average training patient)."""
        X = _numeric_frame(X)
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise SurvivalError(f"covariate(s) {missing} missing for prediction")
        return (X[self.feature_names_].to_numpy(dtype=float) - self.means_) @ self.coef_.to_numpy()

    def baseline_cumulative_hazard(self, times) -> np.ndarray:
        """H0(t): a right-continuous step function, 0 before the first training event time."""
        t = np.asarray(times, dtype=float)
        idx = np.searchsorted(self.baseline_times_, t, side="right") - 1
        return np.where(idx >= 0, self.baseline_cumhaz_[np.clip(idx, 0, None)], 0.0)

    def predict_survival(self, X: pd.DataFrame, times) -> np.ndarray:
        """S(t | x) = exp(-H0(t) exp(lp)), shape (n_patients, len(times))."""
        lp = self.predict_risk(X)
        h0 = self.baseline_cumulative_hazard(times)
        return np.exp(-np.outer(np.exp(lp), h0))

    def to_dict(self) -> dict:
        return {
            "model": "cox_ph", "ties": self.ties, "penalizer": self.penalizer,
            "features": self.feature_names_, "coef": self.coef_.tolist(), "means": self.means_.tolist(),
            "baseline_times": self.baseline_times_.tolist(), "baseline_cumhaz": self.baseline_cumhaz_.tolist(),
            "train_time_range": list(self.train_time_range_), "n_train": self.n_train_,
            "n_train_events": self.n_train_events_, "converged": self.converged_,
            "log_likelihood": self.log_likelihood_, "null_log_likelihood": self.null_log_likelihood_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> CoxModel:
        import pandas as pd

        m = cls(penalizer=d["penalizer"], ties=d["ties"])
        m.feature_names_ = list(d["features"])
        m.coef_ = pd.Series(np.asarray(d["coef"], dtype=float), index=m.feature_names_, name="coef")
        m.means_ = np.asarray(d["means"], dtype=float)
        m.baseline_times_ = np.asarray(d["baseline_times"], dtype=float)
        m.baseline_cumhaz_ = np.asarray(d["baseline_cumhaz"], dtype=float)
        m.train_time_range_ = tuple(d["train_time_range"])
        m.n_train_, m.n_train_events_ = d["n_train"], d["n_train_events"]
        m.converged_ = d["converged"]
        m.log_likelihood_, m.null_log_likelihood_ = d["log_likelihood"], d["null_log_likelihood"]
        return m

    @property
    def aic_(self) -> float:
        """Akaike's criterion of the partial likelihood: -2 log L + 2 (number of covariates)."""
        return -2.0 * self.log_likelihood_ + 2.0 * len(self.feature_names_)

    def likelihood_ratio_p(self) -> float:
        """p of the likelihood-ratio test against the model without covariates."""
        from scipy.stats import chi2

        stat = max(2.0 * (self.log_likelihood_ - self.null_log_likelihood_), 0.0)
        return float(chi2.sf(stat, df=len(self.feature_names_)))


def efron_log_likelihoods(X, time, event, coefs) -> np.ndarray:
    """Log partial likelihood of a Cox model with Efron's handling of tied event times
    (unpenalised), at every column of ``coefs`` (n_features, n_alphas) at once: the risk
    sets as reversed cumulative sums over the sorted times (a penalty path times ten folds
    would otherwise loop over every event time in Python)."""
    eta = np.asarray(X, dtype=float).reshape(len(time), -1) @ np.asarray(coefs, dtype=float)
    eta = eta - eta.max(axis=0)  # a common shift cancels between numerator and denominator
    risk = np.exp(eta)
    times, inv = np.unique(np.asarray(time, dtype=float), return_inverse=True)
    event = np.asarray(event).astype(bool)

    def per_time(values, rows):
        out = np.zeros((len(times), values.shape[1]))
        np.add.at(out, inv[rows], values[rows])
        return out

    everyone = np.ones(len(inv), dtype=bool)
    at_risk = per_time(risk, everyone)[::-1].cumsum(axis=0)[::-1]  # sum over time >= t
    tied, eta_dead = per_time(risk, event), per_time(eta, event)
    d = np.bincount(inv[event], minlength=len(times))
    ll = eta_dead.sum(axis=0)
    for j in range(int(d.max(initial=0))):  # Efron: the j-th of d tied events
        m = d > j
        ll -= np.log(at_risk[m] - (j / d[m])[:, None] * tied[m]).sum(axis=0)
    return ll


def _numeric_frame(X) -> pd.DataFrame:
    import pandas as pd

    X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
    bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if bad:
        raise SurvivalError(f"covariate(s) {bad} are not numeric: encode categories first")
    return X.astype(float)


# ---------------------------------------------------------------- metrics


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


# ---------------------------------------------------------------- clinical covariates


class ClinicalEncoder:
    """Clinical variables as a clinician reads them, frozen on the training cohort.

    ``spec`` maps each variable to ``"numeric"`` (as is, e.g. age per year), ``{"ordinal":
    [levels, low to high]}`` (1, 2, ...: T1-T4 as one step per stage) or ``{"reference":
    level}`` (one 0/1 column per other level seen in training, named ``variable_level``).
    A level unseen in training, or a blank, is an error naming the patient and column.
    """

    def __init__(self, spec: dict):
        self.spec = dict(spec)

    def fit(self, frame: pd.DataFrame) -> ClinicalEncoder:
        self.levels_ = {}
        for var, how in self.spec.items():
            if isinstance(how, dict) and "reference" in how:
                seen = sorted({str(v) for v in frame[var].dropna()} - {str(how["reference"])})
                self.levels_[var] = seen
        self.columns_ = {var: self._names(var) for var in self.spec}
        return self

    def _names(self, var) -> list[str]:
        how = self.spec[var]
        if isinstance(how, dict) and "reference" in how:
            return [f"{var}_{lvl}" for lvl in self.levels_[var]]
        return [var]

    def transform(self, frame: pd.DataFrame, variables=None) -> pd.DataFrame:
        """Encoded columns of ``variables`` (default: every variable of the spec); only
        those are checked, so a variable the model does not use cannot stop it."""
        import pandas as pd

        out = {}
        for var in self.spec if variables is None else variables:
            how = self.spec[var]
            if var not in frame.columns:
                raise SurvivalError(f"clinical column '{var}' is missing")
            col = frame[var]
            blank = col.isna() | (col.astype(str).str.strip() == "")
            if blank.any():
                raise SurvivalError(f"patient {col.index[blank][0]}: clinical column '{var}' is blank")
            if how == "numeric":
                vals = pd.to_numeric(col, errors="coerce")
                if vals.isna().any():
                    raise SurvivalError(f"patient {vals.index[vals.isna()][0]}: clinical column '{var}' "
                                        f"is not a number ({col[vals.isna()].iloc[0]!r})")
                out[var] = vals.astype(float)
            elif isinstance(how, dict) and "ordinal" in how:
                order = [str(v) for v in how["ordinal"]]
                bad = ~col.astype(str).isin(order)
                if bad.any():
                    raise SurvivalError(f"patient {col.index[bad][0]}: clinical column '{var}' has "
                                        f"{col[bad].iloc[0]!r}, not one of {order}")
                out[var] = col.astype(str).map({v: i + 1.0 for i, v in enumerate(order)})
            elif isinstance(how, dict) and "reference" in how:
                known = set(self.levels_[var]) | {str(how["reference"])}
                bad = ~col.astype(str).isin(known)
                if bad.any():
                    raise SurvivalError(f"patient {col.index[bad][0]}: clinical column '{var}' has "
                                        f"{col[bad].iloc[0]!r}, a level the training cohort does not have "
                                        f"({sorted(known)})")
                for lvl in self.levels_[var]:
                    out[f"{var}_{lvl}"] = (col.astype(str) == lvl).astype(float)
            else:
                raise SurvivalError(f"clinical variable '{var}': encoding {how!r} is not 'numeric', "
                                    "{ordinal: [...]} or {reference: level}")
        return pd.DataFrame(out, index=frame.index)

    def describe(self) -> dict:
        """Column -> what 1 unit of it means, for tables and the model file."""
        d = {}
        for var, how in self.spec.items():
            if how == "numeric":
                d[var] = f"{var}, per unit"
            elif "ordinal" in how:
                d[var] = f"{var}, per step of {' < '.join(map(str, how['ordinal']))}"
            else:
                for lvl in self.levels_[var]:
                    d[f"{var}_{lvl}"] = f"{var} {lvl} (reference {how['reference']})"
        return d

    def to_dict(self) -> dict:
        return {"spec": self.spec, "levels": self.levels_}

    @classmethod
    def from_dict(cls, d: dict) -> ClinicalEncoder:
        enc = cls(d["spec"])
        enc.levels_ = {k: list(v) for k, v in d["levels"].items()}
        enc.columns_ = {var: enc._names(var) for var in enc.spec}
        return enc


def select_clinical(X: pd.DataFrame, groups: dict[str, list[str]], time, event, p_enter: float = 0.1,
                    penalizer: float = 0.0) -> tuple[list[str], pd.DataFrame]:
    """Variables of the clinical model, chosen on training data only: each variable (all its
    columns together) by a univariable Cox likelihood-ratio test at ``p_enter``, then
    backward elimination on AIC from the multivariable model of those that passed.

    If no variable passes, the one with the smallest p is kept, so the model is never
    empty; the returned table says so. Returns the chosen variables and one row per
    variable (univariable p, whether it passed, the step it was removed at, kept)."""
    import pandas as pd

    rows = {}
    for var, cols in groups.items():
        if not cols or X[cols].nunique().max() < 2:
            rows[var] = {"univariable_p": float("nan"), "note": "one value only in training"}
            continue
        try:
            m = CoxModel(penalizer=penalizer).fit(X[cols], time, event)
        except (ValueError, ArithmeticError) as exc:  # e.g. a level that separates events exactly
            rows[var] = {"univariable_p": float("nan"), "note": f"Cox fit failed: {exc}"}
            continue
        rows[var] = {"univariable_p": m.likelihood_ratio_p(),
                     "note": "" if m.converged_ else "did not converge (a level may separate DM exactly)"}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variable"
    passed = [v for v in groups if table.loc[v, "univariable_p"] < p_enter]
    table["passed_univariable"] = table.index.isin(passed)
    table["removed_at_step"] = pd.NA
    if not passed:
        tested = table["univariable_p"].dropna()
        if tested.empty:
            raise SurvivalError("every clinical variable is constant in the training cohort")
        passed = [str(tested.idxmin())]
        table.loc[passed[0], "note"] = f"no variable reached p < {p_enter}: the strongest is kept"

    def aic(vars_):
        cols = [c for v in vars_ for c in groups[v]]
        return CoxModel(penalizer=penalizer).fit(X[cols], time, event).aic_

    current, step = list(passed), 0
    while len(current) > 1:
        best_aic = aic(current)
        trial = {v: aic([w for w in current if w != v]) for v in current}
        drop = min(trial, key=lambda v: (trial[v], current.index(v)))
        if trial[drop] >= best_aic:
            break
        step += 1
        current.remove(drop)
        table.loc[drop, "removed_at_step"] = step
    table["kept"] = table.index.isin(current)
    return current, table.reset_index()


# ---------------------------------------------------------------- predictions, metrics, tables

HORIZONS = (12.0, 24.0, 36.0, 48.0, 60.0)


def risk_cutoff(train_risk) -> float:
    """High/low risk cut-off: the training cohort's median risk, fixed before any validation
    patient is scored."""
    return float(np.median(np.asarray(train_risk, dtype=float)))


def predictions_table(model: CoxModel, X: pd.DataFrame, cohort: pd.Series, fit: pd.Series, cutoff: float,
                      horizons=HORIZONS) -> pd.DataFrame:
    """One row per patient: cohort, the risk (linear predictor), S(t) at each horizon, the
    risk group by the training cut-off, and whether the covariates were out-of-fold or refit."""
    import pandas as pd

    risk = model.predict_risk(X)
    surv = model.predict_survival(X, horizons)
    out = pd.DataFrame({"patient_id": X.index, "cohort": cohort.reindex(X.index).to_numpy(),
                        "covariates": fit.reindex(X.index).to_numpy(), "risk": risk})
    for j, t in enumerate(horizons):
        out[f"survival_{t:g}m"] = surv[:, j]
    out["risk_group"] = np.where(risk > cutoff, "high", "low")
    return out


def metrics_rows(model_name: str, cohort: str, r: dict) -> list[dict]:
    """``survival_metrics``' result as long-form rows (model, cohort, metric, horizon, value,
    lo, hi, resamples used); None stays None."""
    def row(metric, value, ci=None, horizon=None, used=None):
        lo, hi = ci if ci else (None, None)
        return {"model": model_name, "cohort": cohort, "metric": metric, "horizon_months": horizon,
                "value": value, "ci_low": lo, "ci_high": hi,
                "n": r["n"], "events": r["n_events"],
                "bootstrap_used": used if used is not None else r["n_bootstrap_used"]}

    rows = [row("c_index", r["c_index"], r["c_index_ci"]), row("uno_c", r["uno_c"], r["uno_c_ci"]),
            row("auc_dm", r["auc_dm"], r["auc_dm_ci"]), row("ibs", r["ibs"], r["ibs_ci"])]
    for t, v in r["auc"].items():
        used = r["n_bootstrap"] - r["n_bootstrap_skipped"][t]
        rows.append(row("td_auc", None if v is None else v[0], None if v is None or v[1] is None else v[1:],
                        horizon=t, used=used))
    return rows


def cohort_label(cohort: str) -> str:
    """'internal_validation' -> 'Internal validation', as Table S2 names the cohorts;
    'external_validation:B' -> 'External validation, institution B'."""
    base, _, institution = cohort.partition(":")
    label = base.replace("_", " ").capitalize()
    return f"{label}, institution {institution}" if institution else label


def institution_subgroups(cohort: pd.Series, institution: pd.Series) -> pd.Series:
    """'external_validation:<institution>' for the external validation patients where they
    come from more than one institution (each then gets its own rows beside the pooled
    one), else blank."""
    institution = institution.reindex(cohort.index).astype(str)
    external = cohort == "external_validation"
    import pandas as pd

    out = pd.Series("", index=cohort.index, dtype=object)
    if institution[external].nunique() > 1:
        out[external] = "external_validation:" + institution[external]
    return out


def validation_cohorts(cohorts) -> list[str]:
    """The validation cohorts of the tables, in order: internal, external, each external
    institution (when there are several), then any other."""
    present = list(dict.fromkeys(cohorts))
    order = [c for c in ("internal_validation", "external_validation") if c in present]
    order += sorted(c for c in present if c.startswith("external_validation:"))
    return order + sorted(set(present) - {"train", *order})


def _cell(value, lo, hi) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if lo is None or hi is None or (isinstance(lo, float) and np.isnan(lo)):
        return f"{value:.3f}"
    return f"{value:.3f} ({lo:.3f}-{hi:.3f})"


def table_s4(metrics: pd.DataFrame, models: list[str], cohorts: list[str]) -> pd.DataFrame:
    """The paper's Table S4: per model and validation cohort, C-index, AUC (for DM status)
    and IBS with 95% CIs; "-" where a value cannot be computed."""
    import pandas as pd

    m = metrics.set_index(["model", "cohort", "metric"])
    rows = []
    for model in models:
        row = {"Model": model}
        for cohort in cohorts:
            for metric, label in (("c_index", "C-index"), ("auc_dm", "AUC"), ("ibs", "IBS")):
                key = (model, cohort, metric)
                if key in m.index:
                    v = m.loc[key]
                    row[f"{cohort_label(cohort)} {label}"] = _cell(v["value"], v["ci_low"], v["ci_high"])
                else:
                    row[f"{cohort_label(cohort)} {label}"] = "-"
        rows.append(row)
    return pd.DataFrame(rows)


def table_s5(metrics: pd.DataFrame, models: list[str], cohorts: list[str], horizons=HORIZONS) -> pd.DataFrame:
    """The paper's Table S5: time-dependent AUC at each horizon with 95% CI, per model and
    cohort; "-" where the follow-up cannot support the horizon."""
    import pandas as pd

    td = metrics[metrics["metric"] == "td_auc"].set_index(["model", "cohort", "horizon_months"])
    rows = []
    for cohort in cohorts:
        for model in models:
            row = {"Cohort": cohort_label(cohort), "Model": model}
            for t in horizons:
                key = (model, cohort, float(t))
                v = td.loc[key] if key in td.index else None
                row[f"{t:g} months"] = "-" if v is None else _cell(v["value"], v["ci_low"], v["ci_high"])
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- one model, fitted and evaluated

TRAIN = "train"


def clinical_covariates(clinical: pd.DataFrame, spec: dict, train, time, event, p_enter: float = 0.1,
                        penalizer: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """The clinical model's covariates for every patient: the encoder's levels and the
    variable selection come from the training patients (``train``: their IDs) only.
    Returns the encoded columns of the chosen variables, and what was decided (the
    encoder, the chosen variables, the selection table) for the model file."""
    enc = ClinicalEncoder(spec).fit(clinical.loc[train])
    chosen, table = select_clinical(enc.transform(clinical.loc[train]), enc.columns_, time, event, p_enter,
                                    penalizer)
    # Validation patients need only the chosen variables, at levels training has seen.
    X = enc.transform(clinical, chosen)
    return X, {"encoder": enc.to_dict(), "chosen": chosen, "columns": enc.describe(), "encoder_columns": enc.columns_,
                     "selection": table.astype(object).where(table.notna(), None).to_dict(orient="records")}


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
    from .survival_calibration import calibration_metrics, calibration_rows

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


# ---------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def km_risk_groups_figure(panels: list[dict], title: str, ticks=(0, 12, 24, 36, 48, 60, 72, 84)):
    """Kaplan-Meier DM-free survival of the high and low risk groups, one panel per cohort,
    with the log-rank p (scikit-survival's ``compare_survival``) and the numbers at risk.

    ``panels``: dicts with ``cohort``, ``time``, ``event`` and ``group`` ('high'/'low')."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    colours = {"low": "#1f77b4", "high": "#d62728"}
    for ax, p in zip(axes[0], panels):
        time, event, group = np.asarray(p["time"], float), np.asarray(p["event"], bool), np.asarray(p["group"])
        at_risk = {}
        for g in ("low", "high"):
            sel = group == g
            at_risk[g] = [int((time[sel] >= x).sum()) for x in ticks]
            if not sel.any():
                continue
            x, s = kaplan_meier_estimator(event[sel], time[sel])
            ax.step(np.r_[0.0, x], np.r_[1.0, s], where="post", color=colours[g],
                    label=f"{g} risk (n = {sel.sum()}, {int(event[sel].sum())} DM)")
            cens = sel & ~event
            ax.plot(time[cens], np.interp(time[cens], np.r_[0.0, x], np.r_[1.0, s]), "|", color=colours[g], ms=6)
        if len(set(group.tolist())) == 2 and event.any():
            _, pval = compare_survival(surv_array(time, event), group)
            ax.text(0.03, 0.05, f"log-rank p = {pval:.3g}", transform=ax.transAxes)
        ax.set(title=p["cohort"], xlabel="months", ylabel="DM-free survival", ylim=(0, 1.02),
               xlim=(0, ticks[-1]), xticks=ticks)
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        table = ax.table(cellText=[at_risk["high"], at_risk["low"]], rowLabels=["high", "low"],
                         colLabels=None, cellLoc="center", bbox=[0.0, -0.42, 1.0, 0.14], edges="open")
        table.set_fontsize(8)
        ax.text(0.0, -0.27, "at risk", transform=ax.transAxes, fontsize=8)
    fig.suptitle(title)
    fig.subplots_adjust(bottom=0.3, top=0.85, wspace=0.3)
    return fig


def td_roc_figure(curves: list[dict], title: str):
    """Time-dependent ROC curves: one panel per cohort, one line per horizon.
    ``curves``: dicts with ``cohort``, ``horizon``, ``fpr``, ``tpr`` and ``auc``."""
    plt = _pyplot()
    cohorts = list(dict.fromkeys(c["cohort"] for c in curves))
    if not cohorts:  # the validation follow-up supports no horizon: say so rather than draw nothing
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no validation cohort supports a time-dependent ROC at 12, 36 or 60 months\n"
                "(too few events or too short a follow-up)", ha="center", va="center", fontsize=9)
        fig.suptitle(title)
        return fig
    fig, axes = plt.subplots(1, len(cohorts), figsize=(4.2 * len(cohorts), 4.2), squeeze=False)
    for ax, cohort in zip(axes[0], cohorts):
        for c in (c for c in curves if c["cohort"] == cohort):
            ax.step(c["fpr"], c["tpr"], where="post", label=f"{c['horizon']:g} months: AUC {c['auc']:.3f}")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set(title=cohort, xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01),
               aspect="equal")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


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


def calibration_figure(panels: list[dict], title: str):
    """``panels``: dicts with ``cohort``, ``horizon`` and ``points`` (``calibration_points``)."""
    plt = _pyplot()
    cohorts = list(dict.fromkeys(p["cohort"] for p in panels))
    fig, axes = plt.subplots(1, len(cohorts), figsize=(4.2 * len(cohorts), 4.2), squeeze=False)
    for ax, cohort in zip(axes[0], cohorts):
        top = 0.0
        for p in (p for p in panels if p["cohort"] == cohort):
            pr = np.array([q["predicted"] for q in p["points"]])
            ob = np.array([q["observed"] for q in p["points"]])
            ax.plot(pr, ob, "o-", label=f"{p['horizon']:g} months")
            top = max(top, np.nanmax(np.r_[pr, ob, 0.0]))
        lim = min(1.0, top * 1.1 + 0.05)
        ax.plot([0, lim], [0, lim], ls=":", color="grey")
        ax.set(title=cohort, xlabel="predicted probability of DM", ylabel="observed (Kaplan-Meier)",
               xlim=(0, lim), ylim=(0, lim), aspect="equal")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def decision_curves(frame: pd.DataFrame, models: list[str], t: float, thresholds=None) -> pd.DataFrame:
    """Net benefit at ``t`` months of each model's frozen predicted risk of DM by t (columns
    of ``frame``, with ``dm_time_months`` and ``dm_event``), beside treat-all and treat-none,
    by the ``dcurves`` package. dcurves is never asked to convert a score to a probability
    (its ``models_to_prob`` would fit a model on the data it evaluates)."""
    import warnings

    from dcurves import dca

    thresholds = np.round(np.arange(0.0, 0.81, 0.01), 2) if thresholds is None else thresholds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dca(data=frame[["dm_time_months", "dm_event", *models]].reset_index(drop=True), outcome="dm_event",
                   modelnames=models, thresholds=thresholds, time=t, time_to_outcome_col="dm_time_months")


def decision_curve_figure(panels: list[dict], t: float, title: str):
    """``panels``: dicts with ``cohort`` and ``curves`` (``decision_curves``' output)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, p in zip(axes[0], panels):
        d = p["curves"]
        for name, g in d.groupby("model", sort=False):
            style = {"all": dict(color="grey", ls="--"), "none": dict(color="black", ls=":")}.get(name, {})
            label = {"all": "treat all", "none": "treat none"}.get(name, name)
            ax.plot(g["threshold"], g["net_benefit"], label=label, **style)
        nb = d["net_benefit"].to_numpy(dtype=float)
        top = np.nanmax(nb) if np.isfinite(nb).any() else 0.1
        ax.set(title=p["cohort"], xlabel=f"threshold probability of DM by {t:g} months", ylabel="net benefit",
               ylim=(-0.05, max(top * 1.1, 0.05)), xlim=(0, float(d["threshold"].max())))
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def linear_shap(coef, X: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """SHAP values of a Cox model on the log-hazard scale (shap's LinearExplainer with the
    training cohort as background): coef_j * (x_j - mean of x_j in the background)."""
    import shap

    explainer = shap.LinearExplainer((np.asarray(coef, dtype=float), 0.0), background.to_numpy(dtype=float))
    return np.asarray(explainer.shap_values(X.to_numpy(dtype=float)))
