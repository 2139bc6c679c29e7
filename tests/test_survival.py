"""Survival models and metrics against published values and an independent implementation."""

import numpy as np
import pandas as pd
import pytest

from ctith.survival.cox import CoxModel, SurvivalError
from ctith.survival.metrics import bootstrap_indices, horizon_problem, survival_metrics

# Fox & Weisberg, "Cox Proportional-Hazards Regression for Survival Data in R" (2011),
# Rossi recidivism data, Efron ties; lifelines' documentation prints the same table.
ROSSI_EFRON = {"fin": -0.37942, "age": -0.05744, "race": 0.31390, "wexp": -0.14980, "mar": -0.43370,
               "paro": -0.08487, "prio": 0.09150}


@pytest.fixture(scope="module")
def rossi():
    from lifelines.datasets import load_rossi

    return load_rossi()


def test_cox_reproduces_published_efron_coefficients(rossi):
    X = rossi.drop(columns=["week", "arrest"])
    m = CoxModel().fit(X, rossi["week"], rossi["arrest"])
    assert list(m.coef_.index) == list(X.columns)
    for name, published in ROSSI_EFRON.items():
        assert m.coef_[name] == pytest.approx(published, abs=5e-5), name


def test_cox_matches_lifelines_and_its_concordance(rossi):
    from lifelines import CoxPHFitter
    from lifelines.utils import concordance_index

    X = rossi.drop(columns=["week", "arrest"])
    m = CoxModel().fit(X, rossi["week"], rossi["arrest"])
    ref = CoxPHFitter().fit(rossi, "week", "arrest")
    np.testing.assert_allclose(m.coef_.to_numpy(), ref.params_[X.columns].to_numpy(), atol=1e-6)
    # Survival curves: both use Breslow's baseline at the covariate means.
    times = [10.0, 25.0, 40.0, 52.0]
    ours = m.predict_survival(X.iloc[:20], times)
    theirs = ref.predict_survival_function(rossi.iloc[:20], times=times).to_numpy().T
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # The Efron log partial likelihood and the likelihood-ratio test, as lifelines reports them.
    assert m.log_likelihood_ == pytest.approx(ref.log_likelihood_, abs=1e-6)
    assert m.likelihood_ratio_p() == pytest.approx(ref.log_likelihood_ratio_test().p_value, rel=1e-6)
    assert m.aic_ == pytest.approx(ref.AIC_partial_, abs=1e-6)
    risk = m.predict_risk(X)
    r = survival_metrics(rossi["week"], rossi["arrest"], rossi["week"], rossi["arrest"], risk,
                         m.predict_survival(X, times), times, n_bootstrap=50, seed=0)
    # lifelines' concordance takes a score where higher means longer survival.
    assert r["c_index"] == pytest.approx(concordance_index(rossi["week"], -risk, rossi["arrest"]), abs=1e-12)


def test_integrated_brier_score_reproduces_scikit_survival_example():
    """scikit-survival's documented example (GBSG2, Efron Cox, IBS over years 1-5): 0.1816,
    and its Brier score at 5 years: 0.20881843."""
    from sksurv.datasets import load_gbsg2
    from sksurv.metrics import brier_score, integrated_brier_score
    from sksurv.preprocessing import OneHotEncoder

    X, y = load_gbsg2()
    X["tgrade"] = X.loc[:, "tgrade"].map(len).astype(int)
    Xt = OneHotEncoder().fit_transform(X)
    m = CoxModel().fit(Xt, y["time"], y["cens"])
    times = np.arange(365, 1826)
    preds = m.predict_survival(Xt, times)
    assert round(integrated_brier_score(y, y, preds, times), 4) == 0.1816
    assert brier_score(y, y, preds[:, -1], 1825)[1][0] == pytest.approx(0.20881843, abs=1e-8)


def test_model_round_trips_through_json(rossi):
    import json

    X = rossi.drop(columns=["week", "arrest"])
    m = CoxModel(penalizer=0.1).fit(X, rossi["week"], rossi["arrest"])
    back = CoxModel.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_array_equal(back.predict_risk(X), m.predict_risk(X))
    np.testing.assert_array_equal(back.predict_survival(X, [5, 30, 60]), m.predict_survival(X, [5, 30, 60]))
    # The ridge penalty shrinks the coefficients.
    assert np.abs(m.coef_).sum() < np.abs(CoxModel().fit(X, rossi["week"], rossi["arrest"]).coef_).sum()


