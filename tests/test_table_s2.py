"""Table S2 with its uncertainty: bootstrap CIs, per-institution columns, the true model's row."""

import numpy as np
import pandas as pd
import pytest

from ctith.survival.metrics import bootstrap_indices
from ctith.models.table_s2 import classification_with_ci, cohort_metrics, s2_row, youden_threshold


def test_auc_and_accuracy_cis_are_sklearns_on_the_shared_resamples():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = (rng.random(30) < 0.4).astype(int)
    p = np.round(rng.random(30) + 0.3 * y, 1)  # rounded: tied scores
    m = classification_with_ci(y, p, 0.6, n_bootstrap=200, seed=3)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p)) and m["accuracy"] == pytest.approx(np.mean((p >= 0.6) == y))
    aucs = [roc_auc_score(y[i], p[i]) for i in bootstrap_indices(30, 200, 3) if 0 < y[i].sum() < 30]
    assert m["auc_ci"] == pytest.approx(list(np.percentile(aucs, [2.5, 97.5])))
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    one_class = classification_with_ci(np.zeros(5), np.arange(5.0), 2.0, 50, 1)
    assert np.isnan(one_class["auc"]) and one_class["auc_ci"] is None


def test_youden_threshold_separates_a_clean_split():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert youden_threshold(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == 0.7


def test_rows_per_cohort_and_external_institution():
    ids = [f"P{i}" for i in range(12)]
    y = pd.Series([0, 1] * 6, index=ids, dtype=float)
    p = pd.Series(np.linspace(0, 1, 12), index=ids)
    cohorts = pd.Series(["train"] * 4 + ["internal_validation"] * 4 + ["external_validation"] * 4, index=ids)
    sub = pd.Series([""] * 8 + ["external_validation:B"] * 2 + ["external_validation:C"] * 2, index=ids)
    m = cohort_metrics(y, p, cohorts, 0.5, 20, 1, sub)
    row = s2_row("2-5", m)
    assert list(row) == ["Cluster numbers", "Internal validation accuracy", "Internal validation AUC",
                         "External validation accuracy", "External validation AUC",
                         "External validation, institution B accuracy", "External validation, institution B AUC",
                         "External validation, institution C accuracy", "External validation, institution C AUC"]
    assert m["external_validation:B"]["n"] == 2 and row["Internal validation AUC"].startswith("0.750 (")
