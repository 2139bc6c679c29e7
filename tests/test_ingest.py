import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ctith import cli
from ctith.cohort import geometry, ingest, readers, table_s1
from ctith.demo.patients import simulate_cohort
from ctith.demo.presets import PROTOCOLS, SCANNER_HEADERS, SLICE_THICKNESS_MM
from ctith.demo.render import render_patient
from ctith.demo.synthetic import write_patient
from ctith.errors import IngestError


def write(img, path):
    sitk.WriteImage(img, str(path), useCompression=str(path).endswith(".gz"))
    return path


def test_kidney_volume_on_real_ct(real_ct):
    qc = ingest.ingest(real_ct.image, real_ct.masks["kidney_left"], "REAL").qc
    assert qc["tumour_voxels"] == 5144
    assert qc["tumour_volume_ml"] == pytest.approx(138.9, abs=0.05)
    assert qc["spacing"] == [3.0, 3.0, 3.0]
    assert qc["largest_slice"]["area_pixels"] == 227
    assert qc["connected_components"]["count"] == 1
    assert qc["hu"]["min"] < -900 and -100 < qc["tumour_hu"]["mean"] < 300


def test_real_ct_is_reoriented_losslessly(real_ct):
    """The real CT is stored RAS; canonical LPS flips x and y without resampling."""
    res = ingest.ingest(real_ct.image, real_ct.masks["spleen"], "REAL")
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(real_ct.image)))
    assert geometry.orientation_code(res.image) == "LPS"
    assert np.array_equal(sitk.GetArrayFromImage(res.image), raw[:, ::-1, ::-1])
    assert int(sitk.GetArrayFromImage(res.mask).sum()) == 9677


@pytest.mark.parametrize("storage", ["flip", "permute", "flip_permute"])
def test_mask_stored_another_way_lands_on_image_grid(real_ct, tmp_path, storage):
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    if "flip" in storage:
        mask = sitk.Flip(mask, [False, True, True])
    if "permute" in storage:
        mask = sitk.PermuteAxes(mask, [2, 0, 1])
    path = write(mask, tmp_path / "mask.nii.gz")
    ref = ingest.ingest(real_ct.image, real_ct.masks["kidney_left"], "REAL")
    res = ingest.ingest(real_ct.image, path, "REAL")
    assert res.qc["mask_reoriented"] is True
    assert np.array_equal(sitk.GetArrayFromImage(res.mask), sitk.GetArrayFromImage(ref.mask))


@pytest.fixture(scope="module")
def patient():
    specs, _ = simulate_cohort("tiny", seed=3)
    spec = specs[1]
    spec.has_plain_ct = True
    return spec, render_patient(spec)


def test_dicom_and_nifti_ingest_to_identical_voxels(patient, tmp_path):
    spec, images = patient
    row_d = write_patient(spec, images, tmp_path / "d", "dicom")
    row_n = write_patient(spec, images, tmp_path / "n", "nifti")
    a = ingest.ingest(tmp_path / "d" / row_d["image"], tmp_path / "d" / row_d["mask"], spec.patient_id,
                      series_uid=row_d["image_series_uid"])
    b = ingest.ingest(tmp_path / "n" / row_n["image"], tmp_path / "n" / row_n["mask"], spec.patient_id)
    assert a.qc["image_format"] == "dicom"
    assert np.array_equal(sitk.GetArrayFromImage(a.image), sitk.GetArrayFromImage(b.image))
    assert np.array_equal(sitk.GetArrayFromImage(a.mask), sitk.GetArrayFromImage(b.mask))
    assert a.image.GetSpacing() == pytest.approx(b.image.GetSpacing(), abs=1e-5)
    assert a.qc["tumour_voxels"] == b.qc["tumour_voxels"]