def test_cox_refuses_what_it_cannot_fit():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(SurvivalError, match="no event"):
        CoxModel().fit(X, [1, 2, 3], [0, 0, 0])
    with pytest.raises(SurvivalError, match="not numeric"):
        CoxModel().fit(pd.DataFrame({"h": ["RLPS", "RLMS", "RLPS"]}), [1, 2, 3], [1, 0, 1])
    with pytest.raises(SurvivalError, match="missing or infinite"):
        CoxModel().fit(pd.DataFrame({"a": [1.0, np.nan, 3.0]}), [1, 2, 3], [1, 0, 1])


def _cohort(n, seed, follow_up):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t_event = rng.exponential(40 * np.exp(-0.8 * x))
    t_cens = rng.uniform(follow_up * 0.6, follow_up, size=n)
    return x, np.minimum(t_event, t_cens), t_event <= t_cens


def test_horizons_the_follow_up_cannot_support_give_none():
    """A cohort followed up to 36 months gives '-' at 48 and 60 months, without a crash."""
    x_tr, t_tr, e_tr = _cohort(120, 1, 84)
    x_te, t_te, e_te = _cohort(60, 2, 36)
    X_tr, X_te = pd.DataFrame({"x": x_tr}), pd.DataFrame({"x": x_te})
    m = CoxModel().fit(X_tr, t_tr, e_tr)
    times = [12, 24, 36, 48, 60]
    r = survival_metrics(t_tr, e_tr, t_te, e_te, m.predict_risk(X_te), m.predict_survival(X_te, times), times,
                         n_bootstrap=100, seed=3)
    assert r["auc"][48] is None and r["auc"][60] is None and r["auc"][36] is None  # 36 is not < max time
    assert r["auc"][12] is not None and r["auc"][24] is not None
    assert "follow-up" in r["horizon_problems"][60]
    assert r["n_bootstrap_skipped"][60] == 100
    assert r["ibs_times"] == [12.0, 24.0]
    assert r["n_bootstrap_used"] == 100


def test_every_ci_contains_its_estimate_and_resamples_are_paired():
    x_tr, t_tr, e_tr = _cohort(150, 4, 84)
    x_te, t_te, e_te = _cohort(70, 5, 84)
    X_tr, X_te = pd.DataFrame({"x": x_tr}), pd.DataFrame({"x": x_te})
    m = CoxModel().fit(X_tr, t_tr, e_tr)
    times = [12, 24, 36, 48, 60]
    args = (t_tr, e_tr, t_te, e_te, m.predict_risk(X_te), m.predict_survival(X_te, times), times)
    r = survival_metrics(*args, n_bootstrap=200, seed=7)
    assert r["c_index"] > 0.6  # the covariate carries the hazard
    assert r["c_index_ci"][0] <= r["c_index"] <= r["c_index_ci"][1]
    assert r["uno_c_ci"][0] <= r["uno_c"] <= r["uno_c_ci"][1]
    assert r["ibs_ci"][0] <= r["ibs"] <= r["ibs_ci"][1]
    from sklearn.metrics import roc_auc_score

    assert r["auc_dm"] == pytest.approx(roc_auc_score(e_te, m.predict_risk(X_te)), abs=1e-15)
    assert r["auc_dm_ci"][0] <= r["auc_dm"] <= r["auc_dm_ci"][1]
    for t in times:
        v, lo, hi = r["auc"][t]
        assert lo <= v <= hi
    assert survival_metrics(*args, n_bootstrap=200, seed=7) == r
    # Censoring the follow-up after the last horizon is exact: scikit-survival on the full
    # follow-up (which this cohort's censoring distribution allows) gives the same numbers.
    from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
    from ctith.survival.cox import surv_array

    y_tr, y_te = surv_array(t_tr, e_tr), surv_array(t_te, e_te)
    direct, _ = cumulative_dynamic_auc(y_tr, y_te, m.predict_risk(X_te), times)
    np.testing.assert_allclose([r["auc"][t][0] for t in times], direct, rtol=0, atol=1e-12)
    assert r["ibs"] == pytest.approx(integrated_brier_score(y_tr, y_te, args[5], times), abs=1e-12)
    # The same seed gives the same resamples whatever the model.
    np.testing.assert_array_equal(bootstrap_indices(70, 200, 7), bootstrap_indices(70, 200, 7))
    given = survival_metrics(*args, n_bootstrap=200, seed=99, indices=bootstrap_indices(70, 200, 7))
    assert given == r


