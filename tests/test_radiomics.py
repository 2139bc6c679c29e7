"""C-radiomics extraction: the project's parameter file through pyradiomics, per patient and reader."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import REPO
from ctith import cli
from ctith.radiomics import extraction as radiomics
from ctith.errors import InputError
from ctith.io import read_feature_table, read_json

PARAMS = REPO / "workflow" / "radiomics" / "params.yaml"
IMAGE_TYPES = ["log-sigma-1-0-mm-3D", "log-sigma-3-0-mm-3D", "log-sigma-5-0-mm-3D", "original",
               "wavelet-HHH", "wavelet-HHL", "wavelet-HLH", "wavelet-HLL", "wavelet-LHH", "wavelet-LHL",
               "wavelet-LLH", "wavelet-LLL"]


@pytest.fixture(scope="module")
def kidney(real_ct):
    params = radiomics.load_params(PARAMS, bin_width=25, resampled_spacing=[1.0, 1.0, 1.0])
    image = sitk.ReadImage(str(real_ct.image))
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    return radiomics.extract(image, mask, params, "REAL", str(real_ct.masks["kidney_left"]))


def test_config_overrides_the_parameter_file():
    p = radiomics.load_params(PARAMS, bin_width=10, resampled_spacing=[0.8, 0.8, 2.0])
    ex = radiomics.make_extractor(p)
    assert ex.settings["binWidth"] == 10.0
    assert ex.settings["resampledPixelSpacing"] == [0.8, 0.8, 2.0]
    assert set(ex.enabledImagetypes) == {"Original", "Wavelet", "LoG"}
    assert radiomics.make_extractor(radiomics.load_params(PARAMS)).settings["resampledPixelSpacing"] is None


def test_real_ct_kidney_features(kidney):
    features, diagnostics = kidney
    # 14 shape features + 93 intensity/texture features for each of 12 image types.
    assert len(features) == 14 + 93 * 12
    assert sorted({k.split("_")[0] for k in features.index}) == IMAGE_TYPES
    assert np.isfinite(features).all()
    # 5,144 voxels of 3 mm: 138.9 ml, kept by the nearest-neighbour mask resampling to 1 mm.
    assert features["original_shape_VoxelVolume"] == pytest.approx(5144 * 27.0)
    assert features["original_shape_MeshVolume"] == pytest.approx(138_817, rel=1e-3)
    assert diagnostics["Image-interpolated_Spacing"] == [1.0, 1.0, 1.0]
    assert diagnostics["Mask-original_VoxelNum"] == 5144
    assert diagnostics["Configuration_Settings"]["binWidth"] == 25.0


def test_bin_edges_from_extremes_equal_pyradiomics():
    from radiomics import imageoperations

    fast = radiomics._bin_edges_from_extremes(imageoperations.getBinEdges)
    rng = np.random.default_rng(0)
    cases = [rng.normal(40, 60, 5000), rng.integers(-1000, 400, 3000).astype(np.float32),
             np.full(50, 50.0), np.full(50, 37.0), np.array([54.0, 166.0, 100.0]), np.array([-25.0, 0.0, 75.0])]
    for values in cases:
        for kwargs in ({"binWidth": 25}, {"binWidth": 10.0}, {"binCount": 16}):
            assert np.array_equal(fast(values, **kwargs), imageoperations.getBinEdges(values, **kwargs))
    with_nan = np.array([5.0, np.nan, 80.0])  # the library's element-wise answer, not numpy's NaN
    assert np.array_equal(fast(with_nan, binWidth=25), imageoperations.getBinEdges(with_nan, binWidth=25))


def test_extraction_equals_pyradiomics_alone(real_ct, kidney):
    # The bin-edge shortcut leaves every one of the 1,130 features bit for bit as pyradiomics gives it.
    params = radiomics.load_params(PARAMS, bin_width=25, resampled_spacing=[1.0, 1.0, 1.0])
    image = sitk.ReadImage(str(real_ct.image))
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    result = radiomics.make_extractor(params).execute(image, mask, label=1)
    library = pd.Series({k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")})
    features, _ = kidney
    assert list(features.index) == list(library.index)
    assert np.array_equal(features.to_numpy(), library.to_numpy())


def test_native_spacing_firstorder_matches_numpy(real_ct):
    """Without resampling, the first-order mean is the mean HU of the mask's voxels."""
    image = sitk.ReadImage(str(real_ct.image))
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    params = radiomics.load_params(PARAMS, bin_width=25, resampled_spacing=None)
    params["imageType"] = {"Original": {}}
    params["featureClass"] = {"firstorder": None}
    features, _ = radiomics.extract(image, mask, params, "REAL")
    hu = sitk.GetArrayFromImage(image)[sitk.GetArrayFromImage(mask) > 0]
    assert features["original_firstorder_Mean"] == pytest.approx(hu.mean())
    assert features["original_firstorder_Median"] == pytest.approx(np.median(hu))
    assert features["original_firstorder_Maximum"] == hu.max()