def test_dicom_folder_with_two_series_needs_a_uid(patient, tmp_path):
    spec, images = patient
    row = write_patient(spec, images, tmp_path, "dicom")
    folder = tmp_path / row["image"]
    assert len(readers.list_dicom_series(folder)) == 2
    with pytest.raises(IngestError, match=rf"patient {spec.patient_id}: .*holds 2 DICOM series"):
        ingest.ingest(folder, tmp_path / row["mask"], spec.patient_id)
    with pytest.raises(IngestError, match="has no series 1.2.3"):
        ingest.ingest(folder, tmp_path / row["mask"], spec.patient_id, series_uid="1.2.3")
    plain = ingest.ingest(folder, tmp_path / row["mask"], spec.patient_id, series_uid=row["plain_ct_series_uid"])
    venous = ingest.ingest(folder, tmp_path / row["mask"], spec.patient_id, series_uid=row["image_series_uid"])
    # The plain CT lacks contrast: the enhancing tumour is darker.
    assert plain.qc["tumour_hu"]["mean"] < venous.qc["tumour_hu"]["mean"]


def test_acquisition_settings_from_the_dicom_header_only(patient, tmp_path):
    """Table S1's fields come from the venous series' header (the demo writes its
    institution's protocol); the plain phase has no contrast agent; NIfTI gives blanks."""
    spec, images = patient
    row = write_patient(spec, images, tmp_path, "dicom")
    folder = tmp_path / row["image"]
    venous = ingest.ingest(folder, tmp_path / row["mask"], spec.patient_id, series_uid=row["image_series_uid"])
    acq = venous.qc["acquisition"]
    assert list(acq) == list(readers.ACQUISITION_TAGS)
    protocol = PROTOCOLS[spec.institution]
    maker, model, single, total, kernel = SCANNER_HEADERS[spec.scanner]
    assert acq["Manufacturer"] == maker and acq["ManufacturerModelName"] == model
    assert acq["KVP"] == protocol["KVP"] and isinstance(acq["KVP"], float)
    assert acq["SpiralPitchFactor"] in protocol["pitches"]
    assert (acq["SingleCollimationWidth"], acq["TotalCollimationWidth"]) == (single, total)
    assert acq["ContrastBolusAgent"] == protocol["ContrastBolusAgent"] and acq["ConvolutionKernel"] == kernel
    assert acq["ExposureModulationType"] == "XYZ_EC"
    assert acq["SliceThickness"] == pytest.approx(SLICE_THICKNESS_MM)
    assert (acq["Rows"], acq["Columns"]) == images.venous.GetSize()[1::-1]
    json.dumps(acq)  # JSON as it stands
    plain = readers.acquisition_settings(folder, row["plain_ct_series_uid"], spec.patient_id)
    assert plain["ContrastBolusAgent"] is None and plain["KVP"] == acq["KVP"]
    nifti = ingest.ingest(write(images.venous, tmp_path / "ct.nii.gz"), tmp_path / row["mask"], spec.patient_id)
    assert nifti.qc["acquisition"] == dict.fromkeys(readers.ACQUISITION_TAGS)


def test_table_s1_summarises_each_institution_in_the_papers_rows():
    def acq(maker, model, kvp, pitch, coll, agent):
        return {**dict.fromkeys(readers.ACQUISITION_TAGS), "Manufacturer": maker, "ManufacturerModelName": model,
                "KVP": kvp, "SpiralPitchFactor": pitch, "SingleCollimationWidth": coll, "SliceThickness": 5.0,
                "Rows": 512, "Columns": 512, "ContrastBolusAgent": agent, "ExposureModulationType": "XYZ_EC"}
    records = [
        {"patient_id": "A1", "acquisition": acq("GE MEDICAL SYSTEMS", "Revolution CT", 120, 1.375, 0.625, "Iopromide")},
        {"patient_id": "A2", "acquisition": acq("SIEMENS", "SOMATOM Force", 120, 1.0, 0.6, "Iopromide")},
        {"patient_id": "A3", "acquisition": acq("GE MEDICAL SYSTEMS", "LightSpeed CT750 HD", 120, 1.0, 0.625,
                                                "Iopromide")},
        {"patient_id": "A4", "acquisition": dict.fromkeys(readers.ACQUISITION_TAGS)},  # a NIfTI patient
        {"patient_id": "B1", "acquisition": acq("UIH", "uCT960", 100, 0.6, 0.6, "Iopamidol")},
        *({"patient_id": f"B{i}", "acquisition": acq("UIH", "uCT710", 90 + 2 * i, 0.8, 0.6, "Iopamidol")}
          for i in range(2, 6)),
    ]
    institution = {r["patient_id"]: r["patient_id"][0] for r in records}
    t = table_s1.table_s1(records, institution).set_index("Parameters")
    assert list(t.columns) == ["Institution A", "Institution B"]
    assert list(t.index[:8]) == ["CT version", "Tube current", "Tube voltage", "Detector collimation",
                                 "Slice thickness", "Pitch", "Image matrix", "Contrast material"]
    a, b = t["Institution A"], t["Institution B"]
    assert a["CT version"] == "LightSpeed CT750 HD or Revolution CT (GE MEDICAL SYSTEMS); SOMATOM Force (SIEMENS)"
    assert a["Tube voltage"] == "120 kV" and a["Pitch"] == "1.0 or 1.375"
    assert a["Detector collimation"] == "0.6 mm or 0.625 mm" and a["Slice thickness"] == "5 mm"
    assert a["Image matrix"] == "512×512" and a["Contrast material"] == "Iopromide"
    assert a["Tube current"] == "Automatic tube current modulation (XYZ_EC)"
    assert a["Reconstruction kernel"] == "-"
    assert a["Patients with a DICOM header"] == "3 of 4" and b["Patients with a DICOM header"] == "5 of 5"
    # More than three distinct numbers read as a range.
    assert b["Tube voltage"] == "94-100 kV (4 values)" and b["Pitch"] == "0.6 or 0.8"


