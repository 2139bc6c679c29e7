"""Shared cross-fitting folds, and out-of-fold signatures that do not carry overfitting."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored

from ctith.cohort.crossfit import (CrossfitError, assign_folds, fold_positions, merge_folds, training_or_refit,
                                  two_stage_scores)
from ctith.models.ith_model import TunedClassifier
from ctith.radiomics.selection import RadScore, radscore_fitter


def _ids(n):
    return [f"A{i:03d}" for i in range(1, n + 1)]


def test_folds_are_stratified_seeded_and_keyed_by_patient():
    rng = np.random.default_rng(0)
    ids, event = _ids(60), rng.random(60) < 0.3
    folds = assign_folds(ids, event, 5, seed=42)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    per_fold = pd.Series(event, index=ids).groupby(folds).sum()
    assert per_fold.max() - per_fold.min() <= 1  # events spread evenly
    order = rng.permutation(60)
    shuffled = assign_folds([ids[i] for i in order], event[order], 5, seed=42)
    pd.testing.assert_series_equal(shuffled, folds)  # row order does not matter
    assert not assign_folds(ids, event, 5, seed=43).equals(folds)
    pos = fold_positions(folds, ids[::-1])
    assert sorted(np.concatenate([te for _, te in pos]).tolist()) == list(range(60))
    with pytest.raises(CrossfitError, match="2 patients of its smaller DM class"):
        assign_folds(ids[:10], [1, 1] + [0] * 8, 5, seed=0)
    with pytest.raises(CrossfitError, match="patient A061 is a training patient without"):
        fold_positions(folds, ids + ["A061"])


def test_merged_folds_are_unions_of_the_shared_folds_and_stay_stratified():
    """The network's fewer folds (dl.crossfit_folds): each a union of shared folds, so a patient
    a fold net holds out is held out by no other; stratified as the shared folds are."""
    rng = np.random.default_rng(1)
    ids, event = _ids(68), rng.random(68) < 0.44
    folds = assign_folds(ids, event, 10, seed=42)
    merged = merge_folds(folds, 5)
    assert merged.index.equals(folds.index) and sorted(set(merged)) == [0, 1, 2, 3, 4]
    assert (merged == folds % 5).all()  # fold k -> k mod 5: folds 0 and 5 form group 0, ...
    for k in range(5):
        assert set(folds[merged == k]) == {k, k + 5}
    size = merged.value_counts()
    dm = pd.Series(event, index=ids).reindex(merged.index).groupby(merged).sum()
    assert size.max() - size.min() <= 1 and dm.max() - dm.min() <= 1, (size, dm)
    assert merge_folds(folds, 10).equals(folds) and merge_folds(folds, 12).equals(folds)
    assert sorted(set(merge_folds(folds, 3))) == [0, 1, 2]
    with pytest.raises(CrossfitError, match="at least 2 folds"):
        merge_folds(folds, 1)


def test_training_patients_take_the_fits_value_everyone_else_the_refits():
    refit = pd.Series([0.1, 0.2, 0.3, 0.4], index=["T1", "V1", "T2", "P1"])
    cohort = pd.Series({"T1": "train", "T2": "train", "V1": "internal_validation"})
    values, is_train = training_or_refit(refit, cohort, pd.Series({"T2": 0.9, "T1": 0.8, "X": 0.5}))
    np.testing.assert_array_equal(values, [0.8, 0.2, 0.9, 0.4])
    np.testing.assert_array_equal(is_train, [True, False, True, False])
    with pytest.raises(CrossfitError, match="patient T2: a training patient the fit did not score"):
        training_or_refit(refit, cohort, pd.Series({"T1": 0.8}))


def test_shared_folds_reproduce_the_ith_models_own_cv():
    """Given the shared folds, the ITH model's search runs on the same folds as its own
    seeded CV over patients sorted by ID: the same trials and out-of-fold probabilities."""
    rng = np.random.default_rng(1)
    ids = _ids(50)
    y = (rng.random(50) < 0.4).astype(int)
    X = pd.DataFrame(rng.normal(size=(50, 3)) + y[:, None] * 0.8, index=ids, columns=["k2", "k3", "k4"])
    own = TunedClassifier(n_trials=3, cv_folds=5, seed=7).fit(X, y)
    shared = TunedClassifier(n_trials=3, cv_folds=99, seed=7).fit(X, y, folds=assign_folds(ids, y, 5, 7))
    pd.testing.assert_series_equal(shared.oof_, own.oof_)
    assert shared.best_params_ == own.best_params_ and shared.cv_folds == 5


def test_out_of_fold_signatures_do_not_carry_overfitting():
    """A pure-noise signature: the forest the ITH search can build scores it near AUC 1 on
    its own training patients; out of fold it is near chance. The Rad-score's LASSO does
    the same on noise features: its in-sample C-index exceeds the out-of-fold one."""
    rng = np.random.default_rng(2)
    n = 120
    ids = _ids(n)
    y = (rng.random(n) < 0.35).astype(int)
    X = pd.DataFrame(rng.normal(size=(n, 4)), index=ids, columns=["k2", "k3", "k4", "k5"])
    folds = assign_folds(ids, y, 5, seed=3)
    m = TunedClassifier(n_trials=4, seed=3).fit(X, y, folds=folds)
    in_sample = roc_auc_score(y, m.predict_proba(X))
    out_of_fold = roc_auc_score(y, m.oof_)
    assert in_sample > 0.9
    assert abs(out_of_fold - 0.5) < 0.15

    time = rng.uniform(5, 84, n)
    F = pd.DataFrame(rng.normal(size=(n, 30)), index=ids, columns=[f"f{i}" for i in range(30)])
    r = RadScore(alpha_min_ratio=0.01).fit(F, y, time, folds=folds)
    assert r.n_folds == 5 and r.oof_.notna().all()
    c_in = concordance_index_censored(y.astype(bool), time, r.predict(F).to_numpy())[0]
    c_oof = concordance_index_censored(y.astype(bool), time, r.oof_.to_numpy())[0]
    assert c_in > c_oof + 0.05
    assert abs(c_oof - 0.5) < 0.12


def test_crossfit_folds_command(tmp_path):
    from ctith import cli

    ids = _ids(30)
    cohort = ["train"] * 20 + ["internal_validation"] * 10
    event = [1, 0, 0] * 10
    pd.DataFrame({"patient_id": ids, "institution": "A", "cohort": cohort}).to_csv(tmp_path / "split.tsv", sep="\t",
                                                                                   index=False)
    pd.DataFrame({"patient_id": ids, "dm_event": event, "dm_time_months": 40.0}).to_csv(
        tmp_path / "clinical.tsv", sep="\t", index=False)
    args = ["crossfit-folds", "--split", str(tmp_path / "split.tsv"), "--clinical", str(tmp_path / "clinical.tsv"),
            "--seed", "5", "--out", str(tmp_path / "folds.tsv")]
    assert cli.main([*args, "--folds", "4"]) == 0
    folds = pd.read_csv(tmp_path / "folds.tsv", sep="\t")
    assert list(folds["patient_id"]) == ids[:20] and set(folds["fold"]) == {0, 1, 2, 3}
    assert cli.main([*args, "--folds", "8"]) != 0  # 7 training patients with DM


def test_cox_does_not_overweight_a_cross_fitted_noise_signature():
    """In a "+ ITH" Cox model beside a real clinical covariate, an in-sample noise signature
    looks highly significant; the same signature out of fold adds nothing (LR p > 0.05)."""
    from scipy.stats import chi2

    from ctith.survival.cox import CoxModel

    rng = np.random.default_rng(6)
    n = 120
    ids = _ids(n)
    x = rng.normal(size=n)
    t_event, t_cens = rng.exponential(60 * np.exp(-0.8 * x)), rng.uniform(36, 84, n)
    time, event = np.minimum(t_event, t_cens), t_event <= t_cens
    noise = pd.DataFrame(rng.normal(size=(n, 4)), index=ids, columns=["k2", "k3", "k4", "k5"])
    m = TunedClassifier(n_trials=4, seed=3).fit(noise, event.astype(int),
                                                folds=assign_folds(ids, event.astype(int), 5, 3))
    base = CoxModel().fit(pd.DataFrame({"clinical": x}, index=ids), time, event).log_likelihood_

    def added(signature):
        cox = CoxModel().fit(pd.DataFrame({"clinical": x, "ith": signature}, index=ids), time, event)
        return cox.coef_["ith"], chi2.sf(2 * (cox.log_likelihood_ - base), 1)

    coef_in, p_in = added(m.predict_proba(noise))
    coef_oof, p_oof = added(m.oof_.to_numpy())
    assert p_in < 1e-4 and coef_in > 2
    assert p_oof > 0.05 and abs(coef_oof) < coef_in / 3


def _memorising_first_stage(ids, event, folds, rng, n_features=16):
    """Deep features as an overfit network gives them: patients it trained on carry their
    label in every feature, patients it never saw get noise. Returns every patient's
    features from the refit (validation patients: noise) and fold k -> training patients'
    features from the net trained without fold k."""
    y = pd.Series(event.astype(float), index=ids)

    def net(seen):
        signal = np.where(np.isin(ids, seen), 2.0 * y.to_numpy() - 1.0, 0.0)[:, None]
        return pd.DataFrame(signal + rng.normal(0, 0.5, (len(ids), n_features)), index=ids,
                            columns=[f"dlf_{j:03d}" for j in range(n_features)])

    train = list(folds.index)
    return net(train), {k: net(list(folds.index[folds != k])).loc[train] for k in sorted(set(folds))}


def _two_stage_cohort(n_folds: int):
    """90 patients (60 in training, 40% DM), their training folds and the Rad-score's fitter."""
    rng = np.random.default_rng(5)
    ids = _ids(90)
    event = rng.random(90) < 0.4
    time = pd.Series(np.where(event, rng.uniform(3, 40, 90), 60.0), index=ids)
    folds = assign_folds(ids[:60], event[:60], n_folds, seed=42)
    return rng, ids, event, folds, radscore_fitter(pd.Series(event, index=ids), time)


