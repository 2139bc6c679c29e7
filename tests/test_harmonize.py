"""ComBat (neuroCombat) as a fit/transform estimator, its modes and its guards."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from neuroCombat import neuroCombat

from ctith.radiomics.harmonize import ComBat, HarmonizeError, constant_in_batch, harmonize, standardized_difference


def cohort(n=60, seed=0, p=8):
    """Features with a site effect (location and scale), a histology effect and an age effect."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    site = pd.Series(np.where(np.arange(n) % 3 == 0, "B", "A"), index=ids)
    cov = pd.DataFrame({"histology": rng.choice(["RLMS", "RLPS"], n), "age": rng.integers(30, 80, n).astype(float)},
                       index=ids)
    base = rng.normal(size=(n, p)) * np.geomspace(1, 1e5, p) + np.geomspace(10, 1e6, p)
    base += (cov["histology"] == "RLPS").to_numpy()[:, None] * 0.8 * np.geomspace(1, 1e5, p)
    site_b = (site == "B").to_numpy()[:, None]
    X = base * np.where(site_b, 1.3, 1.0) + site_b * 1.5 * np.geomspace(1, 1e5, p)
    cohort_ = pd.Series(np.where(np.arange(n) < 40, "train", "internal_validation"), index=ids)
    cols = [f"f{j}" for j in range(p)]
    base = pd.DataFrame(base, index=ids, columns=cols)  # the features without the site effect
    return pd.DataFrame(X, index=ids, columns=cols), site, cov, cohort_, base