@pytest.mark.parametrize("ext", [".nrrd", ".mha", ".nii"])
def test_other_formats(patient, tmp_path, ext):
    spec, images = patient
    img = write(images.venous, tmp_path / f"ct{ext}")
    msk = write(images.mask, tmp_path / "m.nii.gz")
    res = ingest.ingest(img, msk, "P1")
    assert np.array_equal(sitk.GetArrayFromImage(res.image), sitk.GetArrayFromImage(images.venous))


# ------------------------------------------------------------------ bad inputs


@pytest.fixture
def good(patient, tmp_path):
    spec, images = patient
    return (write(images.venous, tmp_path / "ct.nii.gz"), write(images.mask, tmp_path / "seg.nii.gz"), images)


def _expect(pattern, image, mask, **kw):
    with pytest.raises(IngestError) as info:
        ingest.ingest(image, mask, "P042", **kw)
    msg = str(info.value)
    assert msg.startswith("patient P042: "), msg
    assert pytest.importorskip("re").search(pattern, msg), msg
    return info.value


def test_missing_file(good, tmp_path):
    image, mask, _ = good
    err = _expect(r"mask '.*nope\.nii\.gz' does not exist", image, tmp_path / "nope.nii.gz")
    assert err.path.endswith("nope.nii.gz")
    _expect(r"image '.*absent' does not exist", tmp_path / "absent", mask)


def test_corrupt_file(good, tmp_path):
    image, mask, _ = good
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08 this is not a NIfTI file")
    err = _expect(r"cannot read image '.*broken\.nii\.gz'", bad, mask)
    assert "\n" not in str(err)
    truncated = tmp_path / "trunc.nii.gz"
    truncated.write_bytes(Path(image).read_bytes()[:2000])
    _expect(r"cannot read image '.*trunc\.nii\.gz'", truncated, mask)


def test_empty_folder_is_not_a_dicom_series(good, tmp_path):
    _, mask, _ = good
    (tmp_path / "empty").mkdir()
    _expect(r"image folder '.*empty' holds no DICOM series", tmp_path / "empty", mask)


def test_mask_of_another_size(good, tmp_path):
    image, _, images = good
    small = write(images.mask[:-3, :, :], tmp_path / "small.nii.gz")
    _expect(r"mask '.*small\.nii\.gz' has size \(125, 128, \d+\) but image '.*ct\.nii\.gz' has \(128, 128, \d+\)",
            image, small)


def test_mask_of_another_spacing(good, tmp_path):
    image, _, images = good
    m = sitk.Image(images.mask)
    m.SetSpacing((1.0, 1.0, 5.0))
    _expect(r"mask '.*' has spacing \(1, 1, 5\) but image '.*ct\.nii\.gz' has \(0\.\d+", image,
            write(m, tmp_path / "sp.nii.gz"))