def test_risk_direction_matters():
    """A survival probability passed as a risk gives 1 - C: the metrics take risks."""
    x_tr, t_tr, e_tr = _cohort(150, 8, 84)
    X = pd.DataFrame({"x": x_tr})
    m = CoxModel().fit(X, t_tr, e_tr)
    times = [24]
    s = m.predict_survival(X, times)
    good = survival_metrics(t_tr, e_tr, t_tr, e_tr, m.predict_risk(X), s, times, n_bootstrap=0)
    bad = survival_metrics(t_tr, e_tr, t_tr, e_tr, s[:, 0], s, times, n_bootstrap=0)
    assert good["c_index"] == pytest.approx(1 - bad["c_index"], abs=1e-9)
    assert good["auc"][24][0] == pytest.approx(1 - bad["auc"][24][0], abs=1e-9)
    assert good["auc"][24][1:] == (None, None) and good["c_index_ci"] is None


def test_horizon_problem_names_the_reason():
    t_tr, e_tr = np.array([5.0, 10, 20, 30]), np.array([1, 0, 1, 0])
    assert horizon_problem(t_tr, e_tr, np.array([5.0, 10, 20]), np.array([0, 0, 0]), 8) == "no event by this time"
    assert "training" in horizon_problem(t_tr, e_tr, np.array([5.0, 40, 50]), np.array([1, 0, 1]), 35)


def _clinical(n, seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.normal(56, 10, n).round(),
        "histology": rng.choice(["RLPS", "RLMS", "other"], n, p=[0.5, 0.3, 0.2]),
        "t_stage": rng.choice(["T1", "T2", "T3", "T4"], n),
        "noise": rng.normal(size=n),
    }, index=[f"P{i:03d}" for i in range(n)])
    lp = 1.2 * (df["histology"] == "RLMS") + 0.5 * df["t_stage"].str[1].astype(int)
    t_event = rng.exponential(60 * np.exp(-(lp - lp.mean())))
    t_cens = rng.uniform(36, 84, n)
    return df, np.minimum(t_event, t_cens), t_event <= t_cens


SPEC = {"age": "numeric", "histology": {"reference": "RLPS"}, "t_stage": {"ordinal": ["T1", "T2", "T3", "T4"]},
        "noise": "numeric"}


def test_clinical_encoding_as_a_clinician_reads_it():
    import json

    from ctith.survival.clinical import ClinicalEncoder

    df, _, _ = _clinical(40, 1)
    enc = ClinicalEncoder(SPEC).fit(df)
    X = enc.transform(df)
    assert list(X.columns) == ["age", "histology_RLMS", "histology_other", "t_stage", "noise"]
    assert set(X["t_stage"]) == {1.0, 2.0, 3.0, 4.0}
    assert (X.loc[df["histology"] == "RLPS", ["histology_RLMS", "histology_other"]] == 0).all().all()
    assert enc.describe()["histology_RLMS"] == "histology RLMS (reference RLPS)"
    back = ClinicalEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    pd.testing.assert_frame_equal(back.transform(df), X)
    new = df.iloc[:3].copy()
    new.loc["P001", "histology"] = "DDLPS"
    with pytest.raises(SurvivalError, match="patient P001: clinical column 'histology' has 'DDLPS'"):
        enc.transform(new)
    new = df.iloc[:3].copy()
    new.loc["P002", "t_stage"] = " "
    with pytest.raises(SurvivalError, match="patient P002: clinical column 't_stage' is blank"):
        enc.transform(new)


