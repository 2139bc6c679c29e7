"""ITH stage: the fast local-feature engine against pyradiomics, the score, habitats, CLI."""

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from ctith.cohort import ingest
from ctith.ith import habitats as ith, local_radiomics as lr
from ctith.ith.figures import MATCH_TRAITS, pick_matched_pair
from ctith.ith.score import ith_score
from ctith.ith.variants import guided_smooth_feature_maps, reduce_features, smooth_feature_maps, smoothing_sigma_px
from ctith.cli import main
from ctith.io import read_table

TOL = dict(rtol=1e-6, atol=1e-9)


def _ingested(image, mask, pid="P"):
    res = ingest.ingest(image, mask, pid)
    return sitk.GetArrayFromImage(res.image), sitk.GetArrayFromImage(res.mask), res.qc["axial_axis"]


def assert_matches_reference(slice_hu, slice_mask, pixels=None):
    """The fast engine on the whole slice against pyradiomics on ``pixels`` (a subset of
    the mask; default all): a pixel's features depend on its window only."""
    fast = ith.local_features(slice_hu, slice_mask)
    ref = lr.reference_local_features(slice_hu, slice_mask if pixels is None else pixels)
    assert list(fast.columns) == list(ref.columns) and (pixels is not None or fast.index.equals(ref.index))
    ok = np.isclose(fast.loc[ref.index].to_numpy(), ref.to_numpy(), **TOL)
    bad = [f"{c}: {int((~ok[:, i]).sum())} px" for i, c in enumerate(fast.columns) if not ok[:, i].all()]
    assert not bad, bad
    return fast


# --------------------------------------------------------------------------- engine


def test_feature_names_are_pyradiomics_own():
    ext = lr.reference_extractor()
    image = sitk.GetImageFromArray(np.arange(25, dtype=float).reshape(1, 5, 5) * 10)
    mask = sitk.GetImageFromArray(np.ones((1, 5, 5), np.uint8))
    assert list(ext.execute(image, mask)) == lr.feature_columns()
    assert len(lr.feature_columns()) == 93


@pytest.mark.parametrize("organ, pixels", [("kidney_left", 227), ("spleen", 487)])
def test_fast_engine_equals_pyradiomics_on_real_ct(real_ct, organ, pixels):
    img, msk, axis = _ingested(real_ct.image, real_ct.masks[organ], organ)
    crop, crop_mask, info = ith.tumour_slice(img, msk, axis)
    assert info["tumour_pixels"] == pixels
    fast = assert_matches_reference(crop, crop_mask)
    # Row-major order of the slice's tumour pixels, one row each.
    rows, cols = np.nonzero(crop_mask)
    assert np.array_equal(fast.index.get_level_values("row"), rows)
    assert np.array_equal(fast.index.get_level_values("col"), cols)


