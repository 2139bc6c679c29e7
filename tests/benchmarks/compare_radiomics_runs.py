"""Two finished runs of one cohort that differ in how C-radiomics is extracted (for example
``radiomics.resampled_spacing``): how far do the features and what is built on them move?

Prints:
- the reader-1 features: the largest and the median relative difference over features
  (per feature the largest over patients, |b - a| / max(|a|, 1e-12)), and how many differ;
- the ICC filter: the features each run keeps as reproducible, and how many both keep;
- the LASSO: the features each run's Rad-score uses, and how many both use;
- the C-radiomics and C-radiomics + ITH survival models' C-index and DM AUC per cohort with
  their bootstrap 95% CIs, and the second run minus the first.

    python tests/benchmarks/compare_radiomics_runs.py RUN_A RUN_B
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ("C-radiomics", "C-radiomics + ITH")


def relative_difference(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """Per feature, the largest over patients of |b - a| / |a| (|a| floored at 1e-12)."""
    a, b = a.align(b, join="inner")
    x, y = a.to_numpy(float), b.to_numpy(float)
    rel = np.abs(y - x) / np.maximum(np.abs(x), 1e-12)
    rel[np.isnan(x) & np.isnan(y)] = 0.0
    return pd.Series(np.nanmax(rel, axis=0), index=a.columns)


def kept(results: Path) -> tuple[set, set]:
    """The features the ICC filter keeps, and those the Rad-score uses."""
    icc = pd.read_csv(results / "cohort/radiomics_icc.tsv", sep="\t")
    signature = pd.read_csv(results / "cohort/radiomics_signature.tsv", sep="\t")
    return set(icc.loc[icc["reproducible"].astype(bool), "feature"]), set(signature["feature"])


def survival_metrics(results: Path) -> pd.DataFrame:
    m = pd.read_csv(results / "cohort/survival/metrics.tsv", sep="\t")
    m = m[m["model"].isin(MODELS) & m["metric"].isin(["c_index", "auc_dm"])]
    return m.set_index(["model", "cohort", "metric"])[["value", "ci_low", "ci_high"]]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path, help="the first run's folder (results/ inside)")
    ap.add_argument("run_b", type=Path, help="the second run's folder")
    args = ap.parse_args(argv)
    a, b = args.run_a / "results", args.run_b / "results"

    rel = relative_difference(*(pd.read_csv(r / "cohort/radiomics_features.tsv", sep="\t", index_col="patient_id")
                                 for r in (a, b)))
    print(f"reader-1 features: {len(rel)}; relative difference (largest over patients): "
          f"median {rel.median():.3g}, largest {rel.max():.3g} ({rel.idxmax()}); "
          f"{int((rel > 1e-9).sum())} differ, {int((rel > 0.1).sum())} by more than 10%")

    (icc_a, lasso_a), (icc_b, lasso_b) = kept(a), kept(b)
    print(f"ICC filter keeps: {len(icc_a)} / {len(icc_b)}, both {len(icc_a & icc_b)}")
    print(f"Rad-score uses: {len(lasso_a)} / {len(lasso_b)}, both {len(lasso_a & lasso_b)}")

    ma, mb = survival_metrics(a), survival_metrics(b)
    rows = ma.merge(mb, left_index=True, right_index=True, suffixes=("_a", "_b"))
    print(f"\n{'model':<20}{'cohort':<21}{'metric':<8}{'A (95% CI)':>24}{'B (95% CI)':>24}{'B - A':>8}")
    for (model, cohort, metric), r in rows.iterrows():
        fa = f"{r.value_a:.3f} ({r.ci_low_a:.3f}-{r.ci_high_a:.3f})"
        fb = f"{r.value_b:.3f} ({r.ci_low_b:.3f}-{r.ci_high_b:.3f})"
        print(f"{model:<20}{cohort:<21}{metric:<8}{fa:>24}{fb:>24}{r.value_b - r.value_a:>+8.3f}")


if __name__ == "__main__":
    main()