def test_clinical_selection_keeps_the_prognostic_variables():
    from ctith.survival.clinical import ClinicalEncoder, select_clinical

    df, t, e = _clinical(200, 2)
    enc = ClinicalEncoder(SPEC).fit(df)
    chosen, table = select_clinical(enc.transform(df), enc.columns_, t, e)
    assert "histology" in chosen and "t_stage" in chosen and "noise" not in chosen
    row = table.set_index("variable")
    assert row.loc["histology", "univariable_p"] < 0.01 and row.loc["histology", "kept"]
    # Nothing prognostic: the strongest variable is kept, and the table says so.
    df2, t2, e2 = _clinical(60, 3)
    rng = np.random.default_rng(9)
    t2 = rng.permutation(t2)
    X2 = pd.DataFrame({"noise": df2["noise"], "noise2": rng.normal(size=60)}, index=df2.index)
    chosen2, table2 = select_clinical(X2, {"noise": ["noise"], "noise2": ["noise2"]}, t2, e2, p_enter=0.001)
    assert len(chosen2) == 1 and "strongest is kept" in " ".join(table2["note"])


def test_predictions_and_tables_s4_s5():
    from ctith.survival.tables import HORIZONS, metrics_rows, predictions_table, risk_cutoff, table_s4, table_s5

    x_tr, t_tr, e_tr = _cohort(120, 11, 84)
    x_in, t_in, e_in = _cohort(50, 12, 84)
    x_ex, t_ex, e_ex = _cohort(40, 13, 40)  # followed up to 40 months only
    X = pd.DataFrame({"ith": np.concatenate([x_tr, x_in, x_ex])},
                     index=[f"P{i:03d}" for i in range(210)])
    cohort = pd.Series(["train"] * 120 + ["internal_validation"] * 50 + ["external_validation"] * 40,
                       index=X.index)
    fit = pd.Series(np.where(cohort == "train", "oof", "refit"), index=X.index)
    m = CoxModel().fit(X.iloc[:120], t_tr, e_tr)
    cut = risk_cutoff(m.predict_risk(X.iloc[:120]))
    pred = predictions_table(m, X, cohort, fit, cut)
    assert list(pred.columns[:4]) == ["patient_id", "cohort", "covariates", "risk"]
    assert [c for c in pred.columns if c.startswith("survival_")] == [f"survival_{t:g}m" for t in HORIZONS]
    assert (pred.loc[pred["cohort"] == "train", "risk_group"] == "high").sum() == 60
    assert (np.diff(pred.filter(like="survival_").to_numpy(), axis=1) <= 0).all()  # S(t) falls

    rows = []
    for name, sl, (t, e) in (("internal_validation", slice(120, 170), (t_in, e_in)),
                             ("external_validation", slice(170, 210), (t_ex, e_ex))):
        Xc = X.iloc[sl]
        r = survival_metrics(t_tr, e_tr, t, e, m.predict_risk(Xc), m.predict_survival(Xc, HORIZONS), HORIZONS,
                             n_bootstrap=100, seed=0)
        rows += metrics_rows("ITH", name, r)
    metrics = pd.DataFrame(rows)
    s4 = table_s4(metrics, ["ITH", "Clinical"], ["internal_validation", "external_validation"])
    assert s4.loc[0, "Internal validation C-index"].count("(") == 1
    assert (s4.iloc[1, 1:] == "-").all()  # a model without metrics gives dashes, not a crash
    s5 = table_s5(metrics, ["ITH"], ["internal_validation", "external_validation"])
    ext = s5[s5["Cohort"] == "External validation"].iloc[0]
    assert ext["48 months"] == "-" and ext["60 months"] == "-" and ext["12 months"] != "-"


