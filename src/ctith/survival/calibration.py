"""Calibration of a frozen Cox model on a cohort, per horizon, and paired C-index differences.

Calibration follows Crowson, Atkinson & Therneau (Stat Methods Med Res 2016): follow-up is
cut at the horizon t, and each patient's predicted cumulative hazard at their own (cut)
follow-up, H0(min(T, t)) exp(lp), is the expected number of events.
- Intercept (calibration-in-the-large): log(observed / expected), the Poisson model
  log mu = a + log H(T). 0 is perfect; above 0 the model predicts too few events.
- Slope: the Poisson model log mu = a + b lp + log H0(T). 1 is perfect; below 1 the risks
  are too extreme (over-fitting), above 1 too timid.
Both are computed for every bootstrap resample at once (resample counts as weights), so
their CIs come from the same resamples as every other metric.
"""

from __future__ import annotations

import numpy as np


def _counts(indices, n: int) -> np.ndarray:
    """Bootstrap resamples (B, n) of row positions as counts per patient (B, n)."""
    indices = np.asarray(indices)
    counts = np.zeros((len(indices), n))
    np.add.at(counts, (np.repeat(np.arange(len(indices)), indices.shape[1]), indices.ravel()), 1.0)
    return counts


def calibration_design(time, event, baseline_cumhaz_at, t: float):
    """Events by t and the log baseline cumulative hazard at each patient's follow-up cut at
    t. ``baseline_cumhaz_at(times)``: the model's H0 (at its covariate means). Where H0 is
    still 0 (follow-up ending before the first training event), the first positive value
    stands in, so an event there is not infinitely surprising."""
    time, event = np.asarray(time, dtype=float), np.asarray(event).astype(bool)
    cut = np.minimum(time, t)
    h0 = np.asarray(baseline_cumhaz_at(cut), dtype=float)
    positive = h0[h0 > 0]
    floor = positive.min() if positive.size else np.nan
    h0 = np.where(h0 > 0, h0, floor)
    return (event & (time <= t)).astype(float), np.log(h0)