def test_fast_engine_equals_pyradiomics_on_demo_tumours(tiny_cohort_dir):
    samples = read_table(tiny_cohort_dir / "samples.tsv")
    truth = read_table(tiny_cohort_dir / "truth.tsv").set_index("patient_id")
    # three tumours with one, two and the most habitats
    rows = samples[samples["image"].str.endswith(".nii.gz")].copy()
    rows["n_habitats"] = [len(truth.loc[p, "habitats"].split(",")) for p in rows["patient_id"]]
    rows = rows.sort_values(["n_habitats", "patient_id"])
    picked = [rows.iloc[0], rows.iloc[len(rows) // 2], rows.iloc[-1]]
    rng = np.random.default_rng(0)
    for row in picked:
        img, msk, axis = _ingested(tiny_cohort_dir / row["image"], tiny_cohort_dir / row["mask"], row["patient_id"])
        crop, crop_mask, _ = ith.tumour_slice(img, msk, axis)
        # pyradiomics takes 5-15 ms a pixel: compare a seeded sample of the rim (windows
        # reaching past the tumour or the crop) and of the interior.
        rim = crop_mask & ~ndimage.binary_erosion(crop_mask, np.ones((3, 3)), iterations=2)
        subset = np.zeros_like(crop_mask, dtype=bool)
        for part in (np.flatnonzero(rim), np.flatnonzero(crop_mask & ~rim)):
            subset.flat[rng.choice(part, min(200, part.size), replace=False)] = True
        assert subset.sum() == 400
        assert_matches_reference(crop, crop_mask, subset)


def test_fast_engine_equals_pyradiomics_on_hard_windows():
    rng = np.random.default_rng(3)
    windows = np.concatenate([
        np.full((2, 25), 40.0),                                    # flat
        rng.choice([-50.0, -25.0, 0.0, 25.0, 50.0], (20, 25)),     # values on bin edges
        rng.normal(0, 400, (20, 25)).round(),                      # air, fat, bone: many levels
        rng.normal(30, 10, (20, 25)),                              # non-integer HU
        np.tile([0.0, 30.0], 13)[None, :25].repeat(2, 0),          # checkerboard of two levels
        np.where(np.arange(25) == 12, 100.0, 0.0)[None],           # one level in one pixel
        np.where(np.arange(25) == 4, 100.0, 0.0)[None],            # ... in a corner (absent along a diagonal)
    ])
    fast = lr.window_features(windows)
    ref = lr.reference_window_features(windows)
    ok = np.isclose(fast, ref, **TOL)
    names = lr.feature_columns()
    assert ok.all(), [names[i] for i in np.flatnonzero(~ok.all(0))]


def test_the_pass_records_its_helpers_sources():
    """numba's cache checks only the compiled function's own file: a change to a helper in
    ctith/ith/kernels must also change local_radiomics.py, or a stale pass is loaded."""
    assert lr.KERNELS_SHA256 == lr.kernels_sha256(), (
        f"ctith/ith/kernels changed: set KERNELS_SHA256 = \"{lr.kernels_sha256()}\" in local_radiomics.py")


def test_a_stale_record_stops_the_engine(monkeypatch):
    monkeypatch.setattr(lr, "KERNELS_SHA256", "0" * 64)
    lr._check_kernels_recorded.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=f'KERNELS_SHA256 = "{lr.kernels_sha256()}"'):
            lr.window_features(np.zeros((1, 25)))
    finally:
        lr._check_kernels_recorded.cache_clear()


def test_each_kernel_module_calls_only_its_own_functions():
    """A cached helper holds the compiled code of what it calls and the globals it reads;
    from another file, a change to them would not reach the helper's cache."""
    kernels = Path(lr.__file__).parent / "kernels"
    allowed = {"__future__", "numpy", "numba"}
    for path in sorted(kernels.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= allowed, (path.name, ast.unparse(node))
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module in allowed, (path.name, ast.unparse(node))


def test_feature_class_subset_and_bad_input():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 50, (10, 25))
    sub = lr.window_features(w, classes=("ngtdm", "firstorder"))
    full = pd.DataFrame(lr.window_features(w), columns=lr.feature_columns())
    assert np.array_equal(sub, full[lr.feature_columns(("ngtdm", "firstorder"))].to_numpy())
    with pytest.raises(ValueError, match="unknown feature classes"):
        lr.window_features(w, classes=("shape",))
    with pytest.raises(ValueError, match="NaN"):
        lr.window_features(np.full((1, 25), np.nan))


# --------------------------------------------------------------------------- score


def bordered(core: np.ndarray, pad: int = 2) -> np.ndarray:
    """A label map with a background border, as the pipeline's cropped maps have."""
    return np.pad(core, pad)


def test_one_region_per_cluster_scores_zero():
    core = np.ones((6, 6), dtype=int)
    core[:, 3:] = 2
    assert ith_score(bordered(core)) == 0.0
    assert ith_score(bordered(np.ones((4, 4), dtype=int))) == 0.0


def test_checkerboard_is_one_region_per_colour():
    core = (np.indices((8, 8)).sum(0) % 2) + 1
    assert ith_score(bordered(core)) == 0.0
    # with 4-connectivity every pixel is its own region: all ignored, score 1
    assert ith_score(bordered(core), connectivity=4) == 1.0


@pytest.mark.parametrize("n", [2, 4, 6, 10])
def test_alternating_columns(n):
    core = (np.arange(n)[None, :].repeat(n, 0) % 2) + 1
    assert ith_score(bordered(core)) == pytest.approx(1 - 4 / n ** 2, abs=1e-15)


def test_single_pixel_regions_are_ignored():
    core = np.ones((6, 6), dtype=int)
    core[0, 0] = core[5, 5] = 2  # two isolated pixels of cluster 2
    # cluster 1: one region of 34 px; cluster 2: nothing kept -> 1 - 34/36
    assert ith_score(bordered(core)) == pytest.approx(1 - 34 / 36)
    assert ith_score(bordered(core), min_region_pixels=0) == pytest.approx(1 - (34 + 1 / 2) / 36)
    with pytest.raises(ValueError, match="no tumour"):
        ith_score(np.zeros((4, 4), dtype=int))


# --------------------------------------------------------------------------- patient


def test_habitats_are_reproducible_on_real_ct(real_ct):
    img, msk, axis = _ingested(real_ct.image, real_ct.masks["kidney_left"])
    params = ith.ITHParams(seed=11)
    a = ith.run_ith(img, msk, axis, params, "kidney")
    b = ith.run_ith(img, msk, axis, params, "kidney")
    assert sorted(a.maps) == list(range(2, 9))
    for k in a.maps:
        assert np.array_equal(a.maps[k], b.maps[k]) and a.scores[k] == b.scores[k]
        assert set(np.unique(a.maps[k])) == set(range(k + 1))  # 0 outside, 1..K inside
        assert np.array_equal(a.maps[k] > 0, a.mask)
        assert 0.0 <= a.scores[k] <= 1.0
    assert a.info["slice_index"] == 92 and a.info["tumour_pixels"] == 227


def test_elkan_kmeans_gives_lloyds_labels(real_ct, tiny_cohort_dir):
    """The stage runs Elkan's k-means for speed; it must label every pixel as the default
    (Lloyd) algorithm does, on real CT and on a demo tumour."""
    from sklearn.cluster import KMeans

    slices = []
    img, msk, axis = _ingested(real_ct.image, real_ct.masks["liver"])
    slices.append(ith.tumour_slice(img, msk, axis)[:2])
    samples = read_table(tiny_cohort_dir / "samples.tsv")
    row = samples[samples["image"].str.endswith(".nii.gz")].iloc[1]
    img, msk, axis = _ingested(tiny_cohort_dir / row["image"], tiny_cohort_dir / row["mask"])
    slices.append(ith.tumour_slice(img, msk, axis)[:2])
    for crop, crop_mask in slices:
        scaled = ith.scale_features(ith.local_features(crop, crop_mask).to_numpy())
        for k in range(2, 9):
            lloyd = KMeans(n_clusters=k, n_init=10, random_state=42, algorithm="lloyd").fit_predict(scaled)
            assert np.array_equal(ith.cluster_habitats(scaled, k, seed=42, n_init=10), lloyd), k


def test_tumour_at_image_border_uses_image_values():
    img = np.arange(400, dtype=float).reshape(1, 20, 20)
    msk = np.zeros_like(img, dtype=bool)
    msk[0, 0:6, 0:7] = True
    crop, crop_mask, info = ith.tumour_slice(img, msk, 0, padding=2)
    assert crop.shape == (10, 11) and info["touches_border"]
    assert crop[0, 0] == img[0, 0, 0] and crop[2, 2] == img[0, 0, 0] and crop[3, 2] == img[0, 1, 0]
    assert crop_mask.sum() == 42


def small_tumour(pixels_side):
    rng = np.random.default_rng(0)
    img = rng.normal(40, 30, (3, 30, 30)).round()
    msk = np.zeros(img.shape, dtype=bool)
    msk[1, 10:10 + pixels_side, 10:10 + pixels_side] = True
    return img, msk


def test_too_small_tumour_names_the_patient():
    img, msk = small_tumour(2)  # 2 x 2: smaller than the 5 x 5 window
    with pytest.raises(ith.TooSmallError, match=r"patient P9: .*2 x 2 pixels, smaller than the 5 x 5"):
        ith.run_ith(img, msk, 0, ith.ITHParams(), "P9", "p9_mask.nii.gz")
    img, msk = small_tumour(5)  # 25 pixels, fine for K <= 8; ask for K = 30
    with pytest.raises(ith.TooSmallError, match=r"patient P9: .*fewer than K = 30"):
        ith.run_ith(img, msk, 0, ith.ITHParams(clusters=(2, 30)), "P9")


def test_too_small_tumour_can_give_nan():
    img, msk = small_tumour(5)
    params = ith.ITHParams(clusters=(2, 30), on_small_tumour="nan")
    with pytest.warns(UserWarning, match="patient P9: .*K = 30"):
        res = ith.run_ith(img, msk, 0, params, "P9")
    assert np.isfinite(res.scores[2]) and np.isnan(res.scores[30]) and 30 not in res.maps


# --------------------------------------------------------------------------- variants


def test_published_method_is_the_default():
    assert ith.ITHParams().is_published
    assert not ith.ITHParams(feature_smoothing_fraction=0.08).is_published
    assert not ith.ITHParams(pca_components=0.95).is_published
    with pytest.raises(ValueError, match="not both"):
        ith.ITHParams(feature_smoothing_mm=4.0, feature_smoothing_fraction=0.08)


def test_published_scores_on_real_ct_are_the_measured_ones(real_ct):
    """Issue 13's measurement of the published method on the real liver, to 3 decimals:
    the variants' code path leaves the default untouched."""
    img, msk, axis = _ingested(real_ct.image, real_ct.masks["liver"])
    res = ith.run_ith(img, msk, axis, ith.ITHParams(clusters=(2, 4, 5)), "liver", spacing=(3.0, 3.0))
    assert [round(res.scores[k], 2) for k in (2, 4, 5)] == [0.16, 0.94, 0.93]


def test_feature_smoothing_stays_inside_the_tumour():
    mask = np.zeros((12, 14), dtype=bool)
    mask[2:10, 3:12] = True
    rng = np.random.default_rng(1)
    const = np.full((mask.sum(), 2), 0.25)
    assert np.allclose(smooth_feature_maps(const, mask, 2.0), 0.25)  # no zeros from outside
    noisy = rng.normal(size=(mask.sum(), 3))
    smooth = smooth_feature_maps(noisy, mask, 1.5)
    assert smooth.shape == noisy.shape
    assert np.all(smooth.std(axis=0) < 0.6 * noisy.std(axis=0))
    assert np.allclose(smooth.mean(axis=0), noisy.mean(axis=0), atol=0.15)
    # Pixels outside the tumour do not count: changing them changes nothing.
    maps = np.zeros((3,) + mask.shape)
    maps[:, mask] = noisy.T
    num = ndimage.gaussian_filter(maps, (0, 1.5, 1.5), mode="constant")
    den = ndimage.gaussian_filter(mask.astype(float), 1.5, mode="constant")
    assert np.allclose(smooth, (num[:, mask] / den[mask]).T)


def test_edge_preserving_smoothing_keeps_tissue_boundaries():
    """Two tissues 100 HU apart, features noisy on both: the CT-guided smoothing removes the
    noise as the Gaussian does but keeps the step between the tissues; the Gaussian blurs it."""
    rng = np.random.default_rng(2)
    mask = np.zeros((30, 40), dtype=bool)
    mask[3:27, 3:37] = True
    left = np.zeros(mask.shape, dtype=bool)
    left[:, :20] = True
    hu = np.where(left, 20.0, 120.0) + rng.normal(0, 10, mask.shape)
    step = np.where(left, 0.0, 1.0)[mask]
    feats = np.stack([step + rng.normal(0, 0.3, step.size), 0.5 * step + rng.normal(0, 0.3, step.size)], axis=1)
    sigma = (3.0, 3.0)
    guided = guided_smooth_feature_maps(feats, mask, sigma, hu, 30.0)
    gauss = smooth_feature_maps(feats, mask, sigma)
    cols = np.nonzero(mask)[1]
    edge = (cols == 19) | (cols == 20)  # the two columns either side of the boundary
    expected = np.stack([step, 0.5 * step], axis=1)
    assert np.abs(guided - expected)[edge].mean() < 0.15
    assert np.abs(gauss - expected)[edge].mean() > 0.25
    far = (cols < 12) | (cols > 28)
    assert (guided - expected)[far].std() < 0.4 * (feats - expected)[far].std()
    const = np.full((mask.sum(), 1), 0.7)
    assert np.allclose(guided_smooth_feature_maps(const, mask, (9.0, 9.0), hu, 30.0), 0.7)  # wide: sparse offsets


def test_smoothing_sigma_in_mm_or_relative_to_the_tumour():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 5:25] = True  # 400 px
    assert smoothing_sigma_px(mask, (0.5, 0.5), ith.ITHParams()) is None
    assert smoothing_sigma_px(mask, (0.5, 0.8), ith.ITHParams(feature_smoothing_mm=4.0)) == (8.0, 5.0)
    # 400 px of 0.25 mm2: 100 mm2, the circle's diameter 11.28 mm; 10% of it is 1.128 mm
    sig = smoothing_sigma_px(mask, (0.5, 0.5), ith.ITHParams(feature_smoothing_fraction=0.1))
    assert sig == pytest.approx((2 * np.sqrt(100 / np.pi) * 0.1 / 0.5,) * 2)
    # relative: the same tumour at another pixel size gets the same sigma in pixels
    assert smoothing_sigma_px(mask, (0.9, 0.9), ith.ITHParams(feature_smoothing_fraction=0.1)) == \
        pytest.approx(sig)


