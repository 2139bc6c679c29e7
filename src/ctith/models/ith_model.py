"""Classification models (Appendix 6): SMOTE + random forest tuned by Bayesian optimisation.

``TunedClassifier`` searches the random forest's hyper-parameters with optuna's TPE
sampler (seeded) to maximise the mean AUC of stratified k-fold cross-validation on the
training cohort. SMOTE sits inside an imbalanced-learn pipeline, so it only ever sees the
training folds (never a fold's held-out part, never a validation cohort). The best
pipeline is refitted on the whole training cohort, and the decision threshold is fixed on
training data (out-of-fold probabilities, Youden's J) before any validation patient is
scored.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..cohort.crossfit import training_or_refit
from ..errors import CtithError


class ModelError(CtithError):
    pass


@dataclass(frozen=True)
class SearchSpace:
    n_estimators: tuple[int, int] = (50, 300)
    max_depth: tuple[int, int] = (2, 8)
    min_samples_leaf: tuple[int, int] = (1, 8)
    max_features: tuple = ("sqrt", 1.0)


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut-off maximising sensitivity + specificity - 1 (ties: the highest cut-off)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    j = tpr - fpr
    best = np.flatnonzero(j >= j.max() - 1e-12)[0]  # thresholds run high to low; float ties count as ties
    return float(min(thr[best], 1.0))


def smote_neighbours(y: np.ndarray, folds, wanted: int) -> int:
    """SMOTE's k: as configured, but below the fewest minority patients of any training fold."""
    fewest = min(int(min(np.bincount(y[tr], minlength=2))) for tr, _ in folds)
    fewest = min(fewest, int(min(np.bincount(y, minlength=2))))
    k = min(wanted, fewest - 1)
    if k < 1:
        raise ModelError(f"a training fold holds {fewest} patient(s) of the minority class; SMOTE needs at "
                         "least 2: use fewer cross-validation folds")
    return k


def make_pipeline(params: dict, smote_k: int, seed: int):
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline
    from sklearn.ensemble import RandomForestClassifier

    return Pipeline([
        ("smote", SMOTE(k_neighbors=smote_k, random_state=seed)),
        ("rf", RandomForestClassifier(random_state=seed, n_jobs=1, **params)),
    ])


def _folds(y: np.ndarray, n_folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=2)
    if counts.min() < n_folds:
        raise ModelError(f"the training cohort has {counts.min()} patients of its smaller class; stratified "
                         f"{n_folds}-fold cross-validation needs at least {n_folds}")
    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def oof_probabilities(params: dict, X: np.ndarray, y: np.ndarray, folds, smote_k: int, seed: int) -> np.ndarray:
    """Out-of-fold DM probabilities: each fold's pipeline is fitted on the other folds only."""
    p = np.zeros(len(y))
    for tr, te in folds:
        model = make_pipeline(params, smote_k, seed).fit(X[tr], y[tr])
        p[te] = model.predict_proba(X[te])[:, 1]
    return p


def smote_folds(X: np.ndarray, y: np.ndarray, folds, smote_k: int, seed: int) -> list:
    """Each fold's training part after SMOTE (fitted on that part only), with the fold's
    held-out rows: what the pipeline's forest sees, computed once for every trial."""
    from imblearn.over_sampling import SMOTE

    return [(*SMOTE(k_neighbors=smote_k, random_state=seed).fit_resample(X[tr], y[tr]), te) for tr, te in folds]


def search_oof_probabilities(params: dict, X: np.ndarray, resampled: list, seed: int) -> np.ndarray:
    """``oof_probabilities`` from ``smote_folds``' output, the forests grown by
    ``forest.forest_proba``: the same numbers at a fraction of the time."""
    from .forest import forest_proba

    p = np.zeros(len(X))
    for x_res, y_res, te in resampled:
        p[te] = forest_proba(params, x_res, y_res, X[te], seed)[:, 1]
    return p


def mean_fold_auc(y: np.ndarray, p: np.ndarray, folds) -> float:
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(y[te], p[te]) for _, te in folds if len(set(y[te])) == 2]
    return float(np.mean(aucs)) if aucs else float("nan")


