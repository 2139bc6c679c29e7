"""The Cox model of time to distant metastasis (the paper's endpoint).

``CoxModel`` wraps scikit-survival's ``CoxPHSurvivalAnalysis`` with Efron's handling of
tied event times (as R and lifelines; scikit-survival's default is Breslow). Covariates
are centred at their training means, so the linear predictor and the Breslow baseline
are those of an average training patient, and the whole fitted model (coefficients,
means, baseline cumulative hazard) is plain numbers: ``to_dict``/``from_dict`` round-trip
it through JSON, and a frozen model scores new patients without refitting or unpickling.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CtithError

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
