"""SMOTE + random forest tuned by optuna (Appendix 6), its threshold, leakage and null tests, Table S2."""

import json

import numpy as np
import pandas as pd
import pytest

from ctith import cli
from ctith.models import ith_model as models
from ctith.io import read_json, write_tsv

FAST = dict(n_trials=4, cv_folds=5, smote_k=5)


def ith_cohort(n=150, seed=0, signal=1.5):
    """ITH-like scores for K = 2..8; DM depends on the K = 3 and K = 5 scores."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    X = pd.DataFrame(rng.uniform(0.5, 1.0, (n, 7)), index=ids, columns=[f"ith_k{k}" for k in range(2, 9)])
    lp = signal * ((X["ith_k3"] - 0.75) / 0.14 + (X["ith_k5"] - 0.75) / 0.14) - 1.0
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int), index=ids)
    cohort = pd.Series(np.where(np.arange(n) < 90, "train", np.where(np.arange(n) < 120, "internal_validation",
                                                                        "external_validation")), index=ids)
    return X, y, cohort


def test_youden_threshold():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    # Cut-offs: 0.7 gives sens 2/3, spec 1 (J 0.67); 0.4 gives sens 1, spec 2/3 (J 0.67): the higher wins.
    assert models.youden_threshold(y, p) == pytest.approx(0.7)
    assert models.youden_threshold(np.array([0, 1]), np.array([0.2, 0.8])) == pytest.approx(0.8)


def test_smote_only_sees_training_folds():
    """Within CV, the pipeline is refitted on each fold's training part: SMOTE's synthetic
    patients never include a held-out patient (checked by the sample counts SMOTE returns)."""
    from imblearn.over_sampling import SMOTE

    X, y, _ = ith_cohort()
    x, yy = X.to_numpy(), y.to_numpy()
    folds = models._folds(yy, 5, 0)
    for tr, te in folds:
        xs, ys = SMOTE(k_neighbors=3, random_state=0).fit_resample(x[tr], yy[tr])
        assert len(xs) == 2 * np.bincount(yy[tr]).max()
        # The original rows come first and are exactly the training fold.
        assert np.array_equal(xs[: len(tr)], x[tr])
    assert models.smote_neighbours(yy, folds, 5) == 5
    few = np.array([0] * 20 + [1] * 4)
    assert models.smote_neighbours(few, models._folds(few, 2, 0), 5) == 1  # 2 DM per training fold
    two = np.array([0] * 20 + [1] * 2)
    with pytest.raises(models.ModelError, match="a training fold holds 1 patient"):
        models.smote_neighbours(two, models._folds(two, 2, 0), 5)
    with pytest.raises(models.ModelError, match="has 2 patients of its smaller class; stratified 4-fold"):
        models._folds(two, 4, 0)


@pytest.mark.parametrize("case", range(36))
def test_forest_proba_equals_scikit_learn(case):
    """The search's forests (ctith.models.forest) give bit-identical probabilities to
    RandomForestClassifier over data sizes, feature counts, class balance and the
    search space's hyper-parameters, extremes included."""
    from sklearn.ensemble import RandomForestClassifier

    from ctith.models.forest import forest_proba

    rng = np.random.default_rng(case)
    n, n_features = int(rng.integers(12, 90)), int(rng.integers(1, 9))
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.01, 100)
    X[:, 0] = np.round(X[:, 0])  # tied values, as ITH scores of 0 and 1 are
    y = (rng.random(n) < rng.uniform(0.15, 0.6)).astype(int)
    y[:2] = [0, 1]
    params = {"n_estimators": [1, 50, 300][case % 3] if case < 6 else int(rng.integers(1, 120)),
              "max_depth": [2, 8][case % 2] if case < 6 else int(rng.integers(1, 10)),
              "min_samples_leaf": [1, 8][case // 3 % 2] if case < 6 else int(rng.integers(1, 10)),
              "max_features": ["sqrt", 1.0, 0.5, None, "log2", 1][case % 6]}
    X_test = rng.normal(size=(25, n_features)) * X.std(axis=0) + X.mean(axis=0)
    expected = RandomForestClassifier(random_state=case, n_jobs=1, **params).fit(X, y).predict_proba(X_test)
    got = forest_proba(params, X, y, X_test, case)
    assert np.array_equal(got, expected)
    if case < 6:  # the search space's corners: forests that do split
        assert expected[:, 1].std() > 0


def test_forest_proba_refuses_what_it_does_not_reproduce():
    from ctith.models.forest import forest_proba

    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"not \['class_weight'\]"):
        forest_proba({"class_weight": "balanced"}, x, y, x, 0)