def test_transform_reproduces_neurocombat_on_the_fitted_patients():
    X, site, cov, _, _ = cohort()
    model = ComBat(["histology"], ["age"]).fit(X, site, cov)
    covars = pd.DataFrame({"batch": site, "histology": cov["histology"], "age": cov["age"]})
    with contextlib.redirect_stdout(io.StringIO()):
        ref = neuroCombat(X.to_numpy().T, covars, "batch", ["histology"], ["age"])["data"].T
    out = model.transform(X, site, cov)
    np.testing.assert_allclose(out.to_numpy(), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(model.fitted_.to_numpy(), ref, rtol=1e-12)


def test_site_effect_shrinks_and_histology_effect_stays():
    X, site, cov, c, base = cohort()
    res = harmonize(X, site, c, "transductive", cov, ["histology"], [])
    assert res.summary["smd_reduction"] > 0.8
    assert res.summary["mean_abs_smd_before"] > 1.0
    # The preserved covariate keeps its effect: RLPS - RLMS as in the site-free features.
    h = (cov["histology"] == "RLPS").to_numpy()
    diff_after = res.features[h].mean() - res.features[~h].mean()
    diff_base = base[h].mean() - base[~h].mean()
    assert ((diff_after - diff_base).abs() / np.geomspace(1, 1e5, X.shape[1]) < 0.3).all()


def test_train_mode_fits_on_training_only():
    X, site, cov, c, _ = cohort()
    res = harmonize(X, site, c, "train", cov, ["histology"], ["age"])
    assert res.fitted_on == list(c.index[c == "train"])
    assert res.summary["fitted_on"] == "train cohort only"
    # Validation features changed: nothing fitted changes, training outputs are identical.
    X2 = X.copy()
    val = (c != "train").to_numpy()
    X2.loc[val] = X2.loc[val] * 3.0 + 7.0
    res2 = harmonize(X2, site, c, "train", cov, ["histology"], ["age"])
    for name in ("grand_mean_", "var_pooled_", "gamma_star_", "delta_star_", "beta_"):
        assert np.array_equal(getattr(res.model, name), getattr(res2.model, name)), name
    assert res.features.loc[~val].equals(res2.features.loc[~val])


def test_batch_absent_from_training_is_an_error():
    X, site, cov, c, _ = cohort()
    site = site.where(c == "train", "C")  # validation patients come from a third site
    with pytest.raises(HarmonizeError, match=r"batch 'C' \(patients P040, P041, P042\) was not in the data "
                                             r"ComBat was fitted on \(batches \['A', 'B'\]\); use mode 'transductive'"):
        harmonize(X, site, c, "train")
    res = harmonize(X, site, c, "transductive")
    assert res.summary["batches"] == {"A": 26, "B": 14, "C": 20}
    assert "transductive" in res.summary["fitted_on"]


def test_constant_in_batch_features_are_dropped_or_kept():
    X, site, cov, c, _ = cohort()
    X["flat_in_b"] = np.where(site == "B", 5.0, np.arange(len(X), dtype=float))
    X["flat"] = 2.0
    assert list(constant_in_batch(X, site)) == ["flat_in_b", "flat"]
    dropped = harmonize(X, site, c, "transductive")
    assert "flat_in_b" not in dropped.features and np.isfinite(dropped.features.to_numpy()).all()
    assert dropped.summary["constant_in_batch"] == {"action": "drop", "features": ["flat_in_b", "flat"]}
    kept = harmonize(X, site, c, "transductive", constant="keep")
    assert list(kept.features.columns) == list(X.columns)
    assert kept.features["flat_in_b"].equals(X["flat_in_b"]) and np.isfinite(kept.features.to_numpy()).all()


def test_guards_outcome_confounding_blanks_and_tiny_batches():
    X, site, cov, c, _ = cohort()
    cov["dm_event"] = 0
    with pytest.raises(HarmonizeError, match="covariate 'dm_event' is the outcome"):
        ComBat(["dm_event"]).fit(X, site, cov)
    cov["same_as_site"] = site
    with pytest.raises(HarmonizeError, match="confounded with the batch"):
        ComBat(["same_as_site"]).fit(X, site, cov)
    cov = cov.astype(str)  # as clinical tables are read: text
    cov.loc["P005", "age"] = ""
    with pytest.raises(HarmonizeError, match="patient P005: ComBat covariate 'age' is blank"):
        ComBat([], ["age"]).fit(X, site, cov)
    one = site.copy()
    one.iloc[1] = "Z"
    with pytest.raises(HarmonizeError, match=r"batch 'Z' has 1 patient \(P001\) among"):
        ComBat().fit(X, one)
    X.iloc[3, 2] = np.nan
    with pytest.raises(HarmonizeError, match="patient P003: missing feature values"):
        ComBat().fit(X, site)


def test_standardized_difference():
    X = pd.DataFrame({"a": [0.0, 2.0, 10.0, 12.0], "b": [1.0, 1.0, 1.0, 1.0]})
    b = pd.Series(["x", "x", "y", "y"])
    d = standardized_difference(X, b)
    assert d["a"] == pytest.approx(10.0 / np.sqrt(2.0)) and np.isnan(d["b"])


@pytest.mark.slow
def test_demo_institution_effect_shrinks_by_80_percent():
    """The demo cohort's planted institution effect (HU offset, iodine gain, noise of B's
    100-kV scanners): mean |standardized difference| between institutions over features,
    before and after ComBat, on every demo patient (Original image; first-order, GLCM and
    GLSZM features at native spacing, to keep the test quick)."""
    from ctith.demo.patients import simulate_cohort
    from ctith.demo.render import render_patient
    from ctith.radiomics import extraction as radiomics
    from conftest import REPO

    # The demo's generator at its former size (46 + 24 eligible patients plus ineligible
    # ones): the institution effect does not need the full cohort, and CI time does.
    specs, clinical = simulate_cohort("demo", 20240601, n_patients={"A": 46, "B": 24})
    params = radiomics.load_params(REPO / "workflow/radiomics/params.yaml", 25, None)
    params["imageType"] = {"Original": {}}
    params["featureClass"] = {"firstorder": None, "glcm": None, "glszm": None}
    rows = {}
    for spec in specs:
        images = render_patient(spec)
        rows[spec.patient_id] = radiomics.extract(images.venous, images.mask, params, spec.patient_id)[0]
    X = pd.DataFrame(rows).T
    institution = pd.Series({s.patient_id: s.institution for s in specs})
    res = harmonize(X, institution, pd.Series("train", index=X.index), "transductive",
                    clinical.set_index("patient_id"), ["histology"], [])
    s = res.summary
    print(f"mean |SMD| A vs B: {s['mean_abs_smd_before']:.3f} -> {s['mean_abs_smd_after']:.3f} "
          f"({100 * s['smd_reduction']:.1f}% less)")
    assert s["mean_abs_smd_before"] > 0.5
    assert s["smd_reduction"] >= 0.8


@pytest.mark.parametrize("categorical, continuous", [(["histology"], ["age"]), ([], [])])
def test_estimates_saved_as_json_transform_new_patients_bit_for_bit(categorical, continuous):
    """What a new patient is scored with: the fitted estimates written to JSON and read back
    harmonise exactly as the fitted model does, without the patients it was fitted on."""
    import json

    X, site, cov, c, _ = cohort()
    train = (c == "train").to_numpy()
    model = ComBat(categorical, continuous).fit(X[train], site[train], cov)
    saved = json.loads(json.dumps(model.to_dict()))
    assert "P000" not in json.dumps(saved)  # no patient, no feature value of theirs
    again = ComBat.from_dict(saved)
    new = X[~train]
    assert again.transform(new, site[~train], cov).equals(model.transform(new, site[~train], cov))


def test_unseen_batch_is_an_error_or_passes_unharmonised_with_a_warning():
    X, site, cov, c, _ = cohort()
    train = (c == "train").to_numpy()
    model = ComBat(["histology"]).fit(X[train], site[train], cov)
    site2 = site.copy()
    site2.iloc[-2:] = "C"  # two new patients from a scanner ComBat never saw
    with pytest.raises(HarmonizeError, match=r"batch 'C' \(patients P058, P059\) was not in the data"):
        model.transform(X[~train], site2[~train], cov)
    with pytest.warns(UserWarning, match=r"patients P058, P059 of batch\(es\) \['C'\].*pass unharmonised"):
        out = model.transform(X[~train], site2[~train], cov, unseen_batch="keep")
    assert out.loc[["P058", "P059"]].equals(X.loc[["P058", "P059"], out.columns])
    assert out.iloc[:-2].equals(model.transform(X[~train].iloc[:-2], site[~train].iloc[:-2], cov))
