"""Table S2's numbers with their uncertainty: accuracy and AUC of each ITH model per
validation cohort (and per external institution where there are several) with percentile
bootstrap 95% CIs, and on the demo the generating model's row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..survival.metrics import bootstrap_indices
from ..survival.tables import cohort_label


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties half); NaN with one class."""
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def classification_with_ci(y, p, threshold: float, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Accuracy at the fixed threshold and AUC, each with a 95% percentile bootstrap CI
    (resamples from ``survival.bootstrap_indices``; resamples with one class leave the AUC
    out). Values and CIs are NaN where undefined."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    out = {"n": int(len(y)), "events": int(y.sum()),
           "accuracy": float(np.mean((p >= threshold) == y)) if len(y) else float("nan"), "auc": _auc(y, p)}
    idx = bootstrap_indices(len(y), n_bootstrap, seed) if len(y) and n_bootstrap else np.zeros((0, 0), int)
    acc = [float(np.mean((p[i] >= threshold) == y[i])) for i in idx]
    auc = [a for a in (_auc(y[i], p[i]) for i in idx) if np.isfinite(a)]
    for key, values in (("accuracy", acc), ("auc", auc)):
        ok = values and np.isfinite(out[key])
        out[f"{key}_ci"] = [float(v) for v in np.percentile(values, [2.5, 97.5])] if ok else None
    return out


def youden_threshold(y, score) -> float:
    """The threshold maximising sensitivity + specificity - 1 (on training patients)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(np.asarray(y).astype(int), np.asarray(score, dtype=float))
    return float(thr[1:][np.argmax((tpr - fpr)[1:])])


def cohort_metrics(y: pd.Series, p: pd.Series, cohorts: pd.Series, threshold: float, n_bootstrap: int,
                   seed: int, subgroups: pd.Series | None = None) -> dict:
    """``classification_with_ci`` per cohort (train, internal and external validation) and
    per subgroup label (``survival.institution_subgroups``), on the patients with an outcome."""
    known = y.notna()
    out = {}
    groups = [(c, cohorts) for c in ("train", "internal_validation", "external_validation")]
    if subgroups is not None:
        groups += [(g, subgroups.reindex(y.index).fillna("")) for g in sorted(set(subgroups) - {""})]
    for label, by in groups:
        rows = (by.reindex(y.index) == label).to_numpy() & known.to_numpy()
        out[label] = classification_with_ci(y[rows], p[rows], threshold, n_bootstrap, seed)
    return out


def _cell(m: dict | None, key: str) -> str:
    if not m or m.get(key) is None or pd.isna(m.get(key)):
        return "-"
    ci = m.get(f"{key}_ci")
    return f"{m[key]:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def s2_row(label: str, metrics: dict) -> dict:
    """One row of Table S2: accuracy and AUC (with CIs where recorded) per validation
    cohort, each external institution after the pooled external cohort."""
    cohorts = ["internal_validation", "external_validation"]
    cohorts += sorted(k for k in metrics if isinstance(k, str) and k.startswith("external_validation:"))
    row = {"Cluster numbers": label}
    for c in cohorts:
        row[f"{cohort_label(c)} accuracy"] = _cell(metrics.get(c), "accuracy")
        row[f"{cohort_label(c)} AUC"] = _cell(metrics.get(c), "auc")
    return row
