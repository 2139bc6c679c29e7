"""The penalised Cox model of the clinical and combined models: scikit-survival's documented
values, what it keeps at few events, and its model file."""

import numpy as np
import pandas as pd
import pytest

from ctith.survival.cox import efron_log_likelihoods
from ctith.survival.penalised import (PenaltyParams, _path, _standardise, choose_alpha, clinical_candidates,
                                      fit_penalised_cox, fit_penalised_model)


def test_reproduces_scikit_survivals_penalised_cox_user_guide():
    """scikit-survival's user guide "Penalized Cox Models" (doc/user_guide/coxnet.ipynb): the
    breast cancer data, one-hot encoded and standardised, elastic net with l1_ratio 0.9 and
    alpha_min_ratio 0.01. Its grid search picks alpha = 0.03860196504106796 from the path
    and prints "Number of non-zero coefficients: 22" for the model at that alpha."""
    from sksurv.datasets import load_breast_cancer
    from sksurv.preprocessing import OneHotEncoder

    X, y = load_breast_cancer()
    Z, _, _ = _standardise(OneHotEncoder().fit_transform(X))
    event, time = (y[n] for n in y.dtype.names)
    params = PenaltyParams(l1_ratio=0.9, n_alphas=100, alpha_min_ratio=0.01)
    coefs, alphas = _path(Z, time, event, params, np.ones(Z.shape[1]))
    assert len(alphas) == 100
    at = int(np.argmin(np.abs(alphas - 0.03860196504106796)))
    assert alphas[at] == pytest.approx(0.03860196504106796, rel=1e-12)
    assert (coefs[:, at] != 0).sum() == 22
    single, _ = _path(Z, time, event, params, np.ones(Z.shape[1]), alphas=[alphas[at]])
    assert (single[:, 0] != 0).sum() == 22


def _cohort(n, seed, n_noise=6):
    """Two prognostic covariates (log-HR 0.9 and 0.6 per SD), ``n_noise`` without effect
    (one correlated 0.6 with the first), administrative censoring."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2 + n_noise)), columns=["a", "b"] + [f"noise{j}" for j in range(n_noise)],
                     index=[f"P{i:03d}" for i in range(n)])
    X["noise0"] = 0.6 * X["a"] + 0.8 * X["noise0"]
    t_event = rng.exponential(60 * np.exp(-(0.9 * X["a"] + 0.6 * X["b"])))
    t_cens = rng.uniform(36, 84, n)
    return X, np.minimum(t_event, t_cens), t_event <= t_cens


def test_noise_holds_little_of_the_linear_predictor_at_few_events():
    """At the paper's training size (142 patients, about 60 events) and 8 candidates, over
    20 cohorts: the penalised model puts on average under 10% of its linear predictor's
    variance on covariates without effect (3.3% when written; 13.7% at 36 patients, where
    the stepwise selection has 9.5%: tests/benchmarks/survival_simulation.py compares them)."""
    shares = []
    for seed in range(20):
        X, t, e = _cohort(142, seed)
        model, record = fit_penalised_cox(X, t, e, np.arange(142) % 10, PenaltyParams())
        lp_noise = X[[c for c in model.feature_names_ if c.startswith("noise")]].to_numpy() @ \
            model.coef_[[c for c in model.feature_names_ if c.startswith("noise")]].to_numpy()
        total = np.var(model.predict_risk(X))
        shares.append(np.var(lp_noise) / total if total > 0 else 0.0)
        assert set(record["kept"]) == set(model.feature_names_)
        assert record["cv_partial_likelihood"][record["alpha_index"]] == max(record["cv_partial_likelihood"])
    assert np.mean(shares) < 0.10, shares


def test_unpenalised_signatures_always_stay_and_the_1se_rule_penalises_more():
    X, t, e = _cohort(60, 3)
    folds = np.arange(60) % 5
    model, record = fit_penalised_cox(X, t, e, folds, PenaltyParams(l1_ratio=1.0), unpenalised=["b"])
    assert "b" in model.feature_names_ and record["unpenalised"] == ["b"]
    _, strict = fit_penalised_cox(X, t, e, folds, PenaltyParams(l1_ratio=1.0, rule="1se"), unpenalised=["b"])
    assert strict["alpha"] >= record["alpha"]
    assert len(strict["kept"]) <= len(record["kept"])
    cvpl = np.array([[-3.0, -1.0, -1.2, -2.0], [-3.0, -1.0, -1.1, -2.0]])
    assert choose_alpha(np.array([4.0, 3.0, 2.0, 1.0]), cvpl, "min") == 1


def test_model_file_predicts_from_the_kept_covariates_on_their_own_scale():
    """The record scores as a Cox model on the kept covariates in their own units; a
    validation patient needs only those."""
    from ctith.survival.cox import CoxModel

    X, t, e = _cohort(80, 5)
    X["age"] = 56 + 10 * X["a"]  # a unit that is not an SD: coefficients come back per year
    X = X.drop(columns="a")
    outcome = pd.DataFrame({"dm_time_months": t, "dm_event": e.astype(int)}, index=X.index)
    fitted = fit_penalised_model("Combined", X, outcome, np.arange(80) % 10, PenaltyParams(), unpenalised=["b"])
    model = CoxModel.from_dict(fitted)
    assert "age" in fitted["features"] and 0.04 < dict(zip(fitted["features"], fitted["coef"]))["age"] < 0.15
    risk = model.predict_risk(X[fitted["features"]])
    assert np.corrcoef(risk, 0.09 * X["age"] + 0.6 * X["b"])[0, 1] > 0.9
    assert fitted["risk_cutoff"] == pytest.approx(np.median(risk))


def test_clinical_candidates_encode_every_variable_from_training_levels():
    df = pd.DataFrame({"sex": ["F", "M", "M", "F"], "t_stage": ["T1", "T2", "T3", "T4"], "age": [50, 60, 70, 80]},
                      index=["P1", "P2", "P3", "P4"])
    spec = {"sex": {"reference": "F"}, "t_stage": {"ordinal": ["T1", "T2", "T3", "T4"]}, "age": "numeric"}
    X, record = clinical_candidates(df, spec, ["P1", "P2"])
    assert list(X.columns) == ["sex_M", "t_stage", "age"] and len(X) == 4
    assert record["encoder_columns"] == {"sex": ["sex_M"], "t_stage": ["t_stage"], "age": ["age"]}


def test_vectorised_likelihood_equals_statsmodels_efron_with_ties():
    from statsmodels.duration.hazard_regression import PHReg

    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 3))
    time = rng.integers(1, 12, 50).astype(float)  # many tied times
    event = rng.random(50) < 0.6
    coefs = rng.normal(size=(3, 7))
    reference = PHReg(time, X, status=event.astype(int), ties="efron")
    expected = [reference.loglike(b) for b in coefs.T]
    np.testing.assert_allclose(efron_log_likelihoods(X, time, event, coefs), expected, rtol=1e-12)
