"""Selection on the training cohort (variance, Spearman pruning, LASSO-Cox) and the Rad-score."""

import numpy as np
import pandas as pd
import pytest

from ctith import cli
from ctith.errors import CtithError
from ctith.io import read_json, write_json, write_tsv
from ctith.radiomics.selection import RadScore, SelectionError, correlation_prune, variance_filter


def survival_cohort(n=160, p=30, seed=3):
    """Two features drive the hazard; 'f0_copy' is a near duplicate of f0; the rest is noise."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    X = pd.DataFrame(rng.normal(size=(n, p)), index=pd.Index(ids, name="patient_id"),
                     columns=[f"f{j}" for j in range(p)])
    X["f0_copy"] = X["f0"] * 3.0 + rng.normal(0, 0.1, n)
    X["flat"] = 7.0
    lp = 1.2 * X["f0"] - 0.9 * X["f1"]
    t_event = rng.exponential(30.0 / np.exp(lp))
    t_cens = rng.uniform(10, 60, n)
    event = (t_event <= t_cens).astype(int)
    time = np.minimum(t_event, t_cens).round(2)
    cohort = pd.Series(np.where(np.arange(n) < 100, "train", np.where(np.arange(n) < 130, "internal_validation",
                                                                          "external_validation")), index=ids)
    return X, pd.Series(event, index=ids), pd.Series(time, index=ids), cohort


def test_variance_filter_is_scale_free():
    X = pd.DataFrame({"big": [0.0, 1e6, 2e6, 3e6], "flat": 1.0, "one_outlier": [0, 0, 0, 1000.0] * 1})
    X = pd.concat([X] * 10, ignore_index=True)
    X.loc[0:38, "one_outlier"] = 0.0  # one value in 40 away from the rest: variance 0.024 after scaling
    assert list(variance_filter(X, 1e-3)) == ["big", "one_outlier"]
    assert list(variance_filter(X, 0.05)) == ["big"]


def test_correlation_prune_keeps_one_of_each_correlated_group():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    X = pd.DataFrame({"a": a, "a_exp": np.exp(a), "a_noisy": a + rng.normal(0, 0.05, 200), "b": b,
                      "mix": a + b})
    kept = list(correlation_prune(X, 0.9))
    # a, exp(a) and a + small noise have Spearman rho > 0.9: one stays; b and a + b stay.
    assert len(set(kept) & {"a", "a_exp", "a_noisy"}) == 1
    assert {"b", "mix"} <= set(kept)
    rho = X[kept].corr(method="spearman").abs().to_numpy().copy()
    np.fill_diagonal(rho, 0)
    assert rho.max() <= 0.9
    assert list(correlation_prune(X, 0.9)) == kept  # deterministic


def test_lasso_cox_finds_the_prognostic_features():
    X, event, time, cohort = survival_cohort()
    train = cohort == "train"
    model = RadScore(seed=1).fit(X[train], event[train], time[train])
    assert "flat" not in model.variance_kept_
    assert not {"f0", "f0_copy"} <= set(model.correlation_kept_)
    chosen = set(model.coef_.index)
    assert ({"f0", "f0_copy"} & chosen) and "f1" in chosen
    sign_f0 = np.sign(model.coef_.get("f0", model.coef_.get("f0_copy")))
    assert sign_f0 > 0 and model.coef_["f1"] < 0
    score = model.predict(X)
    assert score.index.equals(X.index)
    from sksurv.metrics import concordance_index_censored

    val = ~train
    c = concordance_index_censored(event[val].astype(bool), time[val], score[val])[0]
    assert c > 0.7
    assert model.report()["selected"] == len(model.coef_) and model.alpha_ in set(model.cv_results_["alpha"])
    sparse = RadScore(seed=1, alpha_rule="1se").fit(X[train], event[train], time[train])
    assert sparse.alpha_ >= model.alpha_ and len(sparse.coef_) <= len(model.coef_)


def test_too_few_events_is_a_clear_error():
    X, event, time, cohort = survival_cohort(n=40)
    event[:] = 0
    event.iloc[:3] = 1
    with pytest.raises(SelectionError, match="3 DM events; LASSO-Cox with 5-fold cross-validation"):
        RadScore().fit(X, event, time)


def write_inputs(root, X, event, time, cohort):
    write_tsv(X, root / "features.tsv", index=True)
    write_tsv(pd.DataFrame({"patient_id": X.index, "institution": "A", "cohort": cohort.to_numpy(),
                            "assigned_by": "sheet"}), root / "split.tsv")
    write_tsv(pd.DataFrame({"pid": X.index, "event": event.to_numpy(), "months": time.to_numpy()}),
              root / "clinical.tsv")
    write_json({"fit": {"mode": "train"}}, root / "harmonization.json")


def run_select(root, tag, harmonization="harmonization.json"):
    """The fit (the training patients' scores), then the signature on every patient."""
    out = root / tag
    rc = cli.main(["select", "--features", str(root / "features.tsv"), "--harmonization",
                   str(root / harmonization), "--split", str(root / "split.tsv"),
                   "--clinical", str(root / "clinical.tsv"), "--clinical-columns",
                   '{"patient_id": "pid", "dm_event": "event", "dm_time_months": "months"}', "--seed", "5",
                   "--out-scores", str(out / "train_scores.tsv"), "--out-signature", str(out / "signature.tsv"),
                   "--out-cv", str(out / "cv.tsv"), "--out-report", str(out / "report.json")])
    assert rc == 0
    assert cli.main(["signature-apply", "--features", str(root / "features.tsv"), "--signature",
                     str(out / "signature.tsv"), "--train-scores", str(out / "train_scores.tsv"), "--split",
                     str(root / "split.tsv"), "--name", "rad_score", "--harmonization", str(root / harmonization),
                     "--out", str(out / "scores.tsv")]) == 0
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_saved_signature_scores_as_the_fitted_model():
    from ctith.radiomics.selection import apply_signature

    X, event, time, cohort = survival_cohort()
    train = (cohort == "train").to_numpy()
    model = RadScore(seed=1).fit(X[train], event[train], time[train])
    np.testing.assert_allclose(apply_signature(model.signature(), X).to_numpy(), model.predict(X).to_numpy(),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(SelectionError, match="needs feature"):
        apply_signature(model.signature(), X.drop(columns=model.signature()["feature"].iloc[0]))


def test_permuting_validation_labels_changes_nothing(tmp_path):
    X, event, time, cohort = survival_cohort()
    write_inputs(tmp_path, X, event, time, cohort)
    first = run_select(tmp_path, "a")
    val = (cohort != "train").to_numpy()
    rng = np.random.default_rng(9)
    perm = rng.permutation(np.flatnonzero(val))
    event2, time2 = event.copy(), time.copy()
    event2.iloc[np.flatnonzero(val)] = event.iloc[perm].to_numpy()
    time2.iloc[np.flatnonzero(val)] = time.iloc[perm].to_numpy()
    assert not event2.equals(event)
    write_inputs(tmp_path, X, event2, time2, cohort)
    assert run_select(tmp_path, "b") == first  # every output byte-identical
    report = read_json(tmp_path / "a" / "report.json")
    assert report["n_train"] == 100 and report["combat_mode"] == "train"
    scores = pd.read_csv(tmp_path / "a" / "scores.tsv", sep="\t")
    assert len(scores) == 160 and set(scores["cohort"]) == {"train", "internal_validation", "external_validation"}


def test_harmonize_train_mode_then_select_ignores_validation_features(tmp_path):
    """train-mode ComBat + selection: changing validation features changes nothing fitted."""
    X, event, time, cohort = survival_cohort()
    site = pd.Series(np.where(np.arange(len(X)) % 2 == 0, "A", "B"), index=X.index)
    X = X.drop(columns="flat")
    X[site == "B"] = X[site == "B"] * 1.2 + 0.5

    def run(features, tag):
        root = tmp_path / tag
        root.mkdir()
        write_tsv(features, root / "raw.tsv", index=True)
        write_tsv(pd.DataFrame({"feature": features.columns, "reproducible": True}), root / "icc.tsv")
        write_tsv(pd.DataFrame({"patient_id": X.index, "institution": site.to_numpy(), "image": "x", "mask": "x"}),
                  root / "samples.tsv")
        write_inputs(root, features, event, time, cohort)
        rc = cli.main(["harmonize", "--features", str(root / "raw.tsv"), "--icc", str(root / "icc.tsv"),
                       "--split", str(root / "split.tsv"), "--samples", str(root / "samples.tsv"),
                       "--clinical", str(root / "clinical.tsv"), "--clinical-columns",
                       '{"patient_id": "pid", "dm_event": "event", "dm_time_months": "months"}',
                       "--mode", "train", "--out-features", str(root / "train_features.tsv"),
                       "--out-estimates", str(root / "combat.json")])
        assert rc == 0
        rc = cli.main(["harmonize-apply", "--features", str(root / "raw.tsv"), "--estimates", str(root / "combat.json"),
                       "--samples", str(root / "samples.tsv"), "--clinical", str(root / "clinical.tsv"),
                       "--clinical-columns", '{"patient_id": "pid", "dm_event": "event", "dm_time_months": "months"}',
                       "--out-features", str(root / "features.tsv"), "--out-smd", str(root / "smd.tsv"),
                       "--out-report", str(root / "harmonization.json")])
        assert rc == 0
        run_select(root, "sel", "combat.json")
        return root

    a = run(X, "a")
    X2 = X.copy()
    X2[(cohort != "train").to_numpy()] = X2[(cohort != "train").to_numpy()] * 2.0 - 1.0
    b = run(X2, "b")
    for name in ("signature.tsv", "cv.tsv", "report.json"):
        assert (a / "sel" / name).read_bytes() == (b / "sel" / name).read_bytes(), name
    assert (a / "combat.json").read_bytes() == (b / "combat.json").read_bytes()
    # The saved estimates harmonise a patient as the run did.
    from ctith.radiomics.harmonize import ComBat

    combat = ComBat.from_dict(read_json(a / "combat.json"))
    harmonised = pd.read_csv(a / "features.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(combat.transform(X, site).to_numpy(), harmonised.loc[X.index].to_numpy(), rtol=1e-9)
    # The fit's own harmonised training rows are the applied estimates' (bit for bit).
    fitted = pd.read_csv(a / "train_features.tsv", sep="\t", index_col=0)
    assert fitted.index.tolist() == X.index[(cohort == "train").to_numpy()].tolist()
    np.testing.assert_array_equal(fitted.to_numpy(), harmonised.loc[fitted.index].to_numpy())
    sa = pd.read_csv(a / "sel" / "scores.tsv", sep="\t")
    sb = pd.read_csv(b / "sel" / "scores.tsv", sep="\t")
    train = sa["cohort"] == "train"
    assert sa[train].equals(sb[train]) and not sa[~train].equals(sb[~train])
    assert read_json(a / "harmonization.json")["fitted_on"] == "train cohort only"


def test_select_without_training_patients_fails_clearly(tmp_path):
    X, event, time, cohort = survival_cohort(n=20)
    write_inputs(tmp_path, X, event, time, cohort.replace("train", "internal_validation"))
    with pytest.raises(CtithError, match="puts no patient with features in the train cohort"):
        args = cli.build_parser().parse_args([
            "select", "--features", str(tmp_path / "features.tsv"), "--split", str(tmp_path / "split.tsv"),
            "--clinical", str(tmp_path / "clinical.tsv"), "--clinical-columns",
            '{"patient_id": "pid", "dm_event": "event", "dm_time_months": "months"}',
            "--out-scores", "s", "--out-signature", "g", "--out-cv", "c", "--out-report", "r"])
        args.func(args)


def test_out_of_fold_and_validation_scores_share_one_scale():
    """Each LASSO's score (the refit's, each fold's) is put on unit SD over the patients it
    was fitted on, so pooled out-of-fold scores of the training patients spread as the
    refit's scores of new patients from the same population do (before: a fold LASSO with
    25 features against one with 1 made the ratio 1.36 at seed 3)."""
    from ctith.cohort.crossfit import assign_folds

    def draw(n, rng):
        X = pd.DataFrame(rng.normal(size=(n, 30)), columns=[f"f{j}" for j in range(30)])
        t_event = rng.exponential(50 * np.exp(-(0.5 * X["f0"] - 0.4 * X["f1"]).to_numpy()))
        t_cens = rng.uniform(10, 90, n)
        return X, np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int)

    for seed in range(6):
        rng = np.random.default_rng(seed)
        X, time, event = draw(68, rng)
        X.index = [f"P{i:03d}" for i in range(68)]
        new, _, _ = draw(400, rng)
        model = RadScore(alpha_min_ratio=0.05).fit(X, event, time, folds=assign_folds(X.index, event, 10, seed))
        assert model.predict(X).std(ddof=0) == pytest.approx(1.0)
        ratio = model.oof_.std(ddof=0) / model.predict(new).std(ddof=0)
        assert 0.8 < ratio < 1.25, (seed, ratio)
