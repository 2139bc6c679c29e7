"""ComBat harmonisation of radiomic features (Appendix 5) with neuroCombat.

``ComBat`` is an estimator: ``fit`` runs neuroCombat on the patients it is given and
keeps its estimates; ``transform`` applies them to any patients of the fitted batches,
each with their own covariates (neuroCombat's own ``neuroCombatFromTraining`` uses the
training cohort's mean covariate effect instead, and fails on NumPy 2). On the fitted
patients ``transform`` reproduces neuroCombat's output; a test checks it.

Two modes (``harmonize``):
- ``train``: fit on the training cohort, apply to every cohort. A batch absent from
  training cannot be harmonised this way and is an error.
- ``transductive``: fit on every patient's features (never labels). The only way to
  harmonise an institution that appears only in validation; whatever depends on it
  says so.

Features constant within a batch have no within-batch variance to scale (neuroCombat
divides by it); they are dropped, or with ``constant_in_batch="keep"`` passed through
unharmonised. Either way they are listed.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import CtithError

MODES = ("train", "transductive")
OUTCOME_NAMES = ("dm_event", "dm_time_months")


class HarmonizeError(CtithError):
    pass


def constant_in_batch(X: pd.DataFrame, batch: pd.Series, rtol: float = 1e-12) -> pd.Index:
    """Features whose values do not vary within at least one batch."""
    const = pd.Series(False, index=X.columns)
    for _, rows in X.groupby(batch.to_numpy()):
        spread = rows.max() - rows.min()
        scale = rows.abs().max().clip(lower=1.0)
        const |= spread <= rtol * scale
    return X.columns[const.to_numpy()]


def standardized_difference(X: pd.DataFrame, batch: pd.Series) -> pd.Series:
    """Per feature: mean |Cohen's d| between batches (pooled SD), over every pair of batches."""
    levels = sorted(pd.unique(batch))
    out = []
    for i, a in enumerate(levels):
        for b in levels[i + 1:]:
            xa, xb = X[(batch == a).to_numpy()], X[(batch == b).to_numpy()]
            sd = np.sqrt((xa.var(ddof=1) + xb.var(ddof=1)) / 2.0)
            d = (xa.mean() - xb.mean()).abs() / sd.where(sd > 0)
            out.append(d)
    if not out:
        return pd.Series(np.nan, index=X.columns)
    return pd.concat(out, axis=1).mean(axis=1)


