"""Feature selection and the Rad-score, fitted on the training cohort only.

Steps, each seeing training patients only:
1. variance filter: features min-max scaled to [0, 1] on training, variance <= threshold out;
2. Spearman |rho| > cutoff pruning: of each correlated pair, the feature with the larger
   mean |rho| to all others goes (caret's ``findCorrelation``; label-free, deterministic);
3. LASSO-Cox: scikit-survival's Coxnet (l1_ratio 1) on standardised features, alpha by
   stratified k-fold cross-validation of Harrell's C on the training cohort.

The Rad-score is the LASSO-Cox linear predictor, sum_j coef_j * (x_j - mean_j) / sd_j,
with the training means and SDs; it is computed for every patient of every cohort.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..cohort.crossfit import training_or_refit
from ..errors import CtithError

ALPHA_RULES = ("max", "1se")


class SelectionError(CtithError):
    pass


def survival_target(event, time) -> np.ndarray:
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(event).astype(bool), time=np.asarray(time, dtype=float))


def variance_filter(X: pd.DataFrame, threshold: float = 1e-3) -> pd.Index:
    """Features whose variance after min-max scaling to [0, 1] exceeds ``threshold``."""
    span = X.max() - X.min()
    scaled = (X - X.min()) / span.where(span > 0)
    var = scaled.var(ddof=0).fillna(0.0)
    return X.columns[(var > threshold).to_numpy()]


def correlation_prune(X: pd.DataFrame, cutoff: float = 0.9) -> pd.Index:
    """Drop one feature of each pair with Spearman |rho| > cutoff (caret's findCorrelation)."""
    if X.shape[1] < 2:
        return X.columns
    rho = np.abs(X.rank().corr(method="pearson").to_numpy())  # Spearman = Pearson on ranks
    np.fill_diagonal(rho, 0.0)
    rho = np.nan_to_num(rho)
    order = np.argsort(-rho.mean(axis=0), kind="stable")
    drop = np.zeros(X.shape[1], dtype=bool)
    for a_pos, i in enumerate(order):
        if drop[i]:
            continue
        for j in order[a_pos + 1:]:
            if drop[j] or rho[i, j] <= cutoff:
                continue
            # i comes first in the order: its mean |rho| is the larger one.
            mean_i = rho[i, ~drop].mean()
            mean_j = rho[j, ~drop].mean()
            if mean_i >= mean_j:
                drop[i] = True
                break
            drop[j] = True
    return X.columns[~drop]


def _unit_scale(score) -> float:
    """The SD that puts a LASSO's score on unit scale over its own training patients (1 where
    the score does not vary: a fold LASSO that kept no feature)."""
    sd = float(np.std(score))
    return sd if sd > 1e-12 else 1.0


@dataclass
class RadScore:
    """Variance filter -> correlation pruning -> LASSO-Cox -> Rad-score (fit on training data)."""

    variance_threshold: float = 1e-3
    correlation_cutoff: float = 0.9
    n_folds: int = 5
    n_alphas: int = 50
    alpha_min_ratio: float = 0.05
    alpha_rule: str = "max"
    seed: int = 0

    def fit(self, X: pd.DataFrame, event, time, folds: pd.Series | None = None) -> "RadScore":
        """``folds``: the shared cross-fitting folds (patient ID -> fold, ``ctith.cohort.crossfit``)
        for the LASSO's cross-validation; without them, seeded stratified ``n_folds``-fold.
        ``oof_`` holds each training patient's Rad-score from the fold's LASSO-Cox (fitted
        without that patient) at the chosen alpha.

        One scale: every LASSO's score (the refit's, each fold's) is divided by its SD on the
        patients that LASSO was fitted on. Fold LASSOs that keep one feature or six spread
        their held-out patients 0.07 to 1.0 SD apart (the demo's DL_F), and pooling them
        gives out-of-fold scores another spread than the refit's on validation patients;
        a survival model fitted on the one and applied to the other would be off-scale."""
        from sklearn.model_selection import StratifiedKFold
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        if self.alpha_rule not in ALPHA_RULES:
            raise SelectionError(f"alpha rule must be one of {ALPHA_RULES}, not {self.alpha_rule!r}")
        event = np.asarray(event).astype(bool)
        time = np.asarray(time, dtype=float)
        if X.isna().to_numpy().any():
            pid = X.index[X.isna().any(axis=1).to_numpy()][0]
            raise SelectionError(f"patient {pid}: missing feature values in the training cohort")
        n_events = int(event.sum())
        if folds is not None:
            from ..cohort.crossfit import fold_positions

            splits = fold_positions(folds, X.index)
            self.n_folds = len(splits)
        if n_events < self.n_folds:
            raise SelectionError(f"the training cohort has {n_events} DM events; LASSO-Cox with {self.n_folds}-fold "
                                 "cross-validation needs at least one per fold")
        self.n_features_in_ = X.shape[1]
        self.variance_kept_ = variance_filter(X, self.variance_threshold)
        self.correlation_kept_ = correlation_prune(X[self.variance_kept_], self.correlation_cutoff)
        Xs = X[self.correlation_kept_]
        self.mean_ = Xs.mean()
        self.scale_ = Xs.std(ddof=0).replace(0.0, 1.0)
        Z = ((Xs - self.mean_) / self.scale_).to_numpy()
        y = survival_target(event, time)

        def coxnet(alphas=None):
            return CoxnetSurvivalAnalysis(l1_ratio=1.0, n_alphas=self.n_alphas, alphas=alphas,
                                          alpha_min_ratio=self.alpha_min_ratio, max_iter=100000)

        path = self._fit_quietly(coxnet(), Z, y)
        alphas = path.alphas_
        if folds is None:
            splits = list(StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed).split(Z, event))
        scores, fold_risk, fold_fits = self._cross_validate(coxnet(alphas), alphas, Z, y, event, time, splits)
        best, mean, se, n_nonzero = self._choose_alpha(scores, path.coef_, alphas)
        self.alpha_ = float(alphas[best])
        oof = fold_risk[:, best].copy()
        for model, z_fit, te in fold_fits:
            oof[te] /= _unit_scale(model.predict(z_fit, alpha=alphas[best]))
        self.oof_ = pd.Series(oof, index=X.index, name="rad_score")
        self.cv_results_ = pd.DataFrame({"alpha": alphas, "cv_cindex_mean": mean, "cv_cindex_se": se,
                                         "n_features": n_nonzero})
        coef = path.coef_[:, best]
        keep = np.flatnonzero(coef != 0)
        self.coef_ = pd.Series(coef[keep], index=Xs.columns[keep], name="coefficient")
        self.score_sd_ = _unit_scale(Z[:, keep] @ coef[keep])
        return self

    def _cross_validate(self, coxnet, alphas, Z, y, event, time, splits):
        """Each fold's LASSO path (standardised on the fold's training part) and its held-out
        C-index and risks at every alpha."""
        from sklearn.base import clone
        from sksurv.exceptions import NoComparablePairException
        from sksurv.metrics import concordance_index_censored

        scores = np.full((len(splits), len(alphas)), np.nan)
        fold_risk = np.full((len(Z), len(alphas)), np.nan)
        fold_fits = []
        for f, (tr, te) in enumerate(splits):
            mu, sd = Z[tr].mean(axis=0), Z[tr].std(axis=0)
            sd[sd == 0] = 1.0
            model = self._fit_quietly(clone(coxnet), (Z[tr] - mu) / sd, y[tr])
            fold_fits.append((model, (Z[tr] - mu) / sd, te))
            for k, a in enumerate(alphas):
                risk = model.predict((Z[te] - mu) / sd, alpha=a)
                fold_risk[te, k] = risk
                try:
                    scores[f, k] = concordance_index_censored(event[te], time[te], risk)[0]
                except NoComparablePairException:  # a small fold: its C-index is undefined
                    pass
        if np.isnan(scores).all():
            raise SelectionError("no cross-validation fold has a comparable pair of patients; "
                                 "use fewer folds")
        return scores, fold_risk, fold_fits

    def _choose_alpha(self, scores, path_coef, alphas):
        """The path index of the best cross-validated C-index (or, by the 1-SE rule, the
        sparsest within one SE of it), among alphas that keep a feature."""
        mean = np.nanmean(scores, axis=0)
        se = np.nanstd(scores, axis=0, ddof=1) / np.sqrt(np.sum(np.isfinite(scores), axis=0))
        n_nonzero = (np.abs(path_coef) > 0).sum(axis=0)
        candidates = np.flatnonzero(n_nonzero > 0)  # a Rad-score needs at least one feature
        if len(candidates) == 0:
            raise SelectionError("LASSO-Cox kept no feature at any alpha of the path")
        best = candidates[np.argmax(mean[candidates])]
        if self.alpha_rule == "1se":  # the sparsest model within one SE of the best
            ok = candidates[mean[candidates] >= mean[best] - se[best]]
            best = ok[np.argmax(alphas[ok])]
        return best, mean, se, n_nonzero

    @staticmethod
    def _fit_quietly(model, Z, y):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter at the smallest alphas
                return model.fit(Z, y)
        except ArithmeticError as exc:
            raise SelectionError(f"LASSO-Cox failed ({exc}); raise alpha_min_ratio in the config") from None

    def signature(self) -> pd.DataFrame:
        """Selected features with the score's coefficient (the LASSO's, ``lasso_coefficient``,
        over the score's training SD) and the training mean / SD that standardise them."""
        names = self.coef_.index
        return pd.DataFrame({"feature": names, "coefficient": self.coef_.to_numpy() / self.score_sd_,
                             "lasso_coefficient": self.coef_.to_numpy(),
                             "train_mean": self.mean_[names].to_numpy(), "train_sd": self.scale_[names].to_numpy()})

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """The Rad-score of every row of X (any cohort)."""
        names = self.coef_.index
        missing = names.difference(X.columns)
        if len(missing):
            raise SelectionError(f"the Rad-score needs feature '{missing[0]}', absent from the table")
        z = (X[names] - self.mean_[names]) / self.scale_[names]
        return pd.Series(z.to_numpy() @ self.coef_.to_numpy() / self.score_sd_, index=X.index, name="rad_score")

    def report(self) -> dict:
        return {
            "features_in": int(self.n_features_in_),
            "after_variance_filter": int(len(self.variance_kept_)),
            "after_correlation_pruning": int(len(self.correlation_kept_)),
            "selected": int(len(self.coef_)),
            "alpha": self.alpha_,
            "alpha_rule": self.alpha_rule,
            "score_training_sd": self.score_sd_,
            "cv_folds": self.n_folds,
            "cv_cindex_at_alpha": float(self.cv_results_.loc[self.cv_results_["alpha"] == self.alpha_,
                                                             "cv_cindex_mean"].iloc[0]),
            "settings": {"variance_threshold": self.variance_threshold,
                         "correlation_cutoff": self.correlation_cutoff, "n_alphas": self.n_alphas,
                         "alpha_min_ratio": self.alpha_min_ratio, "seed": self.seed},
        }