def test_validation_outcomes_never_reach_the_fit():
    """Editing or permuting the validation cohorts' outcomes leaves every coefficient, the
    baseline and the cut-off unchanged; only the validation metrics move."""
    from ctith.survival.clinical import clinical_covariates
    from ctith.survival.fitting import fit_and_evaluate

    df, t, e = _clinical(150, 21)
    cohort = pd.Series(["train"] * 90 + ["internal_validation"] * 30 + ["external_validation"] * 30, index=df.index)
    outcome = pd.DataFrame({"dm_time_months": t, "dm_event": e.astype(int)}, index=df.index)
    train = df.index[:90]

    def run(out):
        Xc, decided = clinical_covariates(df, SPEC, train, out.loc[train, "dm_time_months"],
                                          out.loc[train, "dm_event"])
        cov = pd.Series("refit", index=df.index)
        return decided, *fit_and_evaluate("Clinical", Xc, cov, out, cohort, n_bootstrap=50, seed=1)

    d1, f1, p1, m1 = run(outcome)
    shuffled = outcome.copy()
    val = outcome.index[90:]
    rng = np.random.default_rng(0)
    shuffled.loc[val] = outcome.loc[val].to_numpy()[rng.permutation(60)]
    shuffled.loc[val[:5], "dm_event"] = 1 - shuffled.loc[val[:5], "dm_event"]
    d2, f2, p2, m2 = run(shuffled)
    assert d1 == d2 and f1 == f2
    pd.testing.assert_frame_equal(p1, p2)
    m1, m2 = pd.DataFrame(m1), pd.DataFrame(m2)
    tr = m1["cohort"] == "train"
    pd.testing.assert_frame_equal(m1[tr], m2[tr])
    assert not m1[~tr].equals(m2[~tr])
    assert set(m1["cohort"]) == {"train", "internal_validation", "external_validation"}
    assert "histology" in d1["chosen"]


def test_td_roc_curve_has_scikit_survivals_auc():
    from sksurv.metrics import cumulative_dynamic_auc

    from ctith.survival.cox import surv_array
    from ctith.survival.metrics import cumulative_dynamic_roc

    x_tr, t_tr, e_tr = _cohort(150, 31, 84)
    x_te, t_te, e_te = _cohort(80, 32, 84)
    for t in (12.0, 36.0, 60.0):
        fpr, tpr = cumulative_dynamic_roc(t_tr, e_tr, t_te, e_te, x_te, t)
        auc = cumulative_dynamic_auc(surv_array(t_tr, e_tr), surv_array(np.minimum(t_te, 61), e_te & (t_te <= 61)),
                                     x_te, [t])[0][0]
        assert np.trapezoid(tpr, fpr) == pytest.approx(auc, abs=1e-12)
        assert fpr[-1] == 1.0 and tpr[-1] == pytest.approx(1.0)


def test_calibration_and_decision_curves_of_a_true_model(tmp_path):
    """The data-generating model is calibrated: observed Kaplan-Meier risk by quintile is
    close to the predicted; its net benefit beats treat-all at moderate thresholds."""
    from ctith.survival.decision import decision_curves
    from ctith.survival.metrics import calibration_points

    rng = np.random.default_rng(40)
    n = 2000
    x = rng.normal(size=n)
    lam = np.exp(0.9 * x) / 60.0  # exponential hazard per month
    t_event = rng.exponential(1 / lam)
    t_cens = rng.uniform(40, 84, n)
    time, event = np.minimum(t_event, t_cens), t_event <= t_cens
    pred36 = 1 - np.exp(-lam * 36)
    pts = calibration_points(time, event, pred36, 36.0)
    assert len(pts) == 5 and sum(p["n"] for p in pts) == n
    for p in pts:
        assert p["observed"] == pytest.approx(p["predicted"], abs=0.06)
    frame = pd.DataFrame({"dm_time_months": time, "dm_event": event.astype(int), "true": pred36,
                          "noise": rng.permutation(pred36)})
    d = decision_curves(frame, ["true", "noise"], 36.0, thresholds=[0.2, 0.3, 0.4])
    nb = d.pivot(index="threshold", columns="model", values="net_benefit")
    assert set(nb.columns) == {"true", "noise", "all", "none"}
    assert (nb["true"] > nb["all"]).all() and (nb["true"] > nb["noise"]).all() and (nb["none"] == 0).all()