@dataclass
class TunedClassifier:
    """SMOTE + random forest, hyper-parameters by optuna TPE on k-fold CV AUC, Youden threshold."""

    n_trials: int = 25
    cv_folds: int = 10
    smote_k: int = 5
    seed: int = 42
    space: SearchSpace = field(default_factory=SearchSpace)

    def _suggest(self, trial) -> dict:
        s = self.space
        return {
            "n_estimators": trial.suggest_int("n_estimators", *s.n_estimators),
            "max_depth": trial.suggest_int("max_depth", *s.max_depth),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", *s.min_samples_leaf),
            "max_features": trial.suggest_categorical("max_features", list(s.max_features)),
        }

    def fit(self, X: pd.DataFrame, y, folds: pd.Series | None = None) -> "TunedClassifier":
        """``folds``: the shared cross-fitting folds (patient ID -> fold, ``ctith.cohort.crossfit``);
        without them, seeded stratified ``cv_folds``-fold CV in row order. ``oof_`` holds
        each patient's probability from the fold model that did not see them."""
        import optuna

        y = np.asarray(y).astype(int)
        x = X.to_numpy(dtype=float)
        if np.isnan(x).any():
            pid = X.index[np.isnan(x).any(axis=1)][0]
            raise ModelError(f"patient {pid}: missing feature values in the training cohort")
        if folds is None:
            folds = _folds(y, self.cv_folds, self.seed)
        else:
            from ..cohort.crossfit import fold_positions

            folds = fold_positions(folds, X.index)
            self.cv_folds = len(folds)
        k = smote_neighbours(y, folds, self.smote_k)
        self.smote_k_used_ = k
        self.features_ = list(X.columns)

        # SMOTE depends on the fold only: resample once, then grow each trial's forests
        # (hundreds of small ones) without scikit-learn's per-tree Python overhead.
        resampled = smote_folds(x, y, folds, k, self.seed)

        def objective(trial):
            params = self._suggest(trial)
            oof = search_oof_probabilities(params, x, resampled, self.seed)
            trial.set_user_attr("oof", oof.tolist())
            return mean_fold_auc(y, oof, folds)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's experimental-feature chatter
            study.optimize(objective, n_trials=self.n_trials)
        best = study.best_trial
        self.best_params_ = dict(best.params)
        self.cv_auc_ = float(best.value)
        oof = np.asarray(best.user_attrs["oof"])
        self.threshold_ = youden_threshold(y, oof)
        self.oof_ = pd.Series(oof, index=X.index, name="oof_probability")
        self.trials_ = pd.DataFrame([{"trial": t.number, "cv_auc": t.value, **t.params} for t in study.trials])
        self.pipeline_ = make_pipeline(self.best_params_, k, self.seed).fit(x, y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(X[self.features_].to_numpy(dtype=float))[:, 1]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X) >= self.threshold_).astype(int)

    def fitted(self) -> dict:
        """Everything the training cohort decided (nothing from validation)."""
        return {"features": self.features_, "best_params": self.best_params_, "cv_auc": self.cv_auc_,
                "cv_folds": self.cv_folds, "n_trials": self.n_trials, "smote_k": self.smote_k_used_,
                "threshold": self.threshold_, "seed": self.seed}


# --------------------------------------------------------------------------- storage

# The fitted pipeline is stored with skops, not pickle: loading builds only scikit-learn's
# and skops' default-trusted types and these, so a model file from elsewhere (a bundle
# from another site) cannot run code when it is opened.
TRUSTED_MODEL_TYPES = frozenset({
    "imblearn.pipeline.Pipeline", "imblearn.over_sampling._smote.base.SMOTE",
    "sklearn.tree._tree.Tree", "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
})
MODEL_FILE = "model.skops"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry holds: no write time in the file