def test_pca_keeps_the_requested_components():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 2))
    scaled = np.hstack([base, base @ rng.normal(size=(2, 6)) + 1e-3 * rng.normal(size=(300, 6))])
    assert reduce_features(scaled, 3).shape == (300, 3)
    assert reduce_features(scaled, 0.95).shape == (300, 2)


@pytest.mark.parametrize("organ", ["liver", "spleen"])
def test_smoothing_variant_lowers_noise_scores_on_homogeneous_real_organs(real_ct, organ):
    """A homogeneous organ should score low; on real CT the published score is high at
    K >= 3 because k-means splits the noise. The best variant takes most of it away."""
    img, msk, axis = _ingested(real_ct.image, real_ct.masks[organ])
    ks = (3, 4, 5)
    default = ith.run_ith(img, msk, axis, ith.ITHParams(clusters=ks), organ, spacing=(3.0, 3.0))
    best = ith.ITHParams(clusters=ks, feature_smoothing_fraction=0.06, feature_smoothing_edge_hu=30.0)
    variant = ith.run_ith(img, msk, axis, best, organ, spacing=(3.0, 3.0))
    assert np.mean([default.scores[k] for k in ks]) > 0.7
    assert np.mean([variant.scores[k] for k in ks]) < 0.6 * np.mean([default.scores[k] for k in ks])
    assert variant.info["feature_smoothing_sigma_px"][0] > 1.0
    # the features themselves are the published ones: the same maps, only clustered differently
    assert np.array_equal(variant.mask, default.mask) and np.array_equal(variant.image, default.image)