def test_too_small_mask_names_patient_and_file(real_ct, tmp_path):
    image = sitk.ReadImage(str(real_ct.image))
    arr = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
    arr[50, 40, 40] = 1
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(image)
    params = radiomics.load_params(PARAMS, 25, None)
    with pytest.raises(InputError, match=r"^patient P9: pyradiomics cannot extract features from mask 'm\.nii\.gz'"):
        radiomics.extract(image, mask, params, "P9", "m.nii.gz")


def test_reader2_mask_is_brought_onto_the_image_grid(real_ct, tmp_path):
    image = sitk.ReadImage(str(real_ct.image))
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    stored = sitk.DICOMOrient(mask, "RAI")  # same voxels, other storage order
    path = tmp_path / "r2.nii.gz"
    sitk.WriteImage(stored, str(path))
    back = radiomics.reader2_mask_on_image(path, image, "P1")
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))

    shifted = sitk.Image(mask)
    shifted.SetOrigin(tuple(np.add(mask.GetOrigin(), (0.0, 0.0, 6.0))))
    sitk.WriteImage(shifted, str(path))
    with pytest.raises(InputError, match=r"^patient P1: mask '.*r2\.nii\.gz' has origin .* but image 'img' has"):
        radiomics.reader2_mask_on_image(path, image, "P1", image_path="img")


def test_cli_per_patient_and_cohort_table(tiny_cohort, tmp_path):
    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    rows = samples[(samples["mask_reader2"] != "") & samples["image"].str.endswith(".nii.gz")].head(2)
    out = []
    for r in rows.itertuples():
        for reader, m in ((1, tiny_cohort / r.mask), (2, tiny_cohort / r.mask_reader2)):
            dest = tmp_path / f"{r.patient_id}_r{reader}.tsv"
            rc = cli.main(["radiomics", "--image", str(tiny_cohort / r.image), "--mask", str(m),
                           "--reader", str(reader), "--params", str(PARAMS), "--bin-width", "25",
                           "--patient-id", r.patient_id, "--out", str(dest),
                           "--diagnostics", str(dest.with_suffix(".json"))])
            assert rc == 0
            assert read_json(dest.with_suffix(".json"))["reader"] == reader
        out.append(tmp_path / f"{r.patient_id}_r1.tsv")
        r1 = read_feature_table(tmp_path / f"{r.patient_id}_r1.tsv")
        r2 = read_feature_table(tmp_path / f"{r.patient_id}_r2.tsv")
        assert list(r1.index) == [r.patient_id] and list(r1.columns) == list(r2.columns)
        # Reader 2 moved the boundary: shape differs a little, not a lot.
        v1, v2 = r1["original_shape_VoxelVolume"].iloc[0], r2["original_shape_VoxelVolume"].iloc[0]
        assert v1 != v2 and abs(v1 - v2) / v1 < 0.3
    assert cli.main(["radiomics-table", "--features", *map(str, out), "--out", str(tmp_path / "t.tsv")]) == 0
    table = read_feature_table(tmp_path / "t.tsv")
    assert list(table.index) == list(rows["patient_id"]) and table.shape[1] == 14 + 93 * 12
    # Features are written with full precision.
    assert table.iloc[0].equals(read_feature_table(out[0]).iloc[0])


def test_feature_tables_read_together_equal_each_read_alone(tmp_path):
    """radiomics-table parses the patients' one-row files as one text: every value is the float
    its own file gives (values with 17 digits, tiny and huge, NaN), a file of two rows and a
    file with other columns included, each in its own table."""
    from ctith.io import read_feature_tables

    rng = np.random.default_rng(3)
    paths = []
    for i, columns in enumerate((["f1", "f2", "f3"], ["f1", "f2", "f3"], ["f1", "f2", "f4"], ["f1", "f2", "f3"])):
        n = 2 if i == 1 else 1
        values = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-300, 300, size=(n, 3))
        values[0, 1] = np.nan if i == 3 else values[0, 1]
        table = pd.DataFrame(values, columns=columns, index=pd.Index([f"P{i}{k}" for k in range(n)], name="patient_id"))
        paths.append(tmp_path / f"{i}.tsv")
        table.to_csv(paths[-1], sep="\t", lineterminator="\n")
    together = read_feature_tables(paths)
    assert len(together) == 4
    for path, table in zip(paths, together):
        alone = read_feature_table(path)
        pd.testing.assert_frame_equal(table, alone)
        assert np.array_equal(table.to_numpy().view(np.int64), alone.to_numpy().view(np.int64))


def test_cohort_table_rejects_mixed_parameter_files():
    a = radiomics.features_row(pd.Series({"f1": 1.0, "f2": 2.0}), "P1")
    b = radiomics.features_row(pd.Series({"f1": 1.0, "f3": 2.0}), "P2")
    with pytest.raises(InputError, match=r"patient P2: features differ from patient P1's"):
        radiomics.cohort_table([a, b])