@dataclass
class ComBat:
    """neuroCombat as a fit/transform estimator on a patients x features frame."""

    categorical: list[str] = field(default_factory=list)
    continuous: list[str] = field(default_factory=list)
    eb: bool = True
    parametric: bool = True
    constant_in_batch: str = "drop"  # drop | keep

    def _design_covariates(self, covariates: pd.DataFrame | None, index: pd.Index) -> np.ndarray:
        # neuroCombat's design: one-hot of each categorical covariate without its first
        # (sorted) level, then each continuous covariate as float32.
        cols = []
        for name in self.categorical:
            values = covariates.loc[index, name].astype(str).to_numpy()
            unknown = sorted(set(values) - set(self.levels_[name]))
            if unknown:
                pid = index[np.isin(values, unknown)][0]
                raise HarmonizeError(f"patient {pid}: covariate '{name}' = {unknown[0]!r} was not seen when "
                                     f"ComBat was fitted (levels {self.levels_[name]})")
            for level in self.levels_[name][1:]:
                cols.append((values == level).astype(float))
        for name in self.continuous:
            cols.append(pd.to_numeric(covariates.loc[index, name]).to_numpy(dtype="float32").astype(float))
        return np.column_stack(cols) if cols else np.zeros((len(index), 0))

    def _check_covariates(self, covariates: pd.DataFrame | None, index: pd.Index) -> None:
        names = [*self.categorical, *self.continuous]
        if not names:
            return
        bad = [n for n in names if n in OUTCOME_NAMES]
        if bad:
            raise HarmonizeError(f"ComBat covariate '{bad[0]}' is the outcome; preserving it would leak "
                                 "labels into the features")
        if covariates is None:
            raise HarmonizeError(f"ComBat covariates {names} need a covariate table")
        for n in names:
            if n not in covariates.columns:
                raise HarmonizeError(f"ComBat covariate '{n}' is not a clinical column")
            col = covariates[n].reindex(index)
            blank = col.isna() | (col.astype(str).str.strip() == "")
            if blank.any():
                raise HarmonizeError(f"patient {index[blank.to_numpy()][0]}: ComBat covariate '{n}' is blank")
            if n in self.continuous:
                num = pd.to_numeric(col, errors="coerce")
                if num.isna().any():
                    pid = index[num.isna().to_numpy()][0]
                    raise HarmonizeError(f"patient {pid}: ComBat covariate '{n}' = {col[pid]!r} is not a number")

    def fit(self, X: pd.DataFrame, batch: pd.Series, covariates: pd.DataFrame | None = None) -> "ComBat":
        from neuroCombat import neuroCombat

        batch = batch.reindex(X.index).astype(str)
        counts = batch.value_counts()
        if len(counts) < 2:
            raise HarmonizeError(f"ComBat needs at least 2 batches among the patients it is fitted on; "
                                 f"found {list(counts.index)}")
        small = counts[counts < 2]
        if len(small):
            b = small.index[0]
            column = f" ({batch.name})" if batch.name else ""
            raise HarmonizeError(f"batch '{b}'{column} has 1 patient ({batch.index[batch == b][0]}) among those "
                                 "ComBat is fitted on; each batch needs at least 2")
        if X.isna().to_numpy().any():
            pid = X.index[X.isna().any(axis=1).to_numpy()][0]
            raise HarmonizeError(f"patient {pid}: missing feature values; ComBat needs complete features")
        self._check_covariates(covariates, X.index)
        self.features_in_ = X.columns
        self.constant_ = constant_in_batch(X, batch)
        self.features_ = X.columns.difference(self.constant_, sort=False)
        self.levels_ = {n: sorted(covariates.loc[X.index, n].astype(str).unique()) for n in self.categorical}

        covars = pd.DataFrame({"batch": batch.to_numpy()}, index=X.index)
        for n in self.categorical:
            covars[n] = covariates.loc[X.index, n].astype(str).to_numpy()
        for n in self.continuous:
            covars[n] = pd.to_numeric(covariates.loc[X.index, n]).to_numpy()
        dat = X[self.features_].to_numpy(dtype=float).T  # neuroCombat: features x samples
        design = np.column_stack([pd.get_dummies(batch).to_numpy(float), self._design_covariates(covariates, X.index)])
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise HarmonizeError("ComBat covariates are confounded with the batch (or with each other): "
                                 f"{[*self.categorical, *self.continuous]} by batch cannot be separated")
        with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints progress
            out = neuroCombat(dat, covars, "batch", categorical_cols=list(self.categorical) or None,
                              continuous_cols=list(self.continuous) or None, eb=self.eb,
                              parametric=self.parametric)
        est = out["estimates"]
        self.batches_ = [str(b) for b in est["batches"]]
        self.grand_mean_ = np.asarray(est["stand.mean"])[:, 0]
        self.var_pooled_ = np.asarray(est["var.pooled"]).ravel()
        self.gamma_star_ = np.asarray(est["gamma.star"])
        self.delta_star_ = np.asarray(est["delta.star"])
        # Covariate effects (neuroCombat keeps only their fitted values): the same least squares.
        d = out["info"]["design"].astype(float)
        b_hat = np.linalg.solve(d.T @ d, d.T @ dat.T)
        self.beta_ = b_hat[len(self.batches_):, :]
        self.fitted_ = pd.DataFrame(np.asarray(out["data"]).T, index=X.index, columns=self.features_)
        return self

    def transform(self, X: pd.DataFrame, batch: pd.Series, covariates: pd.DataFrame | None = None,
                  unseen_batch: str = "error") -> pd.DataFrame:
        """Harmonise ``X`` with the fitted estimates. A patient of a batch ComBat never saw is
        an error, or (``unseen_batch="keep"``) passes unharmonised with a warning."""
        if unseen_batch not in ("error", "keep"):
            raise HarmonizeError(f"unseen_batch must be 'error' or 'keep', not {unseen_batch!r}")
        batch = batch.reindex(X.index).astype(str)
        unknown = sorted(set(batch) - set(self.batches_))
        unseen = batch.isin(unknown).to_numpy()
        if unknown and unseen_batch == "error":
            who = list(X.index[unseen][:3])
            raise HarmonizeError(f"batch '{unknown[0]}' (patients {', '.join(who)}) was not in the data ComBat "
                                 f"was fitted on (batches {self.batches_}); use mode 'transductive' or a batch "
                                 "column whose values all occur in training")
        if unknown:
            warnings.warn(f"patients {', '.join(X.index[unseen])} of batch(es) {unknown}, which ComBat never saw, "
                          "pass unharmonised", UserWarning, stacklevel=2)
        self._check_covariates(covariates, X.index)
        x = X[self.features_].to_numpy(dtype=float)
        effect = self._design_covariates(covariates, X.index) @ self.beta_
        sd = np.sqrt(self.var_pooled_)
        z = (x - self.grand_mean_ - effect) / sd
        b = np.array([self.batches_.index(v) if v in self.batches_ else 0 for v in batch], dtype=int)
        z = (z - self.gamma_star_[b]) / np.sqrt(self.delta_star_[b])
        harmonised = z * sd + self.grand_mean_ + effect
        harmonised[unseen] = x[unseen]
        out = pd.DataFrame(harmonised, index=X.index, columns=self.features_)
        if self.constant_in_batch == "keep" and len(self.constant_):
            out = pd.concat([out, X[self.constant_]], axis=1)[self.features_in_]
        return out


    _FITTED = ("grand_mean_", "var_pooled_", "gamma_star_", "delta_star_", "beta_")

    def to_dict(self) -> dict:
        """The fitted estimates as JSON-safe values (floats round-trip exactly): what scoring a
        new patient needs, without the patients it was fitted on."""
        return {"categorical": list(self.categorical), "continuous": list(self.continuous), "eb": self.eb,
                "parametric": self.parametric, "constant_in_batch": self.constant_in_batch,
                "features_in": list(self.features_in_), "constant": list(self.constant_),
                "features": list(self.features_), "levels": self.levels_, "batches": self.batches_,
                **{name.rstrip("_"): getattr(self, name).tolist() for name in self._FITTED}}

    @classmethod
    def from_dict(cls, d: dict) -> "ComBat":
        model = cls(list(d["categorical"]), list(d["continuous"]), d["eb"], d["parametric"], d["constant_in_batch"])
        model.features_in_ = pd.Index(d["features_in"])
        model.constant_ = pd.Index(d["constant"])
        model.features_ = pd.Index(d["features"])
        model.levels_ = {k: list(v) for k, v in d["levels"].items()}
        model.batches_ = list(d["batches"])
        for name in cls._FITTED:
            setattr(model, name, np.asarray(d[name.rstrip("_")], dtype=float))
        if model.beta_.ndim == 1:  # no covariates: zero rows, one column per feature
            model.beta_ = model.beta_.reshape(0, len(model.features_))
        return model