def test_search_probabilities_equal_the_pipeline():
    """The search resamples each fold once and grows forests by ctith.models.forest; its
    out-of-fold probabilities equal the SMOTE + RandomForestClassifier pipeline's, refitted
    per fold, bit for bit."""
    X, y, _ = ith_cohort(n=80)
    x, yy = X.to_numpy(), y.to_numpy()
    folds = models._folds(yy, 5, 0)
    resampled = models.smote_folds(x, yy, folds, 3, 0)
    for params in ({"n_estimators": 30, "max_depth": 4, "min_samples_leaf": 2, "max_features": "sqrt"},
                   {"n_estimators": 7, "max_depth": 8, "min_samples_leaf": 1, "max_features": 1.0}):
        pipeline = models.oof_probabilities(params, x, yy, folds, 3, 0)
        search = models.search_oof_probabilities(params, x, resampled, 0)
        assert np.array_equal(pipeline, search) and pipeline.std() > 0


def test_tuned_classifier_learns_and_is_reproducible():
    X, y, cohort = ith_cohort()
    train = cohort == "train"
    a = models.TunedClassifier(seed=3, **FAST).fit(X[train], y[train])
    b = models.TunedClassifier(seed=3, **FAST).fit(X[train], y[train])
    assert a.fitted() == b.fitted()
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert len(a.trials_) == 4 and a.cv_auc_ == a.trials_["cv_auc"].max()
    assert set(a.best_params_) == {"n_estimators", "max_depth", "min_samples_leaf", "max_features"}
    assert 0.0 <= a.threshold_ <= 1.0
    assert a.threshold_ == models.youden_threshold(y[train].to_numpy(), a.oof_.to_numpy())
    val = ~train
    m = models.classification_metrics(y[val], a.predict_proba(X[val]), a.threshold_)
    assert m["auc"] > 0.75 and m["n"] == 60
    values = models.shap_values(a, X[train])
    assert values.shape == (90, 7)
    # SHAP ranks the two features the outcome depends on first.
    top = set(np.array(a.features_)[np.argsort(-np.abs(values).mean(axis=0))[:2]])
    assert top == {"ith_k3", "ith_k5"}


