"""Inter-reader reproducibility (Appendix 3, Table S3): intraclass correlation as pingouin
computes it (pingouin for Table S3; for the 1,130 features, the same ANOVA vectorised).

ICC form. The default is ICC(A,1) in pingouin's naming, Shrout and Fleiss' ICC(2,1): a
two-way random-effects model, absolute agreement, single rater. The two readers stand
for radiologists in general (random, not fixed, raters); the model is built on one
reader's measurements, so single-rater reliability is what matters; and absolute
agreement counts a systematic offset between readers (one draws the boundary wider)
as disagreement, which a consistency ICC would forgive. ICC(1,1) and ICC(C,1) can be
chosen in the config.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ..errors import CtithError

ICC_FORMS = ("ICC(1,1)", "ICC(A,1)", "ICC(C,1)")
# The paper's three columns, then the number of patients both readers rated and their
# exact agreement (an ICC is low when ratings barely vary, however often readers agree).
TABLE_S3_COLUMNS = ["CECT semantic feature", "ICC", "95% CI", "n", "Exact agreement"]


@contextmanager
def _full_precision():
    # pingouin rounds the CI to 2 decimals by default; Table S3 reports 3.
    import pingouin as pg

    saved = pg.options.get("round.column.CI95")
    pg.options["round.column.CI95"] = None
    try:
        yield pg
    finally:
        pg.options["round.column.CI95"] = saved


def icc(reader1: pd.Series, reader2: pd.Series, form: str = "ICC(A,1)") -> tuple[float, float, float, int]:
    """ICC of two readers' values over the patients both rated: (icc, ci_low, ci_high, n).

    NaN when fewer than 3 patients or when no value varies (the ICC is then undefined).
    """
    if form not in ICC_FORMS:
        raise ValueError(f"ICC form must be one of {ICC_FORMS}, not {form!r}")
    pair = pd.DataFrame({"r1": reader1, "r2": reader2}).dropna()
    n = len(pair)
    if n < 3 or np.ptp(pair.to_numpy()) == 0:
        return np.nan, np.nan, np.nan, n
    if (pair["r1"] == pair["r2"]).all():
        # Identical ratings: ICC 1 in every form; pingouin's CI divides by the zero error term.
        return 1.0, 1.0, 1.0, n
    long = pd.DataFrame({
        "patient": np.tile(np.arange(n), 2),
        "reader": np.repeat(["reader1", "reader2"], n),
        "value": np.concatenate([pair["r1"].to_numpy(float), pair["r2"].to_numpy(float)]),
    })
    with _full_precision() as pg, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation chatter from inside pingouin
        res = pg.intraclass_corr(long, targets="patient", raters="reader", ratings="value").set_index("Type")
    lo, hi = res.at[form, "CI95"]
    return float(res.at[form, "ICC"]), float(lo), float(hi), n


def feature_icc(reader1: pd.DataFrame, reader2: pd.DataFrame, form: str = "ICC(A,1)",
                other: str = "reader-2") -> pd.DataFrame:
    """ICC of every radiomic feature between two extractions (patients x features): reader 1
    against reader 2 (inter-observer) or against reader 1's repeat delineation
    (intra-observer; ``other`` names it in messages)."""
    patients = reader1.index.intersection(reader2.index)
    missing = reader1.columns.difference(reader2.columns)
    if len(missing):
        raise CtithError(f"{other} features lack {len(missing)} reader-1 features (e.g. {missing[0]}); "
                         "were they extracted with the same parameter file?")
    if form not in ICC_FORMS:
        raise ValueError(f"ICC form must be one of {ICC_FORMS}, not {form!r}")
    a = reader1.loc[patients].to_numpy(float)
    b = reader2.loc[patients, reader1.columns].to_numpy(float)
    table = pd.DataFrame({"feature": reader1.columns, "icc": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                          "n": len(patients)})
    complete = ~(np.isnan(a) | np.isnan(b)).any(axis=0)
    if len(patients) >= 3 and complete.any():
        table.loc[complete, ["icc", "ci_low", "ci_high"]] = np.column_stack(
            icc_columns(a[:, complete], b[:, complete], form))
    # A feature some patient lacks: pingouin on the patients both rated.
    for j in np.flatnonzero(~complete):
        name = reader1.columns[j]
        table.loc[j, ["icc", "ci_low", "ci_high", "n"]] = icc(reader1.loc[patients, name],
                                                             reader2.loc[patients, name], form)
    return table.astype({"n": int})


def icc_columns(a: np.ndarray, b: np.ndarray, form: str = "ICC(A,1)") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ICC and its 95% CI of each column of two complete (patients x features) arrays:
    pingouin's ``intraclass_corr`` with two raters, vectorised over the features.

    The feature filter takes the ICC of each of 1,130 features twice (inter- and intra-observer);
    pingouin's long-format
    ANOVA takes about 25 ms a feature, this about 0.3 s for all (tested against pingouin). As
    :func:`icc`: NaN where no value varies, 1 where the readers agree exactly."""
    from scipy.stats import f

    n, k = a.shape[0], 2
    x = np.stack([a, b], axis=1)  # patients x raters x features
    grand = x.mean(axis=(0, 1))
    ss_targets = k * ((x.mean(axis=1) - grand) ** 2).sum(axis=0)
    ss_raters = n * ((x.mean(axis=0) - grand) ** 2).sum(axis=0)
    ss_error = ((x - grand) ** 2).sum(axis=(0, 1)) - ss_targets - ss_raters
    df_targets, df_error = n - 1, (n - 1) * (k - 1)
    msb, msj, mse = ss_targets / df_targets, ss_raters / (k - 1), ss_error / df_error
    msw = (ss_raters + ss_error) / ((k - 1) + df_error)
    alpha = 0.05
    with np.errstate(divide="ignore", invalid="ignore"):
        if form in ("ICC(1,1)", "ICC(C,1)"):  # one-way (within-patient MS) or consistency (error MS)
            ms, df = (msw, n * (k - 1)) if form == "ICC(1,1)" else (mse, df_error)
            value = (msb - ms) / (msb + (k - 1) * ms)
            fl = msb / ms / f.ppf(1 - alpha / 2, df_targets, df)
            fu = msb / ms * f.ppf(1 - alpha / 2, df, df_targets)
            lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
        else:  # ICC(A,1): Shrout and Fleiss' ICC(2,1), with its Satterthwaite CI
            value = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
            fj = msj / mse
            vn = df_error * (k * value * fj + n * (1 + (k - 1) * value) - k * value) ** 2
            vd = df_targets * k ** 2 * value ** 2 * fj ** 2 + (n * (1 + (k - 1) * value) - k * value) ** 2
            v = vn / vd
            f2u, f2l = f.ppf(1 - alpha / 2, n - 1, v), f.ppf(1 - alpha / 2, v, n - 1)
            lo = n * (msb - f2u * mse) / (f2u * (k * msj + (k * n - k - n) * mse) + n * msb)
            hi = n * (f2l * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2l * msb)
    flat = np.ptp(x, axis=(0, 1)) == 0
    same = (a == b).all(axis=0) & ~flat
    value, lo, hi = (np.where(flat, np.nan, np.where(same, 1.0, v_)) for v_ in (value, lo, hi))
    return value, lo, hi