# --------------------------------------------------------------------------- CLI


def test_cli_ith_and_cohort(real_ct, tmp_path, capsys):
    records = []
    for organ in ("kidney_left", "spleen"):
        d = tmp_path / organ
        assert main(["ingest", "--image", str(real_ct.image), "--mask", str(real_ct.masks[organ]),
                     "--out", str(d)]) == 0
        assert main(["ith", "--image", str(d / "image.nii.gz"), "--mask", str(d / "mask.nii.gz"),
                     "--out-dir", str(d / "ith"), "--seed", "5"]) == 0
        rec = json.loads((d / "ith" / "scores.json").read_text())
        assert rec["patient_id"] == organ and rec["slice_rule"].startswith("axial slice with the most")
        assert set(rec["k"]) == {str(k) for k in range(2, 9)}
        k3 = rec["k"]["3"]
        assert sum(k3["cluster_sizes"]) == rec["tumour_pixels"]
        maps = np.load(d / "ith" / "label_maps.npz")
        assert np.array_equal(maps["k3"] > 0, maps["mask"])
        assert (d / "ith" / "habitats.png").stat().st_size > 10_000
        records.append(d / "ith" / "scores.json")
    assert main(["ith-cohort", "--scores", *map(str, records), "--out-table", str(tmp_path / "ith_scores.tsv")]) == 0
    table = pd.read_csv(tmp_path / "ith_scores.tsv", sep="\t")
    assert list(table["patient_id"]) == ["kidney_left", "spleen"]
    assert [c for c in table.columns if c.startswith("ith_k")] == [f"ith_k{k}" for k in range(2, 9)]
    # Figure S6 from the ITH model's predictions and the clinical table (the user's column names).
    (tmp_path / "predictions.tsv").write_text("patient_id\tcohort\tprobability\tpredicted\n"
                                              "kidney_left\texternal_validation\t0.2\t0\n"
                                              "spleen\texternal_validation\t0.8\t1\n")
    (tmp_path / "clinical.tsv").write_text("pid\tdm\tmonths\tage\tsex\thistology\tt_stage\tn_stage\n"
                                           "kidney_left\t0\t50\t58\tF\tRLPS\tT3\tN0\n"
                                           "spleen\t1\t8\t54\tF\tRLPS\tT3\tN0\n")
    columns = json.dumps({"patient_id": "pid", "dm_event": "dm", "dm_time_months": "months"})
    assert main(["figure-s6", "--predictions", str(tmp_path / "predictions.tsv"), "--scores", *map(str, records),
                 "--clinical", str(tmp_path / "clinical.tsv"), "--clinical-columns", columns,
                 "--out-figure", str(tmp_path / "s6.png"), "--out-pair", str(tmp_path / "pair.json")]) == 0
    assert "Figure S6: kidney_left (A) vs spleen (B)" in capsys.readouterr().out
    pair = json.loads((tmp_path / "pair.json").read_text())
    assert pair["traits"] == list(MATCH_TRAITS) and pair["pool"] == "validation cohorts"
    assert (tmp_path / "s6.png").stat().st_size > 10_000