@pytest.mark.parametrize("cohort", ["demo-like", "short follow-up"])
def test_decision_curves_equal_dcurves(cohort):
    """The numpy decision curves give dcurves' table, column by column: tied months, risks of
    exactly 0 and 1, thresholds that leave nobody test-positive, and (short follow-up) groups
    whose Kaplan-Meier ends before 36 months."""
    from dcurves import dca

    from ctith.survival.decision import decision_curves

    rng = np.random.default_rng(7)
    n = 26
    x = rng.normal(size=n)
    time = np.round(rng.exponential(40 * np.exp(-0.8 * x)), 0) + 1
    follow = rng.uniform(20, 80, n) if cohort == "demo-like" else rng.uniform(10, 40, n)
    event = (time <= follow).astype(int)
    time = np.minimum(time, np.round(follow))
    risk = 1 / (1 + np.exp(-(x - 0.5)))
    frame = pd.DataFrame({"dm_time_months": time, "dm_event": event, "model": risk,
                          "edges": np.where(x > 1, 1.0, np.where(x < -1, 0.0, risk)),
                          "noise": rng.permutation(risk)})
    ours = decision_curves(frame, ["model", "edges", "noise"], 36.0)
    ref = dca(data=frame, outcome="dm_event", modelnames=["model", "edges", "noise"],
              thresholds=np.round(np.arange(0.0, 0.81, 0.01), 2), time=36.0, time_to_outcome_col="dm_time_months")
    assert list(ours.columns) == list(ref.columns) and list(ours["model"]) == list(ref["model"])
    for column in ref.columns[1:]:
        np.testing.assert_allclose(ours[column].to_numpy(float), ref[column].to_numpy(float), rtol=1e-12,
                                   atol=1e-14, err_msg=column)
    if cohort == "short follow-up":
        assert ours["net_benefit"].isna().any() and ours["net_benefit"].notna().any()


@pytest.mark.parametrize("ties", [False, True])
def test_resampled_metrics_equal_scikit_survivals(ties):
    """The bootstrap's numpy metrics give scikit-survival's numbers on every resample, with
    tied times (months rounded) and tied risks (a discrete covariate) included."""
    from ctith.survival.cox import surv_array
    from ctith.survival.metrics import _point_metrics, _ResampledMetrics, horizon_problem

    rng = np.random.default_rng(50 + ties)
    x_tr, t_tr, e_tr = _cohort(90, 51, 84)
    x_te, t_te, e_te = _cohort(45, 52, 84)
    if ties:
        x_tr, x_te = np.round(x_tr), np.round(x_te)
        t_tr, t_te = np.ceil(t_tr / 6) * 6, np.ceil(t_te / 6) * 6
    m = CoxModel().fit(pd.DataFrame({"x": x_tr}), t_tr, e_tr)
    X = pd.DataFrame({"x": x_te})
    risk, times = m.predict_risk(X), [12.0, 24.0, 36.0, 48.0, 60.0]
    surv = m.predict_survival(X, times)
    ok = [t for t in times if horizon_problem(t_tr, e_tr, t_te, e_te, t) is None]
    fast = _ResampledMetrics(t_tr, e_tr, t_te, e_te, risk, surv, times, ok)
    y_train = surv_array(t_tr, e_tr)
    compared = 0
    for idx in [np.arange(45)] + [rng.integers(0, 45, 45) for _ in range(25)]:
        tt, ee = t_te[idx], e_te[idx]
        ref = _point_metrics(y_train, tt, ee, risk[idx], surv[idx], times,
                             [t for t in ok if horizon_problem(t_tr, e_tr, tt, ee, t) is None])
        got = fast(idx)
        for key in ("c_index", "uno_c", "ibs", "auc_dm"):
            assert (got[key] is None) == (ref[key] is None), key
            if ref[key] is not None:
                assert got[key] == pytest.approx(ref[key], abs=1e-12), key
                compared += 1
        for t in times:
            assert (got["auc"][t] is None) == (ref["auc"][t] is None)
            if ref["auc"][t] is not None:
                assert got["auc"][t] == pytest.approx(ref["auc"][t], abs=1e-12)
                compared += 1
    assert compared > 150


