"""Inter-reader ICC (pingouin) for radiomic features and Table S3."""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from ctith import reproducibility as rp
from ctith.errors import CtithError


@pytest.fixture
def wine():
    """pingouin's own ICC example: 8 wines scored by judges A and B."""
    d = pg.read_dataset("icc")
    wide = d.pivot(index="Wine", columns="Judge", values="Scores")
    return d[d["Judge"].isin(["A", "B"])], wide["A"], wide["B"]


def shrout_fleiss(a: np.ndarray, b: np.ndarray) -> dict:
    """ICC(1,1), ICC(2,1), ICC(3,1) from the two-way ANOVA mean squares, by hand."""
    y = np.column_stack([a, b]).astype(float)
    n, k = y.shape
    grand = y.mean()
    msr = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    msw = (((y - y.mean(axis=1, keepdims=True)) ** 2).sum()) / (n * (k - 1))
    return {"ICC(1,1)": (msr - msw) / (msr + (k - 1) * msw),
            "ICC(A,1)": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n),
            "ICC(C,1)": (msr - mse) / (msr + (k - 1) * mse)}


@pytest.mark.parametrize("form", rp.ICC_FORMS)
def test_icc_matches_pingouin_and_shrout_fleiss(wine, form):
    long, a, b = wine
    value, lo, hi, n = rp.icc(a, b, form)
    ref = pg.intraclass_corr(long, targets="Wine", raters="Judge", ratings="Scores").set_index("Type")
    assert n == 8
    assert value == pytest.approx(ref.at[form, "ICC"], abs=1e-12)
    assert value == pytest.approx(shrout_fleiss(a.to_numpy(), b.to_numpy())[form], abs=1e-12)
    # pingouin prints the CI to 2 decimals; ours is the same interval, unrounded.
    assert lo == pytest.approx(ref.at[form, "CI95"][0], abs=0.005)
    assert hi == pytest.approx(ref.at[form, "CI95"][1], abs=0.005)
    assert lo < value < hi
    assert pg.options["round.column.CI95"] == 2  # pingouin's own setting is left as it was


def test_icc_absolute_agreement_penalises_a_reader_offset():
    rng = np.random.default_rng(1)
    truth = pd.Series(rng.normal(100, 20, 30))
    a = truth + rng.normal(0, 3, 30)
    b = truth + rng.normal(0, 3, 30) + 25.0  # reader 2 systematically 25 higher
    assert rp.icc(a, b, "ICC(C,1)")[0] > 0.95
    assert rp.icc(a, b, "ICC(A,1)")[0] < 0.6


def test_identical_ratings_give_icc_one_with_a_degenerate_ci():
    a = pd.Series([0, 1, 1, 0, 1.0])
    assert rp.icc(a, a.copy(), "ICC(A,1)") == (1.0, 1.0, 1.0, 5)


def test_icc_undefined_without_variation_or_patients():
    same = pd.Series([1, 1, 1, 1])
    assert np.isnan(rp.icc(same, same)[0])
    assert np.isnan(rp.icc(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]))[0])
    with pytest.raises(ValueError, match="ICC form"):
        rp.icc(same, same, "ICC(2,1)")


def test_feature_icc_and_filter():
    rng = np.random.default_rng(2)
    ids = [f"P{i}" for i in range(20)]
    truth = rng.normal(size=20)
    r1 = pd.DataFrame({"stable": truth, "noisy": rng.normal(size=20), "flat": 1.0}, index=ids)
    r2 = pd.DataFrame({"stable": truth + rng.normal(0, 0.05, 20), "noisy": rng.normal(size=20), "flat": 1.0},
                      index=ids).iloc[::-1]  # row order does not matter
    table = rp.feature_icc(r1, r2.iloc[:15])
    assert list(table["feature"]) == ["stable", "noisy", "flat"]
    assert (table["n"] == 15).all()
    assert table.loc[0, "icc"] > 0.99 and table.loc[1, "icc"] < 0.5 and np.isnan(table.loc[2, "icc"])
    assert list(rp.reproducible(table, 0.75)) == [True, False, False]
    with pytest.raises(CtithError, match="reader-2 features lack 1 reader-1 features"):
        rp.feature_icc(r1, r2.drop(columns="flat"))


def test_table_s3_columns_levels_and_undefined_rows():
    clinical = pd.DataFrame({
        "t_stage": ["T1", "T2", "T3", "T4", "T2", "T3", ""],
        "t_stage_r2": ["T1", "T2", "T3", "T3", "T2", "T3", "T2"],
        "tumor_number": [1, 1, 1, 1, 1, 1, 1],
        "tumor_number_r2": [1, 1, 1, 1, 1, 1, None],
    }, index=[f"P{i}" for i in range(7)])
    items = [{"label": "Clinical T stage", "reader1": "t_stage", "reader2": "t_stage_r2",
              "levels": ["T1", "T2", "T3", "T4"]},
             {"label": "Number", "reader1": "tumor_number", "reader2": "tumor_number_r2"}]
    values = rp.table_s3(clinical, items)
    a = np.array([0, 1, 2, 3, 1, 2.0])
    b = np.array([0, 1, 2, 2, 1, 2.0])
    assert values.loc[0, "n"] == 6  # P6 has no reader-1 rating
    assert values.loc[0, "icc"] == pytest.approx(shrout_fleiss(a, b)["ICC(A,1)"])
    assert values.loc[0, "exact_agreement"] == pytest.approx(5 / 6)
    table = rp.format_table_s3(values)
    assert list(table.columns) == ["CECT semantic feature", "ICC", "95% CI", "n", "Exact agreement"]
    assert table.loc[0, "ICC"] == f"{values.loc[0, 'icc']:.3f}"
    assert table.loc[0, "95% CI"] == f"{values.loc[0, 'ci_low']:.3f} - {values.loc[0, 'ci_high']:.3f}"
    assert table.loc[0, "Exact agreement"] == "83.3%"
    assert table.loc[1].tolist() == ["Number", "-", "-", 6, "100.0%"]  # every rating 1: ICC undefined


def test_table_s3_names_the_patient_with_an_unknown_level():
    clinical = pd.DataFrame({"n": ["N0", "N1", "Nx"], "n2": ["N0", "N1", "N1"]}, index=["P1", "P2", "P3"])
    with pytest.raises(CtithError, match=r"patient P3: rating 'Nx' is not one of the levels \['N0', 'N1'\]"):
        rp.table_s3(clinical, [{"label": "N", "reader1": "n", "reader2": "n2", "levels": ["N0", "N1"]}])
    with pytest.raises(CtithError, match=r"has no column 'x_r2'"):
        rp.table_s3(clinical, [{"label": "X", "reader1": "n", "reader2": "x_r2"}])