def test_cli_ith_variant_options(real_ct, tmp_path):
    d = tmp_path / "spleen"
    assert main(["ingest", "--image", str(real_ct.image), "--mask", str(real_ct.masks["spleen"]),
                 "--out", str(d)]) == 0
    assert main(["ith", "--image", str(d / "image.nii.gz"), "--mask", str(d / "mask.nii.gz"),
                 "--out-dir", str(d / "ith"), "--clusters", "2", "3", "--feature-smoothing-fraction", "0.08",
                 "--feature-smoothing-edge-hu", "30", "--pca-components", "0.95"]) == 0
    rec = json.loads((d / "ith" / "scores.json").read_text())
    assert rec["params"]["feature_smoothing_fraction"] == 0.08 and rec["params"]["pca_components"] == 0.95
    assert rec["params"]["feature_smoothing_edge_hu"] == 30
    assert rec["pixel_spacing_mm"] == [3.0, 3.0] and rec["pca_components"] >= 1
    # sigma: 8% of the diameter of the circle of the slice's area, in 3 mm pixels
    sigma = 0.08 * 2 * np.sqrt(rec["tumour_pixels"] * 9.0 / np.pi) / 3.0
    assert rec["feature_smoothing_sigma_px"] == pytest.approx([sigma, sigma], abs=1e-4)
    with pytest.raises(SystemExit):  # one smoothing at a time
        main(["ith", "--image", "x", "--mask", "y", "--out-dir", "z", "--feature-smoothing-mm", "3",
              "--feature-smoothing-fraction", "0.1"])


