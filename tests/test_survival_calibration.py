"""Calibration intercept and slope, paired C-index differences and per-institution rows."""

import numpy as np
import pandas as pd
import pytest

from ctith.survival.calibration import (_counts, calibration_design, calibration_fit, calibration_metrics,
                                        harrell_c_resampled, paired_c_differences)


def test_calibration_fit_equals_statsmodels_poisson_with_offset():
    """The intercept is log(observed / expected); the slope is statsmodels' Poisson GLM
    coefficient of lp with the log baseline hazard as offset (Crowson et al. 2016), on the
    data and on a resample (counts as weights)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    lp, off = rng.normal(size=60), rng.normal(-1.0, 0.5, 60)
    events = (rng.random(60) < 0.4).astype(float)
    intercept, slope = calibration_fit(events, lp, off)
    glm = sm.GLM(events, sm.add_constant(lp), family=sm.families.Poisson(), offset=off).fit()
    assert slope[0] == pytest.approx(glm.params[1], abs=1e-7)
    assert intercept[0] == pytest.approx(np.log(events.sum() / np.exp(off + lp).sum()))
    idx = rng.integers(0, 60, (4, 60))
    _, slopes = calibration_fit(events, lp, off, _counts(idx, 60))
    glm2 = sm.GLM(events[idx[2]], sm.add_constant(lp[idx[2]]), family=sm.families.Poisson(), offset=off[idx[2]]).fit()
    assert slopes[2] == pytest.approx(glm2.params[1], abs=1e-7)


def test_a_true_model_is_calibrated_and_an_overfitted_one_is_not():
    """Outcomes drawn from a known Weibull-Cox model: its own risks give intercept near 0
    and slope near 1; risks twice as extreme give a slope near 0.5."""
    rng = np.random.default_rng(1)
    n, shape, scale = 4000, 1.1, 60.0
    lp = rng.normal(size=n)
    t_event = scale * (-np.log(rng.random(n)) / np.exp(lp)) ** (1 / shape)
    t_cens = rng.uniform(24, 84, n)
    time, event = np.minimum(t_event, t_cens), t_event <= t_cens

    def h0(t):
        return (np.asarray(t, dtype=float) / scale) ** shape

    res = calibration_metrics(time, event, lp, h0, [36.0], rng.integers(0, n, (50, n)))[36.0]
    assert abs(res["intercept"][0]) < 0.06 and abs(res["slope"][0] - 1) < 0.06
    assert res["slope"][1] < res["slope"][0] < res["slope"][2]
    extreme = calibration_metrics(time, event, 2 * lp, h0, [36.0], [])[36.0]
    assert abs(extreme["slope"][0] - 0.5) < 0.04 and extreme["slope"][1] is None
    events, off = calibration_design(time, event, h0, 36.0)
    assert events.sum() == (event & (time <= 36)).sum() and np.isfinite(off).all()


def test_paired_differences_use_scikit_survivals_c_on_the_same_resamples():
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(2)
    time = rng.integers(1, 30, 40).astype(float)
    event = rng.random(40) < 0.5
    risks = rng.normal(size=(40, 3))
    risks[:5, 1] = risks[:5, 0]  # tied risks within a model
    idx = rng.integers(0, 40, (20, 40))
    c = harrell_c_resampled(time, event, risks, idx)
    for b in (0, 7):
        for j in range(3):
            assert c[b, j] == pytest.approx(concordance_index_censored(event[idx[b]], time[idx[b]],
                                                                       risks[idx[b], j])[0])
    diffs = paired_c_differences(time, event, risks, 0, idx)
    assert diffs[0] == (0.0, 0.0, 0.0)
    full = [concordance_index_censored(event, time, risks[:, j])[0] for j in range(3)]
    assert diffs[2][0] == pytest.approx(full[2] - full[0])
    assert diffs[2][1] <= np.percentile(c[:, 2] - c[:, 0], 50) <= diffs[2][2]


def test_each_external_institution_gets_its_own_rows():
    """Two external institutions: metrics for the pooled cohort and for each; one: no
    extra rows. Table labels name the institution."""
    from ctith.survival.fitting import evaluate_model, fit_cox_model
    from ctith.survival.tables import cohort_label, institution_subgroups, validation_cohorts

    rng = np.random.default_rng(3)
    n = 120
    ids = [f"P{i:03d}" for i in range(n)]
    X = pd.DataFrame({"x": rng.normal(size=n)}, index=ids)
    t_event = rng.exponential(40 * np.exp(-X["x"].to_numpy()))
    outcome = pd.DataFrame({"dm_time_months": np.minimum(t_event, 60.0), "dm_event": (t_event <= 60).astype(int)},
                           index=ids)
    cohort = pd.Series(["train"] * 60 + ["external_validation"] * 60, index=ids)
    institution = pd.Series(["A"] * 60 + ["B"] * 30 + ["C"] * 30, index=ids)
    fitted = fit_cox_model("M", X.iloc[:60], outcome, horizons=[12.0, 24.0])
    sub = institution_subgroups(cohort, institution)
    _, rows = evaluate_model(fitted, X, pd.Series("measured", index=ids), outcome, cohort, 20, 1, sub)
    rows = pd.DataFrame(rows)
    c = rows[rows["metric"] == "c_index"].set_index("cohort")
    assert set(c.index) == {"train", "external_validation", "external_validation:B", "external_validation:C"}
    assert c.loc["external_validation:B", "n"] == 30
    assert validation_cohorts(rows["cohort"]) == ["external_validation", "external_validation:B",
                                                  "external_validation:C"]
    assert cohort_label("external_validation:B") == "External validation, institution B"
    one = institution_subgroups(cohort, institution.replace("C", "B"))
    assert (one == "").all()