def apply_signature(signature: pd.DataFrame, X: pd.DataFrame) -> pd.Series:
    """A saved signature (``RadScore.signature()``: feature, coefficient, train_mean,
    train_sd) on the rows of X: what ``RadScore.predict`` gives, from the file alone."""
    names = pd.Index(signature["feature"].astype(str))
    missing = names.difference(X.columns)
    if len(missing):
        raise SelectionError(f"the signature needs feature '{missing[0]}', absent from the table")
    coef, mean, sd = (signature[c].astype(float).to_numpy() for c in ("coefficient", "train_mean", "train_sd"))
    z = (X[names].to_numpy(dtype=float) - mean) / sd
    return pd.Series(z @ coef, index=X.index)


def signature_scores(refit: pd.Series, cohort: pd.Series, train_scores: pd.DataFrame, name: str) -> pd.DataFrame:
    """Every patient's score: a training patient's from the fit (``train_scores``, indexed
    by patient: ``name`` and ``fit``, out-of-fold with cross-fitting folds), everyone else's
    from the signature (``refit``)."""
    score, is_train = training_or_refit(refit, cohort, train_scores[name])
    fit = np.where(is_train, train_scores["fit"].reindex(refit.index).to_numpy(), "refit")
    return pd.DataFrame({"patient_id": refit.index, "cohort": cohort.reindex(refit.index).to_numpy(), name: score,
                         "fit": fit, f"{name}_refit": refit.to_numpy()})


def radscore_fitter(event: pd.Series, time: pd.Series, **settings):
    """``fit(X, folds)`` for ``crossfit.two_stage_scores``: a Rad-score (variance filter,
    pruning, LASSO-Cox) fitted on X's rows, its alpha cross-validated on their shared
    cross-fitting folds (on seeded stratified folds, two, where fewer than two remain)."""
    def fit(X: pd.DataFrame, folds: pd.Series) -> RadScore:
        model = RadScore(**settings)
        folds = folds.reindex(X.index)
        if folds.nunique() < 2:
            model.n_folds, folds = 2, None
        return model.fit(X, event.reindex(X.index), time.reindex(X.index), folds=folds)

    return fit