def _canonical_skops(raw: bytes) -> bytes:
    """The same skops archive with reproducible bytes. skops names nodes and array files
    after Python object ids (memory addresses) and stamps entries with the time, so two
    dumps of one model differ; here ids are renumbered in the schema's order and every
    entry is dated 1980-01-01. Shared references keep sharing one id."""
    import io
    import json
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(raw))
    schema = json.loads(src.read("schema.json"))
    ids: dict = {}
    files: dict = {}

    def renumber(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__":
                    node[key] = ids.setdefault(value, len(ids))
                elif key == "file" and isinstance(value, str):
                    node[key] = files.setdefault(value, f"{len(files)}.npy")
                else:
                    renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    renumber(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        def put(name, data):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            dst.writestr(info, data, compresslevel=6)

        for old, new in files.items():
            put(new, src.read(old))
        put("schema.json", json.dumps(schema, separators=(",", ":")))
    return out.getvalue()


# scikit-learn's array-API shim for torch: a package that imports torch when imported.
_TORCH_SHIM = "sklearn.externals.array_api_compat.torch"


def _skops_io():
    """``skops.io``, imported without importing torch.

    On import skops lists scikit-learn's estimators (``all_estimators``), and the package walk
    behind it imports every package under sklearn, the shim above included (which it then
    skips, as it skips all of ``externals``): 1.7 s of torch in a job that loads a forest, the
    most of an ``ith_model_predict`` job. A placeholder stands in for the shim during that
    import only, so the walk stops there; the trusted types are the same (tested), and a later
    import of the shim gets the real one."""
    import sys

    if "skops.io" in sys.modules or "torch" in sys.modules or _TORCH_SHIM in sys.modules:
        import skops.io as sio

        return sio
    import types

    sys.modules[_TORCH_SHIM] = types.ModuleType(_TORCH_SHIM)
    try:
        import skops.io as sio
    finally:
        del sys.modules[_TORCH_SHIM]
    return sio


def save_model(pipeline, path) -> None:
    """The fitted pipeline as a skops file (atomically): the same model, the same bytes."""
    sio = _skops_io()

    from ..io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical_skops(sio.dumps(pipeline)))


def load_model(path):
    """A pipeline stored by :func:`save_model`. A file holding any type outside skops'
    defaults and ``TRUSTED_MODEL_TYPES`` is refused before anything in it is built."""
    sio = _skops_io()

    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # not a zip, no schema: not a skops model
        raise ModelError(f"model file '{path}' is not a skops model file ({type(exc).__name__}: {exc})") from None
    refused = sorted(untrusted - TRUSTED_MODEL_TYPES)
    if refused:
        raise ModelError(f"model file '{path}' holds types ctith does not load: {', '.join(refused)}; "
                         "refused before anything in it was built")
    return sio.load(path, trusted=sorted(untrusted))


def frozen_predictions(pipeline, fitted: dict, X: pd.DataFrame, cohort: pd.Series, oof: pd.Series) -> pd.DataFrame:
    """A fitted ITH model (its pipeline and ``fitted()`` record) on the rows of X.

    ``signature`` is what a survival model takes: a training patient's out-of-fold
    probability (``oof``: the search's best trial, whose fold forests never saw them),
    everyone else's from the refitted forest."""
    prob = pipeline.predict_proba(X[fitted["features"]].to_numpy(dtype=float))[:, 1]
    signature, is_train = training_or_refit(pd.Series(prob, index=X.index), cohort, oof)
    return pd.DataFrame({"patient_id": X.index, "cohort": cohort.reindex(X.index).to_numpy(), "probability": prob,
                         "predicted": (prob >= fitted["threshold"]).astype(int), "signature": signature,
                         "fit": np.where(is_train, "oof", "refit")})


def classification_metrics(y, p, threshold: float) -> dict:
    """Accuracy at the fixed threshold and AUC (NaN with one class only)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    auc = float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else float("nan")
    return {"n": int(len(y)), "events": int(y.sum()), "accuracy": float(np.mean((p >= threshold) == y)) if len(y)
            else float("nan"), "auc": auc}


def _number(x) -> str:
    return "-" if x is None or pd.isna(x) else f"{x:.3f}"


def cluster_label(ks: list[int]) -> str:
    """Table S2's row name of a model's K: "3", "2-5", or "2,4,8"."""
    if len(ks) == 1:
        return str(ks[0])
    return f"{ks[0]}-{ks[-1]}" if list(ks) == list(range(ks[0], ks[-1] + 1)) else ",".join(map(str, ks))


def table_s2(metrics: list[dict], fitted: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table S2 (accuracy and AUC per validation cohort, one row per ITH model) and the chosen
    hyper-parameters, from each model's ``metrics.json`` and ``fitted.json``."""
    from .table_s2 import s2_row

    rows, params = [], []
    for m, f in zip(metrics, fitted):
        label = cluster_label(m["clusters"])
        rows.append(s2_row(label, m))
        params.append({"Cluster numbers": label, "CV AUC (train)": _number(f["cv_auc"]),
                       "threshold": _number(f["threshold"]), "SMOTE k": f["smote_k"], **f["best_params"]})
    return pd.DataFrame(rows), pd.DataFrame(params)


def ith_signature(predictions: pd.DataFrame) -> pd.DataFrame:
    """The ITH signature a survival model takes, from the ITH model's ``predictions.tsv``:
    out-of-fold for training patients, the refitted forest's for the others."""
    return predictions.rename(columns={"signature": "ith_signature"})[["patient_id", "cohort", "ith_signature", "fit"]]


def shap_values(model: TunedClassifier, X: pd.DataFrame) -> np.ndarray:
    """TreeExplainer SHAP values of the forest for the DM class: (patients, features)."""
    import shap

    explainer = shap.TreeExplainer(model.pipeline_.named_steps["rf"])
    values = explainer.shap_values(X[model.features_].to_numpy(dtype=float))
    values = np.asarray(values)
    if values.ndim == 3:  # (patients, features, classes)
        values = values[:, :, 1]
    return values


def shap_figures(values: np.ndarray, X: pd.DataFrame, title: str, seed: int = 0, scale: str = "DM probability"):
    """SHAP summary (mean |SHAP| bar) and beeswarm plots, as two figures. The beeswarm's
    point order and jitter are random: ``seed`` makes them repeatable. ``scale``: what the
    explained output is (a forest's DM probability, a Cox model's log-hazard)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    figs = []
    for kind in ("bar", "dot"):
        plt.figure()  # shap draws on the current figure: one each
        shap.summary_plot(values, X, plot_type=kind, show=False, color_bar=kind == "dot",
                          max_display=min(20, X.shape[1]), rng=seed)
        fig = plt.gcf()
        # shap's own x-labels run past its 8-inch figure; these say the scale and fit.
        fig.axes[0].set_xlabel(f"mean |SHAP value| ({scale})" if kind == "bar" else f"SHAP value ({scale})",
                               fontsize=11)
        fig.suptitle(f"{title}: SHAP {'summary' if kind == 'bar' else 'beeswarm'}, {scale} scale", fontsize=10)
        fig.tight_layout()
        figs.append(fig)
    return figs
