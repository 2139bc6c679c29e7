"""Quantitative semantic features of Appendix 2."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from ctith import cli
from ctith.demo.patients import simulate_cohort
from ctith.demo.render import render_patient
from ctith.radiomics import semantic
from ctith.errors import InputError
from ctith.io import read_json


@pytest.mark.parametrize("delta, degree", [(-5.0, 1), (19.99, 1), (20.0, 2), (40.0, 2), (40.01, 3), (90.0, 3)])
def test_enhancement_degree_bins(delta, degree):
    assert semantic.enhancement_degree(delta) == degree


def phantom():
    """A 3-D tumour of known composition on a 1 mm grid: solid, necrotic, fat, calcified blocks."""
    venous = np.full((6, 80, 80), -100.0, dtype=np.float32)
    mask = np.zeros(venous.shape, dtype=bool)
    mask[:, 10:70, 10:70] = True  # 6 x 60 x 60 = 21,600 voxels
    venous[mask] = 90.0  # solid
    venous[:, 10:25, 10:70] = 10.0  # necrosis: 15 of 60 rows = 25%
    venous[:, 55:70, 10:40] = -90.0  # fat: 15 x 30 = 12.5%
    venous[:, 40:43, 40:43] = 400.0  # calcification: 9 voxels per slice = 0.25%
    plain = np.where(venous == 90.0, 60.0, venous).astype(np.float32)  # solid enhances by 30 HU
    return venous, mask, plain


def test_phantom_fractions_and_ratings():
    venous, mask, plain = phantom()
    rng = np.random.default_rng(0)
    noisy = venous + rng.normal(0.0, 8.0, venous.shape).astype(np.float32)
    out = semantic.semantic_features(noisy, mask, (1.0, 1.0, 1.0), plain + rng.normal(0, 8, plain.shape),
                                     params=semantic.SemanticParams(calcification_min_hu=200.0))
    assert out["tumour_voxels"] == 21_600
    assert out["necrosis_fraction"] == pytest.approx(0.25, abs=0.01)
    assert out["fat_fraction"] == pytest.approx(0.125, abs=0.01)
    assert out["calcification_fraction"] == pytest.approx(9 / 3600, abs=1e-4)
    assert out["calcification_ml"] == pytest.approx(6 * 9 / 1000.0, abs=1e-3)
    assert out["dominant_hu"] == pytest.approx(90.0, abs=5.0)
    # Everything but the solid part differs from it by more than 25 HU: 25 + 12.5 + 0.25 %.
    assert out["heterogeneous_fraction"] == pytest.approx(0.3775, abs=0.01)
    assert out["enhancement_hu"] == pytest.approx(30.0, abs=2.0)
    assert (out["necrosis"], out["adipose_tissue"], out["calcification"], out["enhancement_pattern"],
            out["enhancement_degree"]) == (1, 1, 0, 1, 2)  # 0.25% calcified < 0.3% needed


def test_homogeneous_tumour_without_plain_ct():
    venous, mask, _ = phantom()
    venous[mask] = 90.0
    out = semantic.semantic_features(venous, mask, (5.0, 0.8, 0.8))
    assert (out["necrosis"], out["adipose_tissue"], out["calcification"], out["enhancement_pattern"]) == (0, 0, 0, 0)
    assert out["enhancement_hu"] is None and out["enhancement_degree"] is None and not out["plain_ct"]


def test_real_ct_plain_phase_on_another_grid(real_ct):
    """A 'plain CT' on a shifted, smaller grid of the same frame, stored in another axis order,
    comes back onto the venous grid voxel for voxel."""
    venous = sitk.ReadImage(str(real_ct.image))
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    plain = sitk.Cast(venous[2:115, 3:98, 1:110], sitk.sitkFloat32)  # a sub-grid: other origin and size
    plain = sitk.DICOMOrient(plain - 35.0, "RAS")  # 35 HU less everywhere, stored another way
    rec = semantic.measure(venous, mask, plain, patient="REAL")
    assert rec["plain_ct_coverage"] == 1.0
    assert rec["enhancement_hu"] == pytest.approx(35.0, abs=1e-3)
    assert rec["enhancement_degree"] == 2

    far = sitk.Image(plain)
    far.SetOrigin(tuple(np.add(plain.GetOrigin(), (0.0, 0.0, 400.0))))
    with pytest.raises(InputError, match=r"^patient REAL: plain CT 'p\.nii' covers 0% of the tumour"):
        semantic.measure(venous, mask, far, patient="REAL", plain_path="p.nii")


def test_measured_ratings_follow_the_demo_truth(tiny_cohort):
    """On rendered demo tumours, fat and calcification ratings match what the generator drew."""
    specs, _ = simulate_cohort("tiny", seed=7)
    hits = {"adipose_tissue": [], "calcification": [], "enhancement_degree": []}
    for spec in specs[:8]:
        img = render_patient(spec)
        rec = semantic.measure(img.venous, img.mask, img.plain, patient=spec.patient_id)
        hits["adipose_tissue"].append(rec["adipose_tissue"] == int("fat" in spec.habitats))
        hits["calcification"].append(rec["calcification"] == int("calcification" in spec.habitats))
        if img.plain is not None:
            hits["enhancement_degree"].append(abs(rec["enhancement_degree"]
                                                  - semantic.enhancement_degree(spec.enhancement_hu)) <= 1)
    assert all(hits["adipose_tissue"]) and all(hits["calcification"])
    assert hits["enhancement_degree"] and all(hits["enhancement_degree"])


def test_cli_and_agreement_table(tiny_cohort, tmp_path):
    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    rows = samples[samples["plain_ct"] != ""].head(3)
    records = []
    for r in rows.itertuples():
        opts = ["--plain-ct", str(tiny_cohort / r.plain_ct)]
        if r.plain_ct_series_uid:
            opts += ["--plain-series-uid", r.plain_ct_series_uid]
        image = tiny_cohort / r.image
        if image.is_dir():  # DICOM: ingest first, as the workflow does
            from ctith.cohort.ingest import ingest, write_result

            write_result(ingest(image, tiny_cohort / r.mask, r.patient_id, r.image_series_uid or None),
                         tmp_path / r.patient_id)
            image, mask = tmp_path / r.patient_id / "image.nii.gz", tmp_path / r.patient_id / "mask.nii.gz"
        else:
            mask = tiny_cohort / r.mask
        out = tmp_path / f"{r.patient_id}.json"
        assert cli.main(["semantic", "--image", str(image), "--mask", str(mask), *opts,
                         "--params", '{"smoothing_mm": 2.0}', "--patient-id", r.patient_id, "--out", str(out)]) == 0
        rec = read_json(out)
        assert rec["patient_id"] == r.patient_id and rec["enhancement_degree"] in (1, 2, 3)
        records.append(str(out))
    assert cli.main(["semantic-table", "--records", *records, "--clinical", str(tiny_cohort / "clinical.tsv"),
                     "--out-table", str(tmp_path / "t.tsv"), "--out-agreement", str(tmp_path / "a.tsv")]) == 0
    table = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    assert list(table["patient_id"]) == list(rows["patient_id"])
    agreement = pd.read_csv(tmp_path / "a.tsv", sep="\t")
    assert list(agreement["feature"]) == list(semantic.RATINGS)
    assert (agreement["n"] == 3).all() and agreement["accuracy"].between(0, 1).all()