def test_model_file_is_skops_reproducible_and_refuses_foreign_types(tmp_path):
    """The forest is stored without pickle: two fits of one seed give the same bytes, the
    file loads the same forest, and a file holding any other type (here a function that
    runs shell commands, as a crafted model would) is refused before anything is built."""
    import os
    import zipfile

    from sklearn.preprocessing import FunctionTransformer

    X, y, cohort = ith_cohort()
    train = (cohort == "train").to_numpy()
    params = {"n_estimators": 20, "max_depth": 3, "min_samples_leaf": 1, "max_features": 1.0}
    for name in ("a", "b"):
        models.save_model(models.make_pipeline(params, 3, 0).fit(X[train], y[train]), tmp_path / f"{name}.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
    assert zipfile.is_zipfile(tmp_path / "a.skops")  # skops' zip, not a pickle
    loaded = models.load_model(tmp_path / "a.skops")
    fresh = models.make_pipeline(params, 3, 0).fit(X[train], y[train])
    assert np.array_equal(loaded.predict_proba(X), fresh.predict_proba(X))

    models.save_model(FunctionTransformer(func=os.system), tmp_path / "crafted.skops")
    with pytest.raises(models.ModelError, match=r"crafted.skops' holds types ctith does not load: .*system"):
        models.load_model(tmp_path / "crafted.skops")
    (tmp_path / "pickle.skops").write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n")  # a pickle by another name
    with pytest.raises(models.ModelError, match="pickle.skops' is not a skops model file"):
        models.load_model(tmp_path / "pickle.skops")


def test_model_file_loads_without_torch_and_with_skops_own_trusted_types(tmp_path):
    """A forest loads in a fresh process without importing torch (skops' estimator walk
    would, through scikit-learn's array-API shim), with the same trusted types skops lists
    when imported plainly; the shim is the real one when asked for afterwards."""
    import subprocess
    import sys

    X, y, cohort = ith_cohort()
    train = (cohort == "train").to_numpy()
    pipeline = models.make_pipeline({"n_estimators": 5, "max_depth": 2, "min_samples_leaf": 1, "max_features": 1.0},
                                    3, 0).fit(X[train], y[train])
    models.save_model(pipeline, tmp_path / "m.skops")
    code = f"""
import sys, json
from ctith.models import ith_model
ith_model.load_model({str(tmp_path / "m.skops")!r})
from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as ours
torch_before = "torch" in sys.modules
import sklearn.externals.array_api_compat.torch as shim
print(json.dumps([torch_before, sorted(ours), hasattr(shim, "asarray")]))
"""
    torch_before, ours, real_shim = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                                              text=True, check=True).stdout)
    plain = subprocess.run([sys.executable, "-c", "import json, skops.io._trusted_types as t; "
                            "print(json.dumps(sorted(t.SKLEARN_ESTIMATOR_TYPE_NAMES)))"],
                           capture_output=True, text=True, check=True).stdout
    assert not torch_before and real_shim
    assert ours == json.loads(plain) and len(ours) > 100


def write_inputs(root, X, y, cohort):
    write_tsv(X.rename_axis("patient_id").reset_index(), root / "scores.tsv")
    write_tsv(pd.DataFrame({"patient_id": X.index, "institution": "A", "cohort": cohort.to_numpy(),
                            "assigned_by": "sheet"}), root / "split.tsv")
    write_tsv(pd.DataFrame({"patient_id": X.index, "dm_event": y.to_numpy(), "dm_time_months": 24.0}),
              root / "clinical.tsv")


def run_model(root, tag, clusters=("2", "3", "4", "5"), seed="5"):
    """The fit (given every patient: it reads the training rows only), then the frozen model
    on every patient."""
    out = root / tag
    assert cli.main(["ith-model", "--scores", str(root / "scores.tsv"), "--clusters", *clusters, "--name", tag,
                     "--split", str(root / "split.tsv"), "--clinical", str(root / "clinical.tsv"),
                     "--n-trials", "4", "--cv-folds", "5", "--seed", seed, "--out-dir", str(out)]) == 0
    assert cli.main(["ith-model-predict", "--scores", str(root / "scores.tsv"), "--split", str(root / "split.tsv"),
                     "--clinical", str(root / "clinical.tsv"), "--model-dir", str(out),
                     "--out-predictions", str(out / "predictions.tsv"), "--out-metrics", str(out / "metrics.json")]) == 0
    return out