def reproducible(icc_table: pd.DataFrame, threshold: float = 0.75) -> pd.Series:
    """True for features whose ICC reaches the threshold (an undefined ICC does not)."""
    return pd.Series((icc_table["icc"] >= threshold).to_numpy(), index=icc_table["feature"].to_numpy())


def feature_filter(inter: pd.DataFrame, intra: pd.DataFrame | None, threshold: float) -> pd.DataFrame:
    """The feature filter's table: the inter-observer ICC (``feature_icc`` of reader 1 and 2)
    and, where reader 1 re-delineated patients, the intra-observer ICC beside it (columns
    ``icc_intra``, ``ci_low_intra``, ``ci_high_intra``, ``n_intra``). ``reproducible``: every
    ICC given reaches ``threshold`` (Appendix 3 computes both)."""
    table = inter.reset_index(drop=True).copy()
    keep = reproducible(table, threshold).to_numpy()
    if intra is not None:
        by_feature = intra.set_index("feature").reindex(table["feature"])
        for c in ("icc", "ci_low", "ci_high", "n"):
            table[f"{c}_intra"] = by_feature[c].to_numpy()
        keep = keep & (table["icc_intra"] >= threshold).to_numpy()
    table["reproducible"] = keep
    return table


ICC_KINDS = (("inter-observer (reader 1 vs reader 2)", ""), ("intra-observer (reader 1 vs its repeat)", "_intra"))


