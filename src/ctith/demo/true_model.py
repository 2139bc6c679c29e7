"""The demo's true model as a reference row of Tables S4 and S5: the generating model's risk
(its linear predictor, ``truth.tsv``) scored like every fitted model, on the same bootstrap
resamples. A reader then sees what a cohort of this size allows: a fitted model near the
true model's C-index has found what there is to find."""

from __future__ import annotations

import pandas as pd

from ..survival.fitting import TRAIN, cohort_calibration_rows, evaluation_groups
from ..survival.metrics import survival_metrics
from ..survival.tables import metrics_rows

TRUE_MODEL = "True model (demo only)"


def true_model_rows(linear_predictor: pd.Series, outcome: pd.DataFrame, cohort: pd.Series, horizons,
                    n_bootstrap: int = 1000, seed: int = 0, subgroups: pd.Series | None = None) -> list[dict]:
    """Long-form metrics (``survival.tables.metrics_rows``) of the generator's risk per cohort.

    ``linear_predictor``: the true log relative hazard per patient; ``outcome``:
    ``dm_time_months`` and ``dm_event``; ``cohort``: each patient's cohort, in the order the
    fitted models were evaluated (the bootstrap resamples index that order, so the CIs are
    paired with theirs); ``subgroups`` as ``survival.fitting.evaluate_model``'s."""
    from .truth import true_cumulative_hazard, true_survival

    ids = cohort.index
    missing = [p for p in ids if p not in linear_predictor.index]
    if missing:
        raise ValueError(f"patient {missing[0]}: no linear_predictor in the demo's truth.tsv")
    train = ids[(cohort == TRAIN).to_numpy()]
    t_tr = outcome.loc[train, "dm_time_months"].to_numpy(dtype=float)
    e_tr = outcome.loc[train, "dm_event"].to_numpy().astype(bool)
    rows = []
    for c, sel in evaluation_groups(ids, cohort, subgroups):
        lp = linear_predictor.loc[sel].to_numpy(dtype=float)
        r = survival_metrics(t_tr, e_tr, outcome.loc[sel, "dm_time_months"].to_numpy(dtype=float),
                             outcome.loc[sel, "dm_event"].to_numpy().astype(bool), lp, true_survival(lp, horizons),
                             horizons, n_bootstrap, seed)
        rows += metrics_rows(TRUE_MODEL, c, r)
        rows += cohort_calibration_rows(TRUE_MODEL, c, outcome.loc[sel, "dm_time_months"].to_numpy(dtype=float),
                                        outcome.loc[sel, "dm_event"].to_numpy().astype(bool), lp,
                                        true_cumulative_hazard, horizons, n_bootstrap, seed)
    return rows