def test_two_stage_cross_fitting_does_not_carry_a_memorising_network():
    """DL_F's two stages: a network that memorises its training patients makes the refit's
    LASSO-Cox look perfect in sample; the two-stage out-of-fold scores, from fold nets and
    fold LASSOs that never saw the patient, are noise, as on validation patients."""
    rng, ids, event, folds, fit = _two_stage_cohort(5)
    train = ids[:60]
    refit_features, fold_features = _memorising_first_stage(ids, event, folds, rng)
    table, model, fold_models = two_stage_scores(refit_features, fold_features, folds, fit, name="dl_f_score")
    t = table.set_index("patient_id")
    assert list(t["fit"]) == ["oof"] * 60 + ["refit"] * 30 and len(fold_models) == 5
    in_sample = roc_auc_score(event[:60], t.loc[train, "dl_f_score_refit"])
    oof = roc_auc_score(event[:60], t.loc[train, "dl_f_score"])
    assert in_sample > 0.99 and abs(oof - 0.5) < 0.15, (in_sample, oof)
    assert (t.loc[ids[60:], "dl_f_score"] == t.loc[ids[60:], "dl_f_score_refit"]).all()

    # A fold-0 patient's value depends only on fold 0's net; never on the refit's features
    # of training patients, nor on what other fold nets make of anyone.
    edited = {k: (f if k == 0 else f * 3.0 + 1.0) for k, f in fold_features.items()}
    refit_edit = refit_features.copy()
    refit_edit.loc[train] = rng.normal(size=refit_edit.loc[train].shape)
    again, _, _ = two_stage_scores(refit_edit, edited, folds, fit, name="dl_f_score")
    fold0 = t.index.isin(folds.index[folds == 0])
    assert np.array_equal(again.set_index("patient_id").loc[fold0, "dl_f_score"], t.loc[fold0, "dl_f_score"])
    with pytest.raises(CrossfitError, match="no first-stage model was fitted without fold 4"):
        two_stage_scores(refit_features, {k: f for k, f in fold_features.items() if k != 4}, folds, fit)