def icc_summary(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The feature ICCs' distribution, one row per kind (inter-, and intra-observer where
    given): patients, features with a defined ICC, median and quartiles, the share at or
    above ``threshold`` and at or above 0.90, and the features that ICC alone would keep.
    A last row gives the features the filter keeps: those every ICC keeps."""
    rows = []
    for kind, suffix in ICC_KINDS:
        if f"icc{suffix}" not in table:
            continue
        values = pd.to_numeric(table[f"icc{suffix}"], errors="coerce").dropna()
        q1, median, q3 = (np.quantile(values, [0.25, 0.5, 0.75]) if len(values) else (np.nan,) * 3)
        rows.append({"ICC": kind, "patients": int(pd.to_numeric(table[f"n{suffix}"]).max()),
                     "features": int(len(values)), "median": median, "q1": q1, "q3": q3,
                     f"share >= {threshold:g}": float((values >= threshold).mean()) if len(values) else np.nan,
                     "share >= 0.9": float((values >= 0.9).mean()) if len(values) else np.nan,
                     "kept": int((values >= threshold).sum())})
    rows.append({"ICC": "every ICC (the filter)",
                 "kept": int(table["reproducible"].astype(str).str.lower().eq("true").sum())})
    return pd.DataFrame(rows).astype({"patients": "Int64", "features": "Int64", "kept": "Int64"})


def encode_rating(values: pd.Series, levels: list | None = None) -> pd.Series:
    """Ratings as numbers: ordered levels (e.g. T1 < T2 < T3) by position, else numeric."""
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if levels:
        pos = {str(v): i for i, v in enumerate(levels)}
        out = values.astype(str).str.strip().map(pos)
        bad = ~blank & out.isna()
        if bad.any():
            pid = values.index[bad][0]
            raise CtithError(f"patient {pid}: rating {values[pid]!r} is not one of the levels {levels}")
        return out.where(~blank).astype(float)
    out = pd.to_numeric(values.where(~blank), errors="coerce")
    bad = ~blank & out.isna()
    if bad.any():
        pid = values.index[bad][0]
        raise CtithError(f"patient {pid}: rating {values[pid]!r} is not a number; give the column's levels "
                         "in the config")
    return out.astype(float)


def table_s3(clinical: pd.DataFrame, items: list[dict], form: str = "ICC(A,1)") -> pd.DataFrame:
    """Table S3: inter-reader ICC with 95% CI of each semantic feature rated by both readers.

    ``items``: dicts with ``label``, ``reader1`` and ``reader2`` (clinical columns) and
    optional ``levels`` (ordered categories). Values stay numeric; ``format_table_s3``
    makes the paper's text form.
    """
    rows = []
    for item in items:
        for key in ("reader1", "reader2"):
            if item[key] not in clinical.columns:
                raise CtithError(f"Table S3 item '{item['label']}': the clinical table has no column "
                                 f"'{item[key]}'")
        a = encode_rating(clinical[item["reader1"]], item.get("levels"))
        b = encode_rating(clinical[item["reader2"]], item.get("levels"))
        value, lo, hi, n = icc(a, b, form)
        pair = pd.DataFrame({"a": a, "b": b}).dropna()
        rows.append({"feature": item["label"], "icc": value, "ci_low": lo, "ci_high": hi, "n": n,
                     "exact_agreement": float((pair["a"] == pair["b"]).mean()) if n else np.nan})
    return pd.DataFrame(rows)


def format_table_s3(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's columns (3 decimals; '-' where the ICC is undefined: no variation), n and
    exact agreement."""
    def num(x):
        return "-" if pd.isna(x) else f"{x:.3f}"

    return pd.DataFrame({
        "CECT semantic feature": table["feature"],
        "ICC": [num(x) for x in table["icc"]],
        "95% CI": ["-" if pd.isna(lo) else f"{lo:.3f} - {hi:.3f}" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "n": table["n"].astype(int),
        "Exact agreement": ["-" if pd.isna(x) else f"{100 * x:.1f}%" for x in table["exact_agreement"]],
    }, columns=TABLE_S3_COLUMNS)