def test_cli_small_tumour_is_one_line(tmp_path, capsys):
    img, msk = small_tumour(2)
    for name, arr in (("image", img.astype(np.int16)), ("mask", msk.astype(np.uint8))):
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / f"{name}.nii.gz"))
    rc = main(["ith", "--image", str(tmp_path / "image.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"),
               "--out-dir", str(tmp_path / "P3" / "ith")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("TooSmallError: patient P3: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "P3" / "ith").exists() or not any((tmp_path / "P3" / "ith").iterdir())


def test_params_from_config_section_take_the_run_seed_and_ignore_figure_keys():
    import yaml

    from conftest import REPO
    from ctith.ith.habitats import ITHParams

    section = yaml.safe_load((REPO / "config.yaml").read_text())["ith"]
    p = ITHParams.from_config(section, seed=7)
    assert p == ITHParams(seed=7)  # config.yaml's ith: section is the published method's defaults
    assert p.is_published and isinstance(p.clusters, tuple) and isinstance(p.feature_classes, tuple)
    q = ITHParams.from_config({**section, "feature_smoothing_fraction": 0.06}, seed=7, clusters=(2, 3))
    assert q.clusters == (2, 3) and not q.is_published


def _pair_inputs(rows):
    """rows: (id, cohort, probability, predicted, dm, age, histology, sex, t, n)."""
    cols = ["patient_id", "cohort", "probability", "predicted", "dm_event", "age", "histology", "sex", "t_stage",
            "n_stage"]
    df = pd.DataFrame(rows, columns=cols)
    return df[cols[:4]], df.set_index("patient_id")[cols[4:]]


def test_figure_s6_pair_is_matched_as_the_paper_picks_it():
    rows = [
        ("T1", "train", 0.05, 0, 0, 56, "RLPS", "F", "T3", "N0"),  # training: in-sample, second choice
        ("T2", "train", 0.95, 1, 1, 57, "RLPS", "F", "T3", "N0"),
        ("V1", "external_validation", 0.20, 0, 0, 58, "RLPS", "F", "T3", "N0"),  # the paper's A: 58 y
        ("V2", "external_validation", 0.70, 1, 1, 54, "RLPS", "F", "T3", "N0"),  # the paper's B: 54 y
        ("V3", "internal_validation", 0.90, 1, 1, 55, "RLPS", "F", "T3", "N0"),  # closer in age than V2
        ("V4", "internal_validation", 0.95, 1, 1, 58, "RLPS", "M", "T3", "N0"),  # other sex
        ("V5", "external_validation", 0.99, 1, 1, 58, "RLMS", "F", "T3", "N0"),  # other histology
        ("V6", "external_validation", 0.60, 1, 0, 58, "RLPS", "F", "T3", "N0"),  # high risk, no DM
        ("V7", "external_validation", 0.15, 0, 1, 58, "RLPS", "F", "T3", "N0"),  # low risk, DM
    ]
    predictions, clinical = _pair_inputs(rows)
    pick = pick_matched_pair(predictions, clinical, max_age_gap=5)
    assert (pick["low"], pick["high"]) == ("V1", "V3")  # 3 years apart beats 4
    assert pick["pool"] == "validation cohorts" and pick["traits"] == list(MATCH_TRAITS)
    assert pick["pairs"] == 2 and "same histology, sex, T stage, N stage, ages within 5 years" in pick["how"]
    # A tighter age limit leaves no validation pair: the training pair, then dropped traits.
    pick = pick_matched_pair(predictions, clinical, max_age_gap=1)
    assert (pick["low"], pick["high"], pick["pool"]) == ("T1", "T2", "all cohorts")
    pick = pick_matched_pair(predictions[~predictions["patient_id"].isin(["T1", "T2"])], clinical, 0)
    assert (pick["low"], pick["high"]) == ("V1", "V4") and pick["traits"] == ["histology"]
    # Nobody predicted high risk with DM: the extremes by probability stand in, and it says so.
    rows_none = [r if r[4] == 0 else (*r[:3], 0, *r[4:]) for r in rows]
    predictions, clinical = _pair_inputs(rows_none)
    pick = pick_matched_pair(predictions, clinical, max_age_gap=5)
    assert "highest-probability patient with DM" in pick["how"]
    assert (pick["low"], pick["high"]) == ("T1", "V5")


# --------------------------------------------------------------------------- whole tumour


def test_3d_score_on_hand_built_maps():
    # A 2 x 2 x 2 checkerboard: 26-connectivity joins each colour through edges and corners
    # (one region of 4 each: score 0); through faces (6) every voxel is alone: 4 regions of
    # 1 per colour, so 1 - (1/4 + 1/4) / 8 = 15/16 with no region ignored.
    board = (np.indices((2, 2, 2)).sum(0) % 2) + 1
    assert ith_score(np.pad(board, 1), connectivity=26) == 0.0
    assert ith_score(np.pad(board, 1), min_region_pixels=0, connectivity=6) == pytest.approx(15 / 16)
    # Two slices of a 3 x 3 block of 1 with a column of 2 through the middle of both and a
    # 2 alone in a corner of the first. Through faces: cluster 1 is one region of 15 (a 2D
    # score of either slice would not see it joined), cluster 2 a column of 2 and a single
    # voxel, ignored at min_region_pixels 1: 1 - (15 + 2) / 18; at 0, 1 - (15 + 2 / 2) / 18.
    vol = np.ones((2, 3, 3), dtype=int)
    vol[:, 1, 1] = 2
    vol[0, 0, 0] = 2
    assert ith_score(np.pad(vol, 1), connectivity=6) == pytest.approx(1 - 17 / 18)
    assert ith_score(np.pad(vol, 1), min_region_pixels=0, connectivity=6) == pytest.approx(1 - 16 / 18)
    # 26-connectivity joins the corner voxel to the column diagonally: one region of 3.
    assert ith_score(np.pad(vol, 1), min_region_pixels=0, connectivity=26) == pytest.approx(1 - 18 / 18)
    with pytest.raises(ValueError, match="connectivity 8 does not apply to a 3D"):
        ith_score(np.pad(vol, 1), connectivity=8)
    with pytest.raises(ValueError, match="connectivity 26 does not apply to a 2D"):
        ith_score(vol[0], connectivity=26)


@pytest.mark.parametrize("organ", ["kidney_left", "spleen"])
def test_volume_features_equal_pyradiomics_slice_by_slice(real_ct, organ):
    """Every tumour slice's window features against pyradiomics, a seeded sample of pixels
    on each slice (pyradiomics takes 5-15 ms a window), and the largest slice's against
    the published method's (the same windows: equal to the last bit)."""
    img, msk, axis = _ingested(real_ct.image, real_ct.masks[organ], organ)
    vol, vmask, info = ith.tumour_volume(img, msk, axis)
    assert info["tumour_voxels"] == int(msk.sum()) == int(vmask.sum())
    assert info["tumour_slices"] == vmask.shape[0] == int(np.moveaxis(msk, axis, 0).any(axis=(1, 2)).sum())
    features = ith.volume_features(vol, vmask)
    assert np.array_equal(np.stack(features.index.to_frame().to_numpy().T), np.stack(np.nonzero(vmask)))
    rng = np.random.default_rng(1)
    for z in range(vmask.shape[0]):
        pixels = np.zeros_like(vmask[z])
        pixels.flat[rng.choice(np.flatnonzero(vmask[z]), min(6, int(vmask[z].sum())), replace=False)] = True
        ref = lr.reference_local_features(vol[z], pixels)
        fast = features.xs(z, level="slice").loc[ref.index]
        assert np.allclose(fast.to_numpy(), ref.to_numpy(), **TOL), f"slice {z}"
    crop, crop_mask, s_info = ith.tumour_slice(img, msk, axis)
    assert s_info["slice_index"] == info["slice_index"] and s_info["tumour_pixels"] == info["tumour_pixels"]
    published = ith.local_features(crop, crop_mask)
    z = info["slice_index"] - info["slices"][0]
    shift = np.subtract(s_info["crop_origin"], info["crop_origin"])
    mine = features.xs(z, level="slice")
    assert np.array_equal(mine.index.get_level_values("row"), published.index.get_level_values("row") + shift[0])
    assert np.array_equal(mine.index.get_level_values("col"), published.index.get_level_values("col") + shift[1])
    assert np.array_equal(mine.to_numpy(), published.to_numpy())


def test_whole_tumour_habitats_on_real_ct(real_ct):
    img, msk, axis = _ingested(real_ct.image, real_ct.masks["kidney_left"])
    params = ith.ITHParams(clusters=(2, 4), slices="all", seed=3)
    res = ith.run_ith(img, msk, axis, params, "kidney")
    b = ith.run_ith(img, msk, axis, params, "kidney")
    vmask = res.volume_mask
    assert vmask.sum() == msk.sum() == res.info["tumour_voxels"] == 5144
    view = res.info["slice_index"] - res.info["slices"][0]
    assert res.info["slice_index"] == 92 and np.array_equal(res.mask, vmask[view])  # the published slice
    for k in params.clusters:
        v = res.volumes[k]
        assert np.array_equal(v, b.volumes[k]) and res.scores[k] == b.scores[k]  # seeded
        assert np.array_equal(v > 0, vmask) and set(np.unique(v[vmask])) == set(range(1, k + 1))
        assert np.array_equal(res.maps[k], v[view])
        assert res.scores[k] == ith_score(v, 1, 26) and 0.0 <= res.scores[k] < 1.0
    faces = ith.run_ith(img, msk, axis, ith.ITHParams(clusters=(2, 4), slices="all", seed=3, connectivity_3d=6))
    assert [np.array_equal(faces.volumes[k], res.volumes[k]) for k in (2, 4)] == [True, True]  # same habitats
    assert faces.scores[4] == ith_score(res.volumes[4], 1, 6)
    record = ith.summary(res, params, "kidney")
    assert sum(record["k"]["4"]["cluster_sizes"]) == 5144 and record["params"]["slices"] == "all"
    with pytest.raises(ValueError, match="slices must be one of"):
        ith.ITHParams(slices="middle")


def test_cli_whole_tumour(real_ct, tmp_path):
    d = tmp_path / "spleen"
    assert main(["ingest", "--image", str(real_ct.image), "--mask", str(real_ct.masks["spleen"]),
                 "--out", str(d)]) == 0
    assert main(["ith", "--image", str(d / "image.nii.gz"), "--mask", str(d / "mask.nii.gz"), "--out-dir",
                 str(d / "ith"), "--clusters", "2", "3", "--slices", "all", "--connectivity-3d", "6"]) == 0
    rec = json.loads((d / "ith" / "scores.json").read_text())
    assert rec["params"]["slices"] == "all" and rec["params"]["connectivity_3d"] == 6
    assert rec["tumour_voxels"] == 9677 and sum(rec["k"]["3"]["cluster_sizes"]) == 9677
    maps = np.load(d / "ith" / "label_maps.npz")
    assert np.array_equal(maps["k3_volume"] > 0, maps["volume_mask"]) and np.array_equal(maps["k3"] > 0, maps["mask"])
    assert rec["k"]["3"]["ith_score"] == pytest.approx(ith_score(maps["k3_volume"], 1, 6))