def test_fit_on_training_rows_only_equals_fit_given_everyone(tmp_path):
    """The workflow gives the fit the training patients only; the fitted files are the same
    as when it is given every patient and picks the training rows itself."""
    X, y, cohort = ith_cohort()
    write_inputs(tmp_path, X, y, cohort)
    a = run_model(tmp_path, "a")
    train = (cohort == "train").to_numpy()
    only = tmp_path / "only"
    only.mkdir()
    write_inputs(only, X[train], y[train], cohort[train])
    assert cli.main(["ith-model", "--scores", str(only / "scores.tsv"), "--clusters", "2", "3", "4", "5",
                     "--name", "a", "--split", str(only / "split.tsv"), "--clinical", str(only / "clinical.tsv"),
                     "--n-trials", "4", "--cv-folds", "5", "--seed", "5", "--out-dir", str(only / "a")]) == 0
    for name in ("fitted.json", "oof.tsv", "trials.tsv", "model.skops", "shap_values.tsv"):
        assert (a / name).read_bytes() == (only / "a" / name).read_bytes(), name
    pred = pd.read_csv(a / "predictions.tsv", sep="\t").set_index("patient_id")
    oof = pd.read_csv(a / "oof.tsv", sep="\t").set_index("patient_id")
    tr = pred.index[pred["cohort"] == "train"]
    np.testing.assert_array_equal(pred.loc[tr, "signature"], oof.loc[tr, "ith_signature"])
    assert set(pred.loc[tr, "fit"]) == {"oof"} and set(pred.loc[pred["cohort"] != "train", "fit"]) == {"refit"}