def test_two_stage_cross_fitting_with_merged_folds():
    """Fold nets that held out merged folds (dl.crossfit_folds): a training patient's score
    comes from its group's net and LASSO, neither of which saw it; the LASSOs still tune on
    the shared folds, so the refit's LASSO is the one of unmerged cross-fitting."""
    rng, ids, event, folds, fit = _two_stage_cohort(10)
    train = ids[:60]
    groups = merge_folds(folds, 5)
    refit_features, group_features = _memorising_first_stage(ids, event, groups, rng)
    table, model, group_models = two_stage_scores(refit_features, group_features, folds, fit, name="dl_f_score",
                                                  groups=groups)
    t = table.set_index("patient_id")
    assert sorted(group_models) == [0, 1, 2, 3, 4]
    oof = roc_auc_score(event[:60], t.loc[train, "dl_f_score"])
    assert abs(oof - 0.5) < 0.15, oof  # the memorising net does not leak through merged folds
    unmerged_refit = fit(refit_features.loc[train], folds)
    assert np.array_equal(model.predict(refit_features), unmerged_refit.predict(refit_features))
    with pytest.raises(CrossfitError, match="no first-stage model was fitted without fold 4"):
        two_stage_scores(refit_features, {k: f for k, f in group_features.items() if k != 4}, folds, fit,
                         groups=groups)