@dataclass
class HarmonizeResult:
    features: pd.DataFrame  # every patient, harmonised
    model: ComBat
    fitted_on: list[str]  # patients ComBat was fitted on
    smd: pd.DataFrame  # per feature: standardized difference between batches, before and after
    summary: dict


def fit_combat(X: pd.DataFrame, batch: pd.Series, cohort: pd.Series, mode: str = "transductive",
               covariates: pd.DataFrame | None = None, categorical=(), continuous=(),
               constant: str = "drop", train_label: str = "train") -> tuple[ComBat, pd.Index]:
    """ComBat fitted in ``train`` mode (the rows of ``cohort == train_label``) or
    ``transductive`` mode (every row); labels are never an input. Returns the model and
    the rows it was fitted on."""
    if mode not in MODES:
        raise HarmonizeError(f"ComBat mode must be one of {MODES}, not {mode!r}")
    batch = batch.reindex(X.index).astype(str)
    fit_rows = X.index if mode == "transductive" else X.index[(cohort.reindex(X.index) == train_label).to_numpy()]
    if len(fit_rows) == 0:
        raise HarmonizeError(f"no {train_label} patients to fit ComBat on")
    model = ComBat(list(categorical), list(continuous), constant_in_batch=constant)
    model.fit(X.loc[fit_rows], batch.loc[fit_rows], covariates)
    return model, fit_rows


def fit_record(model: ComBat, mode: str, n_fitted: int, train_label: str = "train") -> dict:
    """How ComBat was fitted, for the estimates file and the report."""
    return {"mode": mode, "fitted_on": "every patient's features (no labels): transductive"
            if mode == "transductive" else f"{train_label} cohort only", "n_fitted": int(n_fitted),
            "covariates": {"categorical": list(model.categorical), "continuous": list(model.continuous)}}


def harmonization_summary(model: ComBat, fit: dict, X: pd.DataFrame, out: pd.DataFrame,
                          batch: pd.Series) -> tuple[pd.DataFrame, dict]:
    """Standardized differences between batches before and after (per feature) and the
    summary, on the patients of ``X`` (raw) and ``out`` (harmonised)."""
    batch = batch.reindex(X.index).astype(str)
    before = standardized_difference(X[out.columns], batch)
    after = standardized_difference(out, batch)
    smd = pd.DataFrame({"feature": out.columns, "smd_before": before.to_numpy(), "smd_after": after.to_numpy()})
    mb, ma = float(np.nanmean(before)), float(np.nanmean(after))
    summary = {
        **{k: fit[k] for k in ("mode", "fitted_on", "n_fitted")},
        "batches": {b: int(n) for b, n in batch.value_counts().sort_index().items()},
        "covariates": fit["covariates"],
        "features_in": int(X.shape[1]),
        "features_out": int(out.shape[1]),
        "constant_in_batch": {"action": model.constant_in_batch, "features": list(model.constant_)},
        "mean_abs_smd_before": mb,
        "mean_abs_smd_after": ma,
        "smd_reduction": 1.0 - ma / mb if mb > 0 else np.nan,
    }
    return smd, summary


def harmonize(X: pd.DataFrame, batch: pd.Series, cohort: pd.Series, mode: str = "transductive",
              covariates: pd.DataFrame | None = None, categorical=(), continuous=(),
              constant: str = "drop", train_label: str = "train") -> HarmonizeResult:
    """ComBat in ``train`` or ``transductive`` mode, applied to every row of X; labels are
    never an input."""
    model, fit_rows = fit_combat(X, batch, cohort, mode, covariates, categorical, continuous, constant, train_label)
    out = model.transform(X, batch.reindex(X.index).astype(str), covariates)
    smd, summary = harmonization_summary(model, fit_record(model, mode, len(fit_rows), train_label), X, out, batch)
    return HarmonizeResult(out, model, list(fit_rows), smd, summary)