def test_permuting_validation_labels_changes_no_prediction_or_hyperparameter(tmp_path):
    X, y, cohort = ith_cohort()
    write_inputs(tmp_path, X, y, cohort)
    a = run_model(tmp_path, "a")
    val = np.flatnonzero((cohort != "train").to_numpy())
    y2 = y.copy()
    y2.iloc[val] = y.iloc[np.random.default_rng(1).permutation(val)].to_numpy()
    assert not y2.equals(y)
    write_inputs(tmp_path, X, y2, cohort)
    b = run_model(tmp_path, "b")
    for name in ("predictions.tsv", "trials.tsv", "shap_values.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    fa, fb = read_json(a / "fitted.json"), read_json(b / "fitted.json")
    fa.pop("name"), fb.pop("name")
    assert fa == fb
    assert read_json(a / "metrics.json")["train"] == read_json(b / "metrics.json")["train"]


@pytest.mark.slow
def test_null_shuffled_training_labels_give_chance_validation_auc():
    aucs = []
    for seed in range(5):
        X, y, _ = ith_cohort(n=300, seed=10 + seed)
        cohort = pd.Series(np.where(np.arange(300) < 150, "train", "external_validation"), index=X.index)
        train = (cohort == "train").to_numpy()
        shuffled = y[train].sample(frac=1.0, random_state=seed).to_numpy()
        model = models.TunedClassifier(seed=seed, **FAST).fit(X[train], shuffled)
        aucs.append(models.classification_metrics(y[~train], model.predict_proba(X[~train]), model.threshold_)["auc"])
    assert abs(np.mean(aucs) - 0.5) <= 0.1, aucs


def test_table_s2_and_signature_same_seed_identical(tmp_path):
    X, y, cohort = ith_cohort()
    write_inputs(tmp_path, X, y, cohort)

    def build(tag):
        root = tmp_path / tag
        names = []
        for ks in (["2", "3", "4", "5"], ["2"], ["3"]):
            name = "k" + "-".join([ks[0], ks[-1]]) if len(ks) > 1 else f"k{ks[0]}"
            run_model(tmp_path, f"{tag}/{name}", ks)
            names.append(name)
        out = root / "tables"
        assert cli.main(["table-s2", "--metrics", *[str(root / n / "metrics.json") for n in names],
                         "--fitted", *[str(root / n / "fitted.json") for n in names],
                         "--main-predictions", str(root / "k2-5" / "predictions.tsv"),
                         "--out-table", str(out / "s2.tsv"), "--out-md", str(out / "s2.md"),
                         "--out-params", str(out / "hp.tsv"), "--out-signature", str(out / "sig.tsv")]) == 0
        return out

    a, b = build("a"), build("b")
    for name in ("s2.tsv", "s2.md", "hp.tsv", "sig.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    table = pd.read_csv(a / "s2.tsv", sep="\t", dtype=str)
    assert list(table.columns) == ["Cluster numbers", "Internal validation accuracy", "Internal validation AUC",
                                   "External validation accuracy", "External validation AUC"]
    assert list(table["Cluster numbers"]) == ["2-5", "2", "3"]
    # "0.613 (0.512-0.704)": three decimals, with the bootstrap 95% CI
    assert table["External validation AUC"].str.fullmatch(r"\d\.\d{3} \(\d\.\d{3}-\d\.\d{3}\)").all()
    hp = pd.read_csv(a / "hp.tsv", sep="\t")
    assert {"n_estimators", "max_depth", "min_samples_leaf", "max_features", "threshold"} <= set(hp.columns)
    sig = pd.read_csv(a / "sig.tsv", sep="\t")
    assert list(sig.columns) == ["patient_id", "cohort", "ith_signature", "fit"] and len(sig) == 150
    # Training patients: the out-of-fold probability, never the refitted forest's.
    pred = pd.read_csv(tmp_path / "a" / "k2-5" / "predictions.tsv", sep="\t").set_index("patient_id")
    s = sig.set_index("patient_id")
    tr, val = s.index[s["cohort"] == "train"], s.index[s["cohort"] != "train"]
    assert set(s.loc[tr, "fit"]) == {"oof"} and set(s.loc[val, "fit"]) == {"refit"}
    np.testing.assert_array_equal(s.loc[val, "ith_signature"], pred.loc[val, "probability"])
    assert not np.allclose(s.loc[tr, "ith_signature"], pred.loc[tr, "probability"])
    assert "Chosen hyper-parameters" in (a / "s2.md").read_text()
    for name in ("shap_summary.png", "shap_beeswarm.png"):
        assert (tmp_path / "a" / "k2-5" / name).stat().st_size > 5_000


def test_shap_figures_are_separate():
    import matplotlib.pyplot as plt

    X, y, cohort = ith_cohort(n=60)
    values = np.random.default_rng(0).normal(size=(60, 7))
    bar, swarm = models.shap_figures(values, X, "t")
    assert bar is not swarm
    # The summary has one axes of bars; the beeswarm adds a colour bar, and no bars.
    assert len(bar.axes) == 1 and len(bar.axes[0].patches) == 7
    assert len(swarm.axes) == 2 and len(swarm.axes[0].patches) == 0
    plt.close("all")


def test_shap_beeswarm_is_repeatable_with_its_seed():
    import io

    import matplotlib.pyplot as plt

    X, y, cohort = ith_cohort(n=60)
    values = np.random.default_rng(0).normal(size=(60, 7))

    def png(seed):
        buf = io.BytesIO()
        models.shap_figures(values, X, "t", seed)[1].savefig(buf, format="png")
        plt.close("all")
        return buf.getvalue()

    assert png(3) == png(3)
    assert png(3) != png(4)  # the seed reaches the jitter


def test_table_s2_rows_and_cluster_labels_without_the_command_line():
    """Table S2 is composed in the stage module: its row names, '-' for a cohort without
    both classes, and the hyper-parameter table beside it."""
    assert [models.cluster_label(k) for k in ([2, 3, 4, 5], [3], [2, 4, 8])] == ["2-5", "3", "2,4,8"]
    metric = {"clusters": [2, 3, 4, 5], "internal_validation": {"accuracy": 0.71234, "auc": 0.8},
              "external_validation": {"accuracy": 0.6, "auc": None}}
    fitted = {"cv_auc": 0.66666, "threshold": 0.4, "smote_k": 3,
              "best_params": {"n_estimators": 120, "max_depth": 4, "min_samples_leaf": 2, "max_features": "sqrt"}}
    table, hyper = models.table_s2([metric], [fitted])
    assert table.iloc[0].tolist() == ["2-5", "0.712", "0.800", "0.600", "-"]
    assert hyper.iloc[0].tolist() == ["2-5", "0.667", "0.400", 3, 120, 4, 2, "sqrt"]
