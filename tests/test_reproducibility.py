"""Inter-reader ICC (pingouin) for radiomic features and Table S3."""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from ctith.radiomics import reproducibility as rp
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


@pytest.mark.parametrize("form", rp.ICC_FORMS)
def test_feature_icc_vectorised_equals_pingouin_feature_by_feature(wine, form):
    """feature_icc's one pass over every feature gives pingouin's ICC and CI of each, feature by
    feature: pingouin's wine example, noisy, offset, heavy-tailed, flat, identical columns, and
    one with a missing value (pingouin on the patients both rated)."""
    _, a, b = wine
    rng = np.random.default_rng(5)
    truth = rng.normal(50, 10, (8, 5))
    r1 = pd.DataFrame(truth + rng.normal(0, 4, (8, 5)), index=a.index)
    r2 = pd.DataFrame(truth + rng.normal(0, 4, (8, 5)) + [0, 9, 0, 0, 0], index=a.index)
    r1[2], r2[2] = np.exp(r1[2] / 10), np.exp(r2[2] / 10)
    r1["wine"], r2["wine"] = a, b
    r1["flat"], r2["flat"] = 3.0, 3.0
    r1["same"] = r2["same"] = rng.normal(size=8)
    r2.loc[a.index[3], 4] = np.nan
    table = rp.feature_icc(r1, r2, form).set_index("feature")
    for name in r1.columns:
        value, lo, hi, n = rp.icc(r1[name], r2[name], form)
        got = table.loc[name]
        assert got["n"] == n == (7 if name == 4 else 8)
        for mine, ref in zip((got["icc"], got["ci_low"], got["ci_high"]), (value, lo, hi)):
            assert (np.isnan(mine) and np.isnan(ref)) or mine == pytest.approx(ref, abs=1e-12), name
    assert np.isnan(table.loc["flat", "icc"]) and tuple(table.loc["same", ["icc", "ci_low", "ci_high"]]) == (1, 1, 1)


def test_intra_observer_icc_on_a_hand_computed_example():
    """Reader 1 twice on five patients: 9/10, 6/7, 8/8, 7/5, 10/9. By hand, grand mean 7.9;
    MSR = 2 x 10.7 / 4 = 5.35, MSC = 5 x 0.02 / 1 = 0.1, SSE = 24.9 - 21.4 - 0.1 = 3.4,
    MSE = 3.4 / 4 = 0.85, MSW = 3.5 / 5 = 0.7, so ICC(A,1) = 4.5 / (6.2 + 2 x (0.1 - 0.85) / 5)
    = 4.5 / 5.9, ICC(C,1) = 4.5 / 6.2 and ICC(1,1) = 4.65 / 6.05."""
    first = pd.Series([9, 6, 8, 7, 10.0], index=list("abcde"))
    repeat = pd.Series([10, 7, 8, 5, 9.0], index=list("abcde"))
    assert rp.icc(first, repeat, "ICC(A,1)")[0] == pytest.approx(4.5 / 5.9, abs=1e-12)
    assert rp.icc(first, repeat, "ICC(C,1)")[0] == pytest.approx(4.5 / 6.2, abs=1e-12)
    assert rp.icc(first, repeat, "ICC(1,1)")[0] == pytest.approx(4.65 / 6.05, abs=1e-12)


def test_feature_filter_keeps_what_both_iccs_pass():
    rng = np.random.default_rng(3)
    ids = [f"P{i}" for i in range(30)]
    truth = rng.normal(size=(30, 3))
    r1 = pd.DataFrame(truth, index=ids, columns=["both", "inter_only", "intra_only"])
    # Reader 2 follows reader 1 on "both" and "inter_only"; the repeat on "both" and "intra_only".
    r2 = r1 + rng.normal(0, 0.05, (30, 3)) * [1, 1, 0] + rng.normal(0, 2, (30, 3)) * [0, 0, 1]
    rep = r1 + rng.normal(0, 0.05, (30, 3)) * [1, 0, 1] + rng.normal(0, 2, (30, 3)) * [0, 1, 0]
    inter = rp.feature_icc(r1, r2)
    intra = rp.feature_icc(r1, rep.iloc[:12], other="reader-1 repeat")
    table = rp.feature_filter(inter, intra, 0.75)
    assert list(table["reproducible"]) == [True, False, False]
    assert list(table["n"]) == [30] * 3 and list(table["n_intra"]) == [12] * 3
    assert list(rp.feature_filter(inter, None, 0.75)["reproducible"]) == [True, True, False]
    summary = rp.icc_summary(table, 0.75).set_index("ICC")
    assert list(summary["patients"].iloc[:2]) == [30, 12] and list(summary["kept"]) == [2, 2, 1]
    assert summary["share >= 0.75"].iloc[:2].tolist() == pytest.approx([2 / 3, 2 / 3])
    with pytest.raises(CtithError, match="reader-1 repeat features lack 1 reader-1 features"):
        rp.feature_icc(r1, rep.drop(columns="both"), other="reader-1 repeat")


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


def test_reproducibility_command_with_a_repeat_delineation(tmp_path):
    """`ctith reproducibility --reader1-repeat`: both ICCs on the training patients only, the
    filter needs both, and the summary table; too few repeats is one clear error."""
    from ctith.cli import main

    rng = np.random.default_rng(4)
    ids = [f"P{i:02d}" for i in range(16)]
    r1 = pd.DataFrame(rng.normal(size=(16, 2)), index=pd.Index(ids, name="patient_id"), columns=["a", "b"])
    r2 = r1 + rng.normal(0, 0.05, (16, 2))
    rep = r1 + rng.normal(0, 0.05, (16, 2)) * [1, 0] + rng.normal(0, 2, (16, 2)) * [0, 1]
    split = pd.DataFrame({"patient_id": ids, "cohort": ["train"] * 12 + ["external_validation"] * 4})
    for name, df in (("r1", r1), ("r2", r2), ("rep", rep.iloc[:10])):
        df.to_csv(tmp_path / f"{name}.tsv", sep="\t")
    split.to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    args = ["reproducibility", "--reader1", str(tmp_path / "r1.tsv"), "--reader2", str(tmp_path / "r2.tsv"),
            "--reader1-repeat", str(tmp_path / "rep.tsv"), "--split", str(tmp_path / "split.tsv"),
            "--cohorts", "train", "--icc-threshold", "0.75", "--min-patients", "5",
            "--out-icc", str(tmp_path / "icc.tsv"), "--out-summary", str(tmp_path / "summary.tsv")]
    assert main(args) in (0, None)
    icc = pd.read_csv(tmp_path / "icc.tsv", sep="\t")
    assert list(icc["reproducible"]) == [True, False]
    assert list(icc["n"]) == [12, 12] and list(icc["n_intra"]) == [10, 10]
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert list(summary["patients"].iloc[:2]) == [12, 10] and (tmp_path / "summary.md").exists()
    assert list(summary["kept"]) == [int(icc["icc"].ge(0.75).sum()), int(icc["icc_intra"].ge(0.75).sum()), 1]
    args[args.index("5")] = "11"
    assert main(args) not in (0, None)