def test_mask_of_another_origin(good, tmp_path):
    image, _, images = good
    m = sitk.Image(images.mask)
    m.SetOrigin(tuple(o + (5.0 if i == 2 else 0.0) for i, o in enumerate(m.GetOrigin())))
    _expect(r"mask '.*or\.nii\.gz' has origin .* but image '.*' has", image, write(m, tmp_path / "or.nii.gz"))


def test_origin_within_tolerance_is_snapped(good, tmp_path):
    image, _, images = good
    m = sitk.Image(images.mask)
    m.SetOrigin(tuple(o + 0.001 for o in m.GetOrigin()))
    res = ingest.ingest(image, write(m, tmp_path / "near.nii.gz"), "P1")
    assert res.qc["mask_geometry_snapped"] is True
    assert res.mask.GetOrigin() == res.image.GetOrigin()


def test_empty_mask(good, tmp_path):
    image, _, images = good
    empty = write(images.mask * 0, tmp_path / "empty.nii.gz")
    _expect(r"mask '.*empty\.nii\.gz' is empty", image, empty)


def test_multilabel_mask_needs_a_label(good, tmp_path):
    image, _, images = good
    arr = sitk.GetArrayFromImage(images.mask).astype(np.uint8)
    z = int(np.flatnonzero(arr.sum(axis=(1, 2)))[0])
    arr[z][arr[z] > 0] = 2  # a second structure labelled 2
    m = sitk.GetImageFromArray(arr)
    m.CopyInformation(images.mask)
    path = write(m, tmp_path / "multi.nii.gz")
    _expect(r"mask '.*multi\.nii\.gz' holds 2 labels \[1, 2\]; choose one with the sample sheet column mask_label", image, path)
    res = ingest.ingest(image, path, "P1", mask_label=2)
    assert res.qc["tumour_voxels"] == int((arr == 2).sum())
    _expect(r"has no voxel with label 3; it holds \[1, 2\]", image, path, mask_label=3)


def test_itksnap_label_value_is_binarised(good, tmp_path):
    image, _, images = good
    path = write(images.mask * 7, tmp_path / "seven.nii.gz")
    res = ingest.ingest(image, path, "P1")
    assert set(np.unique(sitk.GetArrayFromImage(res.mask))) == {0, 1}
    assert res.qc["mask_labels_found"] == [7]


# ------------------------------------------------------------------ CLI


def test_cli_writes_three_files(good, tmp_path):
    image, mask, images = good
    out = tmp_path / "out" / "P9"
    assert cli.main(["ingest", "--image", str(image), "--mask", str(mask), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["image.nii.gz", "mask.nii.gz", "qc.json"]
    qc = json.loads((out / "qc.json").read_text())
    assert qc["patient_id"] == "P9"
    assert qc["tumour_voxels"] == int(sitk.GetArrayFromImage(images.mask).sum())
    # Written through a temporary file, yet with the mode open() gives (0666 less the
    # umask), not mkstemp's owner-only 0600: a shared site's group reads the results.
    umask = os.umask(0o022)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~umask}


def test_cli_error_is_one_line(good, tmp_path, capsys):
    image, _, _ = good
    out = tmp_path / "P9"
    code = cli.main(["ingest", "--image", str(image), "--mask", str(tmp_path / "x.nii.gz"),
                     "--out", str(out), "--patient-id", "P9"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("IngestError: patient P9: mask ") and "x.nii.gz" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_qc_table_has_one_row_per_record(real_ct):
    recs = [ingest.ingest(real_ct.image, real_ct.masks[k], k).qc for k in ("kidney_left", "spleen")]
    table = ingest.qc_table(recs)
    assert list(table["patient_id"]) == ["kidney_left", "spleen"]
    assert list(table["tumour_voxels"]) == [5144, 9677]


@pytest.mark.parametrize("name", ["half.nii.gz", "half.nii"])
def test_truncated_nifti_is_caught(good, tmp_path, name):
    """ITK would read these silently, with the missing voxels filled in."""
    _, mask, images = good
    full = write(images.venous, tmp_path / ("full" + name[4:]))
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    _expect(rf"cannot read image '.*{name}': .*(truncated|damaged)", tmp_path / name, mask)