def test_clinical_selection_skips_what_training_cannot_estimate():
    """A variable with one level in training (no column after reference coding) or one
    value only is reported and skipped, not fitted."""
    from ctith.survival.clinical import ClinicalEncoder, select_clinical

    df, t, e = _clinical(80, 4)
    df["n_stage"] = "N0"
    df["constant"] = 1.0
    spec = {**SPEC, "n_stage": {"reference": "N0"}, "constant": "numeric"}
    enc = ClinicalEncoder(spec).fit(df)
    assert enc.columns_["n_stage"] == []
    chosen, table = select_clinical(enc.transform(df), enc.columns_, t, e)
    notes = table.set_index("variable")["note"]
    assert notes["n_stage"] == notes["constant"] == "one value only in training"
    assert "n_stage" not in chosen and "constant" not in chosen and chosen
    # A level only validation patients have, in a variable the model does not use, stops nothing.
    from ctith.survival.clinical import clinical_covariates

    full = pd.concat([df, df.iloc[:5].assign(n_stage="N1").rename(index=lambda i: i + "v")])
    X, decided = clinical_covariates(full, spec, df.index, t, e)
    assert list(X.index) == list(full.index) and decided["chosen"] == chosen


@pytest.mark.slow
def test_null_shuffled_training_outcomes_give_chance_validation_c_index():
    """The chain of the Combined model (clinical selection; the cross-fitted ITH signature
    from the tuned forest; the two-stage cross-fitted DL_F signature from deep features of
    nets that memorise their training patients' outcomes; Cox on training), fitted on
    shuffled training outcomes: its validation C-index averages 0.5 +/- 0.1 over 5 seeds,
    with the clinical variables chosen stepwise and penalised (the default). The outcome
    depends on the planted heterogeneity behind the ITH scores and the deep features;
    unshuffled, the same chain finds it."""
    from ctith.cohort.crossfit import assign_folds, two_stage_scores
    from ctith.models.ith_model import TunedClassifier
    from ctith.radiomics.selection import radscore_fitter
    from ctith.survival.clinical import clinical_covariates
    from ctith.survival.fitting import evaluate_model, fit_and_evaluate
    from ctith.survival.penalised import PenaltyParams, clinical_candidates, fit_penalised_model

    def validation_c(seed, shuffle):
        df, _, _ = _clinical(240, 100 + seed)
        rng = np.random.default_rng(seed)
        h = rng.random(240)  # planted heterogeneity: raises the hazard
        t_event, t_cens = rng.exponential(60 * np.exp(-2.4 * (h - 0.5))), rng.uniform(36, 84, 240)
        outcome = pd.DataFrame({"dm_time_months": np.minimum(t_event, t_cens),
                                "dm_event": (t_event <= t_cens).astype(int)}, index=df.index)
        ith = pd.DataFrame({f"k{k}": h + rng.normal(0, 0.3, 240) for k in (2, 3, 4, 5)}, index=df.index)
        cohort = pd.Series(np.where(np.arange(240) < 120, "train", "external_validation"), index=df.index)
        train = df.index[:120]
        if shuffle:
            outcome.loc[train] = outcome.loc[train].to_numpy()[rng.permutation(120)]
        y = outcome.loc[train, "dm_event"].to_numpy()
        folds = assign_folds(train, y, 5, seed)
        forest = TunedClassifier(n_trials=4, seed=seed).fit(ith.loc[train], y, folds=folds)
        signature = pd.Series(forest.predict_proba(ith), index=df.index)
        signature.loc[train] = forest.oof_.to_numpy()

        def deep(seen):  # a net's features: the image's heterogeneity, and the labels it trained on
            memorised = np.where(df.index.isin(seen), 2.0 * outcome["dm_event"].to_numpy() - 1.0, 0.0)
            return pd.DataFrame((0.5 * h + 0.5 * memorised)[:, None] + rng.normal(0, 0.5, (240, 8)), index=df.index,
                                columns=[f"dlf_{j:03d}" for j in range(8)])

        fit_lasso = radscore_fitter(outcome["dm_event"], outcome["dm_time_months"])
        fold_features = {k: deep(train[(folds != k).to_numpy()]).loc[train] for k in range(5)}
        dl_f, _, _ = two_stage_scores(deep(train), fold_features, folds, fit_lasso, name="dl_f")
        signatures = {"ith": signature, "dl_f": dl_f.set_index("patient_id")["dl_f"]}
        fit = pd.Series(np.where(cohort == "train", "oof", "refit"), index=df.index)
        Xc, _ = clinical_covariates(df, SPEC, train, outcome.loc[train, "dm_time_months"], y)
        _, _, stepwise = fit_and_evaluate("Combined", Xc.assign(**signatures), fit, outcome, cohort, n_bootstrap=0)
        Xp, _ = clinical_candidates(df, SPEC, train)
        Xp = Xp.assign(**signatures)
        fitted = fit_penalised_model("Combined", Xp.loc[train], outcome, folds.to_numpy(), PenaltyParams(),
                                     unpenalised=list(signatures))
        _, penalised = evaluate_model(fitted, Xp[fitted["features"]], fit, outcome, cohort, n_bootstrap=0)
        return {name: next(r["value"] for r in rows if r["cohort"] == "external_validation"
                           and r["metric"] == "c_index") for name, rows in (("stepwise", stepwise),
                                                                         ("penalised", penalised))}

    null = pd.DataFrame([validation_c(seed, shuffle=True) for seed in range(5)])
    assert (abs(null.mean() - 0.5) <= 0.1).all(), null
    found = validation_c(0, shuffle=False)
    assert found["stepwise"] > 0.56 and found["penalised"] > 0.56, found  # the signal is there to find