def calibration_fit(events, lp, log_h0, weights=None, n_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Calibration intercept and slope for each row of ``weights`` (B, n; default one row of
    ones). Returns two arrays of length B; NaN where undefined (no event, or no spread of
    lp among the weighted patients)."""
    events, lp, off = (np.asarray(a, dtype=float) for a in (events, lp, log_h0))
    w = np.ones((1, len(lp))) if weights is None else np.asarray(weights, dtype=float)
    observed = w @ events
    expected = w @ np.exp(off + lp)
    with np.errstate(divide="ignore", invalid="ignore"):
        intercept = np.where(observed > 0, np.log(observed / expected), np.nan)
    # Newton's method on (a, b), every resample at once.
    a = np.log(np.maximum(observed, 1e-12) / (w @ np.exp(off)))
    b = np.ones(len(w))
    step = np.full(len(w), np.inf)
    for _ in range(n_iter):
        mu = w * np.exp(a[:, None] + b[:, None] * lp[None, :] + off[None, :])
        r = w * events[None, :] - mu
        g = np.stack([r.sum(1), (r * lp).sum(1)], axis=1)
        h00, h01, h11 = mu.sum(1), (mu * lp).sum(1), (mu * lp ** 2).sum(1)
        det = h00 * h11 - h01 ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (h11 * g[:, 0] - h01 * g[:, 1]) / det
            db = (h00 * g[:, 1] - h01 * g[:, 0]) / det
        ok = np.isfinite(da) & np.isfinite(db)
        a, b = np.where(ok, a + np.clip(da, -5, 5), a), np.where(ok, b + np.clip(db, -5, 5), b)
        step = np.where(ok, np.maximum(abs(da), abs(db)), np.inf)
        if step.max() < 1e-10:
            break
    spread = np.sqrt(np.maximum((w @ lp ** 2) / w.sum(1) - ((w @ lp) / w.sum(1)) ** 2, 0.0))
    # No finite slope where the risk separates the events (Newton walks off): left out, as
    # a resample without an event is.
    slope = np.where((observed > 0) & (spread > 1e-12) & (step < 1e-6), b, np.nan)
    return intercept, slope


def calibration_metrics(time, event, lp, baseline_cumhaz_at, horizons, indices) -> dict:
    """Per horizon t: (intercept, lo, hi) and (slope, lo, hi), the CIs as 2.5/97.5
    percentiles over the resamples ``indices`` (None without resamples or value)."""
    out = {}
    counts = _counts(indices, len(lp)) if len(indices) else None
    for t in horizons:
        events, off = calibration_design(time, event, baseline_cumhaz_at, t)
        if not np.isfinite(off).all():
            out[float(t)] = {"intercept": None, "slope": None}
            continue
        point = calibration_fit(events, lp, off)
        boot = calibration_fit(events, lp, off, counts) if counts is not None else None
        res = {}
        for k, name in enumerate(("intercept", "slope")):
            v = point[k][0]
            if not np.isfinite(v):
                res[name] = None
                continue
            vals = boot[k][np.isfinite(boot[k])] if boot is not None else np.array([])
            lo, hi = (np.percentile(vals, [2.5, 97.5]) if vals.size else (None, None))
            res[name] = (float(v), None if lo is None else float(lo), None if hi is None else float(hi))
        out[float(t)] = res
    return out


def harrell_c_resampled(time, event, risks, indices) -> np.ndarray:
    """Harrell's C of each column of ``risks`` (n, models) on each resample (B, models), with
    scikit-survival's definition (an event against later times and against censoring at
    its own time; risks within 1e-8 tied, half a pair). NaN where no pair is comparable."""
    time, event = np.asarray(time, dtype=float), np.asarray(event).astype(bool)
    risks = np.asarray(risks, dtype=float).reshape(len(time), -1)
    out = np.full((len(indices), risks.shape[1]), np.nan)
    for i, idx in enumerate(indices):
        T, E, R = time[idx], event[idx], risks[idx]
        pair = E[:, None] & ((T[None, :] > T[:, None]) | ((T[None, :] == T[:, None]) & ~E[None, :]))
        n_pairs = pair.sum()
        if not n_pairs:
            continue
        diff = R[:, None, :] - R[None, :, :]
        tie = np.abs(diff) <= 1e-8
        value = ((diff > 0) & ~tie) + 0.5 * tie
        out[i] = (value * pair[:, :, None]).sum(axis=(0, 1)) / n_pairs
    return out


def paired_c_differences(time, event, risks, reference: int, indices) -> list[tuple]:
    """Each model's Harrell's C minus the reference model's (column ``reference`` of
    ``risks``), with a paired percentile bootstrap CI: both C-indices on the same
    resamples. Returns (difference, lo, hi) per column; None where undefined."""
    every = np.arange(len(np.asarray(time)))[None, :]
    point = harrell_c_resampled(time, event, risks, every)[0]
    boot = harrell_c_resampled(time, event, risks, indices) if len(indices) else None
    out = []
    for j in range(len(point)):
        d = point[j] - point[reference]
        if not np.isfinite(d):
            out.append(None)
            continue
        if boot is None:
            out.append((float(d), None, None))
            continue
        diffs = boot[:, j] - boot[:, reference]
        diffs = diffs[np.isfinite(diffs)]
        lo, hi = np.percentile(diffs, [2.5, 97.5]) if diffs.size else (np.nan, np.nan)
        out.append((float(d), float(lo), float(hi)))
    return out


def calibration_rows(model_name: str, cohort: str, cal: dict, n: int, events: int, n_bootstrap: int) -> list[dict]:
    """``calibration_metrics``' result as long-form metric rows (``survival.metrics_rows``'
    columns): calibration_intercept and calibration_slope per horizon."""
    rows = []
    for t, res in cal.items():
        for name in ("intercept", "slope"):
            v = res[name]
            rows.append({"model": model_name, "cohort": cohort, "metric": f"calibration_{name}", "horizon_months": t,
                         "value": None if v is None else v[0], "ci_low": None if v is None else v[1],
                         "ci_high": None if v is None else v[2], "n": n, "events": events,
                         "bootstrap_used": n_bootstrap})
    return rows


def calibration_table(metrics, models: list[str], cohorts: list[str], horizons):
    """Calibration intercept and slope with 95% CIs per validation cohort, model and horizon
    (rows: cohort, model), from the long-form metrics."""
    import pandas as pd

    from .tables import _cell, cohort_label

    cal = metrics[metrics["metric"].isin(["calibration_intercept", "calibration_slope"])]
    cal = cal.set_index(["model", "cohort", "metric", "horizon_months"])
    rows = []
    for cohort in cohorts:
        for model in models:
            row = {"Cohort": cohort_label(cohort), "Model": model}
            for t in horizons:
                for name in ("intercept", "slope"):
                    key = (model, cohort, f"calibration_{name}", float(t))
                    v = cal.loc[key] if key in cal.index else None
                    row[f"{t:g} months {name}"] = "-" if v is None else _cell(v["value"], v["ci_low"], v["ci_high"])
            rows.append(row)
    return pd.DataFrame(rows)


def differences_table(frames: dict, outcome, reference: str, models: list[str], cohorts: list[str],
                      n_bootstrap: int, seed: int):
    """Each model's Harrell's C minus the reference model's, per validation cohort, with a
    paired bootstrap CI (the resamples every metric uses). ``frames``: cohort -> DataFrame of
    risks (patients in evaluation order, one column per model)."""
    import pandas as pd

    from .metrics import bootstrap_indices
    from .tables import _cell, cohort_label

    rows = {m: {"Model": m} for m in models}
    for cohort in cohorts:
        risks = frames[cohort][models]
        ids = risks.index
        t = outcome.loc[ids, "dm_time_months"].to_numpy(dtype=float)
        e = outcome.loc[ids, "dm_event"].to_numpy().astype(bool)
        diffs = paired_c_differences(t, e, risks.to_numpy(), models.index(reference),
                                     bootstrap_indices(len(ids), n_bootstrap, seed))
        for m, d in zip(models, diffs):
            rows[m][f"{cohort_label(cohort)} C-index minus {reference}"] = "-" if d is None else _cell(*d)
    return pd.DataFrame(list(rows.values()))
