"""Appendix 4, step by step, on the real CT and on demo patients."""

import numpy as np
import pytest
import SimpleITK as sitk

from ctith import cli
from ctith.demo.patients import simulate_cohort
from ctith.demo.render import render_patient
from ctith.dl.inputs import (DLInputParams, build_input, channel_slices, clahe, crop_channels, dilate, resize_bilinear,
                             window_to_uint8)
from ctith.errors import InputError
from ctith.cohort.geometry import axial_axis, largest_slice
from ctith.io import read_json


@pytest.fixture(scope="module")
def kidney(real_ct):
    image = sitk.ReadImage(str(real_ct.image))
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask), axial_axis(image)


def test_abdominal_window():
    hu = np.array([-1000, -160, -159, 40, 239, 240, 3000])
    out = window_to_uint8(hu, 40, 400)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 1, 128, 254, 255, 255]  # (hu + 160) / 400 * 255, rounded


def test_clahe_on_real_slice_stays_8_bit_and_spreads_contrast(kidney):
    hu, mask, axis = kidney
    n, _ = largest_slice(np.moveaxis(mask, axis, 0), 0)
    u8 = window_to_uint8(np.moveaxis(hu, axis, 0)[n], 40, 400)
    eq = clahe(u8, None, 0.01)
    assert eq.dtype == np.uint8 and eq.shape == u8.shape
    assert eq.min() >= 0 and eq.max() <= 255
    # Soft tissue occupies a narrow band of the window; CLAHE widens it.
    body = u8 > 0
    assert np.percentile(eq[body], 90) - np.percentile(eq[body], 10) > \
        np.percentile(u8[body], 90) - np.percentile(u8[body], 10)


def test_dilation_footprint_is_4x4():
    m = np.zeros((9, 9), dtype=bool)
    m[4, 4] = True
    d = dilate(m, 4)
    rows, cols = np.nonzero(d)
    assert d.sum() == 16
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 5, 2, 5)  # 2 up/left, 1 down/right


@pytest.mark.parametrize("n, count, want, clamped", [
    (10, 30, [8, 10, 12], False), (1, 30, [0, 1, 3], True), (0, 30, [0, 0, 2], True), (29, 30, [27, 29, 29], True),
    (0, 1, [0, 0, 0], True)])
def test_slice_clamping(n, count, want, clamped):
    assert channel_slices(n, count, 2) == (want, clamped)


def test_bilinear_resize_keeps_range_and_shape():
    x = np.random.default_rng(0).random((3, 37, 53)).astype(np.float32)
    y = resize_bilinear(x, 224)
    assert y.shape == (3, 224, 224) and y.dtype == np.float32
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6


def test_real_ct_kidney_input(kidney):
    hu, mask, axis = kidney
    tensor, qc = build_input(hu, mask, axis, DLInputParams(), "REAL")
    assert tensor.shape == (3, 224, 224) and tensor.dtype == np.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    z = np.moveaxis(mask, axis, 0).astype(bool)
    n, area = largest_slice(z, 0)
    assert qc["largest_slice"] == n and area == 227 and qc["channel_slices"] == [n - 2, n, n + 2]
    assert not qc["clamped"]
    # The crop is the bounding box of the union of the three dilated slices.
    union = np.zeros(z.shape[1:], dtype=bool)
    for i in qc["channel_slices"]:
        union |= dilate(z[i], 4)
    rows, cols = np.nonzero(union)
    assert tuple(qc["crop_box_rows_cols"]) == (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
    assert qc["dilated_roi_pixels_per_channel"] == [int(dilate(z[i], 4).sum()) for i in qc["channel_slices"]]


def test_crop_is_the_clahe_window_inside_each_dilated_roi_and_zero_outside(kidney):
    hu, mask, axis = kidney
    z = np.moveaxis(mask, axis, 0).astype(bool)
    v = np.moveaxis(hu, axis, 0)
    crop, qc = crop_channels(hu, mask, axis, DLInputParams(), "REAL")
    r0, r1, c0, c1 = qc["crop_box_rows_cols"]
    assert crop.shape == (3, r1 - r0, c1 - c0)
    for k, i in enumerate(qc["channel_slices"]):
        roi = dilate(z[i], 4)[r0:r1, c0:c1]
        expected = clahe(window_to_uint8(v[i], 40, 400), None, 0.01)[r0:r1, c0:c1] / 255.0
        assert (crop[k][~roi] == 0).all()
        np.testing.assert_allclose(crop[k][roi], expected[roi], atol=1e-7)


def test_demo_patients_and_clamping_at_the_volume_end(tiny_cohort_dir):
    specs, _ = simulate_cohort("tiny", seed=7)
    images = render_patient(specs[0])
    hu = sitk.GetArrayFromImage(images.venous)
    mask = sitk.GetArrayFromImage(images.mask)
    tensor, qc = build_input(hu, mask, 0, DLInputParams(), specs[0].patient_id)
    assert tensor.shape == (3, 224, 224) and not qc["clamped"]
    assert (tensor == 0).any() and (tensor > 0).mean() > 0.3  # tumour fills most of its crop
    # Keep only the first tumour slices: n sits at the volume's start, n - 2 is clamped.
    n = qc["largest_slice"]
    cut_hu, cut_mask = hu[n - 1:], mask[n - 1:].copy()
    cut_mask[0] = 0
    t2, qc2 = build_input(cut_hu, cut_mask, 0, DLInputParams(), "X")
    assert qc2["clamped"] and qc2["channel_slices"][0] == 0 and "clamped" in qc2["warning"]
    assert t2.shape == (3, 224, 224)


def test_empty_mask_names_the_patient():
    with pytest.raises(InputError, match="patient P3: mask is empty"):
        build_input(np.zeros((5, 10, 10)), np.zeros((5, 10, 10)), 0, DLInputParams(), "P3")


def test_cli_writes_tensor_qc_and_preview(real_ct, tmp_path):
    out = tmp_path / "REAL" / "dl"
    assert cli.main(["dl-input", "--image", str(real_ct.image), "--mask", str(real_ct.masks["kidney_left"]),
                     "--params", '{"window_level": 50, "window_width": 350}', "--patient-id", "REAL",
                     "--out-dir", str(out)]) == 0
    tensor = np.load(out / "input.npy")
    qc = read_json(out / "qc.json")
    assert tensor.shape == (3, 224, 224) and qc["patient_id"] == "REAL" and qc["params"]["window_level"] == 50
    assert (out / "preview.png").stat().st_size > 5_000
