"""Decision curves of frozen survival predictions at a horizon (Vickers et al.), as the
``dcurves`` package computes them for a time-to-event outcome.

At each threshold probability p, the patients whose predicted risk of DM by ``t`` reaches p
are "test positive"; the Kaplan-Meier risk of DM by ``t`` among them gives the true- and
false-positive rates, and the net benefit is tp - fp * p / (1 - p). dcurves refits a
lifelines Kaplan-Meier twice per model and threshold, 20 s of the demo's last job; the same
numbers come here from one small Kaplan-Meier per subset in numpy (tested against dcurves).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

COLUMNS = ["model", "threshold", "n", "prevalence", "harm", "test_pos_rate", "tp_rate", "fp_rate", "net_benefit",
           "net_intervention_avoided"]


def km_risk(time: np.ndarray, event: np.ndarray, t: float) -> float:
    """1 - the Kaplan-Meier survival at ``t`` (lifelines' product-limit estimate, through its
    sum of logs); NaN when nobody is followed to ``t``, 0 for an empty group."""
    if len(time) == 0:
        return 0.0
    if time.max() < t:
        return np.nan
    return _km_risk_at(time, event, t)


def _km_risk_at(time: np.ndarray, event: np.ndarray, t: float) -> float:
    times, index = np.unique(time, return_inverse=True)
    deaths = np.bincount(index, weights=event.astype(float))
    at_risk = len(time) - np.concatenate([[0], np.cumsum(np.bincount(index))[:-1]])
    shown = times <= t
    with np.errstate(divide="ignore"):  # everyone at risk has DM: log 0, survival 0
        return float(1.0 - np.exp(np.log(1.0 - deaths[shown] / at_risk[shown]).sum()))


def decision_curves(frame: pd.DataFrame, models: list[str], t: float, thresholds=None) -> pd.DataFrame:
    """Net benefit at ``t`` months of each model's frozen predicted risk of DM by t (columns of
    ``frame``, with ``dm_time_months`` and ``dm_event``), beside treat-all and treat-none: one
    row per model and threshold, with dcurves' columns. A risk is never fitted from a score
    here (dcurves' ``models_to_prob`` would fit a model on the data it evaluates)."""
    thresholds = np.round(np.arange(0.0, 0.81, 0.01), 2) if thresholds is None else np.asarray(thresholds, float)
    time = frame["dm_time_months"].to_numpy(float)
    event = frame["dm_event"].to_numpy(float) > 0
    n = len(frame)
    eps = sys.float_info.epsilon  # dcurves moves risks of exactly 0 and 1 just outside [0, 1]
    risks = {m: frame[m].to_numpy(float) for m in models}
    risks.update({"all": np.ones(n), "none": np.zeros(n)})
    # Treat-all's risk; past the last follow-up the curve stays at its last value (as lifelines').
    prevalence = _km_risk_at(time, event, t) if n else 0.0
    followed = n > 0 and time.max() >= t
    rows = []
    for model, risk in risks.items():
        risk = np.where(risk == 0, -eps, np.where(risk == 1, 1 + eps, risk))
        for p in thresholds:
            positive = risk >= p
            rate = positive.mean() if n else 0.0
            dm = km_risk(time[positive], event[positive], t) if followed else np.nan
            tp, fp = dm * rate, (1 - dm) * rate
            benefit = tp - p / (1 - p) * fp
            rows.append((model, p, n, prevalence, 0.0, rate, tp, fp, benefit))
    out = pd.DataFrame(rows, columns=COLUMNS[:-1])
    treat_all = out.loc[out["model"] == "all", "net_benefit"].to_numpy()
    odds = out["threshold"] / (1 - out["threshold"])
    out["net_intervention_avoided"] = (out["net_benefit"] - np.tile(treat_all, len(risks))) / odds
    return out