def test_frozen_model_file_scores_as_the_fit(tmp_path):
    """The model file, written and read back, gives the predictions and metrics of the model
    that was fitted: what the survival_predict rule and `ctith predict` rely on."""
    from ctith.io import read_json, write_json
    from ctith.survival.clinical import clinical_covariates
    from ctith.survival.fitting import evaluate_model, fit_and_evaluate, fit_cox_model

    df, t, e = _clinical(120, 5)
    cohort = pd.Series(["train"] * 80 + ["external_validation"] * 40, index=df.index)
    outcome = pd.DataFrame({"dm_time_months": t, "dm_event": e.astype(int)}, index=df.index)
    train = df.index[:80]
    X, _ = clinical_covariates(df, SPEC, train, outcome.loc[train, "dm_time_months"], outcome.loc[train, "dm_event"])
    cov = pd.Series("measured", index=df.index)
    fitted, predictions, rows = fit_and_evaluate("Clinical", X, cov, outcome, cohort, n_bootstrap=20, seed=2)
    assert fit_cox_model("Clinical", X.loc[train], outcome) == fitted  # the training rows are all it reads
    write_json(fitted, tmp_path / "model.json")
    p2, r2 = evaluate_model(read_json(tmp_path / "model.json"), X, cov, outcome, cohort, n_bootstrap=20, seed=2)
    pd.testing.assert_frame_equal(predictions, p2, check_exact=True)
    pd.testing.assert_frame_equal(pd.DataFrame(rows), pd.DataFrame(r2), check_exact=True)


def test_true_model_row_scores_the_generator():
    """The demo's reference row: the generator's linear predictor and Weibull survival,
    scored like a fitted model. At the paper's size its predicted 36-month DM risk matches
    the Kaplan-Meier estimate, and its C-index is what the generator allows."""
    from sksurv.nonparametric import kaplan_meier_estimator

    from ctith.demo.patients import simulate_cohort
    from ctith.demo.truth import true_survival
    from ctith.demo.true_model import TRUE_MODEL, true_model_rows

    specs, clin = simulate_cohort("paper", seed=3)
    lp = pd.Series({s.patient_id: s.extra["linear_predictor"] for s in specs})
    outcome = clin.set_index("patient_id")[["dm_time_months", "dm_event"]]
    cohort = pd.Series(np.where(np.arange(len(lp)) % 3 == 0, "external_validation", "train"), index=lp.index)
    rows = pd.DataFrame(true_model_rows(lp, outcome, cohort, [12.0, 36.0, 60.0], n_bootstrap=50, seed=1))
    assert set(rows["model"]) == {TRUE_MODEL} and set(rows["cohort"]) == {"train", "external_validation"}
    c = rows.set_index(["cohort", "metric"]).loc[("external_validation", "c_index")]
    assert 0.65 < c["value"] < 0.85 and c["ci_low"] < c["value"] < c["ci_high"]
    t, s = kaplan_meier_estimator(outcome["dm_event"].astype(bool), outcome["dm_time_months"])
    observed = 1 - s[np.searchsorted(t, 36.0, side="right") - 1]
    predicted = 1 - true_survival(lp, [36.0])[:, 0].mean()
    assert abs(observed - predicted) < 0.05, (observed, predicted)
