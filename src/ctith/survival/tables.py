"""Per-patient predictions, long-form metric rows and Tables S4 and S5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .cox import CoxModel

if TYPE_CHECKING:
    import pandas as pd


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
