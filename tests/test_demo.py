import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage, stats
from sksurv.metrics import concordance_index_censored

from ctith.demo.patients import simulate_cohort
from ctith.demo.presets import (ADMINISTRATIVE_CENSORING_MONTHS, INELIGIBILITY_REASONS, MIN_FOLLOW_UP_MONTHS, PRESETS,
                                SCANNERS, SEMANTIC_FEATURES, TISSUES)
from ctith.demo.render import gaussian_field, organ_noise, render_patient
from ctith.demo.synthetic import write_cohort


def test_presets_exist_with_their_sizes():
    assert set(PRESETS) == {"tiny", "demo", "paper"}
    specs, clin = simulate_cohort("paper", seed=1)
    assert sum(not s.ineligible_reason for s in specs) == 274 and {s.matrix for s in specs} == {512}
    specs, clin = simulate_cohort("demo", seed=20240601)
    assert sum(not s.ineligible_reason for s in specs) == 110 and clin["dm_event"].sum() >= 40
    assert clin["dm_time_months"].max() <= ADMINISTRATIVE_CENSORING_MONTHS and clin["dm_time_months"].min() > 0
    assert {s.institution for s in specs} == {"A", "B"}
    assert any(s.image_format == "dicom" for s in specs)
    assert any(s.has_reader2 for s in specs) and any(s.has_plain_ct for s in specs)
    assert not all(s.has_plain_ct for s in specs)
    assert len(simulate_cohort("tiny", seed=1)[0]) < 20


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical_files(tmp_path):
    n = {"A": 3, "B": 2}
    write_cohort(tmp_path / "a", "tiny", seed=11, n_patients=n)
    write_cohort(tmp_path / "b", "tiny", seed=11, n_patients=n)
    write_cohort(tmp_path / "c", "tiny", seed=12, n_patients=n)
    a, b, c = (_digests(tmp_path / k) for k in "abc")
    assert a == b
    assert any(p.endswith(".dcm") for p in a)  # the DICOM writer is deterministic too
    assert a != c


def test_hazard_rises_with_true_heterogeneity():
    specs, clin = simulate_cohort("paper", seed=5)
    h = np.array([s.true_heterogeneity for s in specs])
    cindex = concordance_index_censored(clin["dm_event"].astype(bool), clin["dm_time_months"], h)[0]
    assert cindex > 0.6
    # ... and with clinical risk: leiomyosarcoma metastasises more than liposarcoma.
    rate = clin.groupby("histology")["dm_event"].mean()
    assert rate["RLMS"] > rate["RLPS"]


def test_follow_up_as_in_the_paper():
    """At least 36 months without DM (the paper's abstract), loss to follow-up after that,
    administrative censoring at 84 months."""
    specs, clin = simulate_cohort("paper", seed=3)
    censored = clin.loc[clin["dm_event"] == 0, "dm_time_months"]
    assert censored.min() >= MIN_FOLLOW_UP_MONTHS
    assert censored.max() == ADMINISTRATIVE_CENSORING_MONTHS
    lost = censored[censored < ADMINISTRATIVE_CENSORING_MONTHS]
    assert 0.2 < len(lost) / len(censored) < 0.8
    assert lost.min() < 48 and lost.max() > 72  # spread between the two bounds


def test_external_cohort_supports_a_60_month_auc():
    """The default demo's external cohort (institution B) has events, and patients still at
    risk past 60 months, so a time-dependent AUC at 60 months can be computed."""
    specs, clin = simulate_cohort("demo", seed=20240601)
    inst = pd.Series({s.patient_id: s.institution for s in specs})
    ext = clin[clin["patient_id"].map(inst) == "B"]
    assert ext["dm_event"].sum() >= 5
    assert (ext["dm_time_months"] > 60).sum() >= 5
    assert ((ext["dm_event"] == 1) & (ext["dm_time_months"] <= 60)).any()


def test_semantic_ratings_and_eligibility_columns():
    specs, clin = simulate_cohort("demo", seed=20240601)
    for col in SEMANTIC_FEATURES:
        assert set(clin[col].dropna()) <= set(SEMANTIC_FEATURES[col])
    r2 = clin["necrosis_r2"].notna()
    assert 0 < r2.sum() < len(clin)
    agree = (clin.loc[r2, "necrosis"] == clin.loc[r2, "necrosis_r2"]).mean()
    assert 0.8 < agree < 1.0 or agree == 1.0
    reasons = {s.ineligible_reason for s in specs} - {""}
    assert reasons == set(INELIGIBILITY_REASONS)


@pytest.fixture(scope="module")
def rendered():
    specs, _ = simulate_cohort("tiny", seed=2)
    return [(s, render_patient(s)) for s in specs]


def test_tumour_size_spacing_and_slices(rendered):
    for spec, im in rendered:
        m = sitk.GetArrayFromImage(im.mask).astype(bool)
        sx, sy, sz = im.venous.GetSpacing()
        assert sz == 5.0
        lo, hi = SCANNERS[spec.institution].spacing_mm
        assert lo <= sx <= hi and sx == sy
        ys, xs = np.nonzero(m.any(axis=0))
        extent = max((xs.max() - xs.min() + 1) * sx, (ys.max() - ys.min() + 1) * sy)
        assert 45.0 <= extent <= 200.0, (spec.patient_id, extent)
        z = np.flatnonzero(m.any(axis=(1, 2)))
        assert z[0] >= 2 and z[-1] <= m.shape[0] - 3  # n-2 and n+2 exist


def test_habitat_hu_ranges(rendered):
    """Each habitat's mean HU lies in its tissue's range (institution A: no HU offset)."""
    seen = set()
    for spec, im in rendered:
        if spec.institution != "A":
            continue
        v = sitk.GetArrayFromImage(im.venous).astype(float)
        for k, tissue in enumerate(spec.habitats):
            region = ndimage.binary_erosion(im.habitat_map == k + 1, iterations=1)
            if tissue == "calcification" or region.sum() < 200:
                continue
            lo, hi = TISSUES[tissue]["hu"]
            assert lo - 8 <= v[region].mean() <= hi + 8, (spec.patient_id, tissue, v[region].mean())
            seen.add(tissue)
    assert {"solid", "necrotic"} <= seen or {"solid", "fat"} <= seen or {"solid", "myxoid"} <= seen


def test_pixel_noise_and_structure_as_on_real_ct(rendered):
    """Residual SD after a 3 x 3 median in homogeneous soft tissue is 9-17 HU, as on real
    CT (11-14 HU in tests/data/real_ct, 9.1 in the liver of a 0.98 mm CT), and higher
    at institution B (100 kV). Organs also vary at large scales: their overall SD is well
    above the pixel noise (18.6 vs 9.1 HU in that liver)."""
    by_inst = {"A": [], "B": []}
    for spec, im in rendered:
        noise = organ_noise(im)
        assert noise, spec.patient_id
        for organ, (resid, overall) in noise.items():
            assert 9.0 <= resid <= 17.0, (spec.patient_id, organ, resid)
            assert overall >= 1.3 * resid, (spec.patient_id, organ, overall, resid)
            by_inst[spec.institution].append(resid)
    assert np.mean(by_inst["B"]) > np.mean(by_inst["A"]) + 2.0


def _knot_contrast(field, period_px):
    """How much the mean |second difference| along x depends on x modulo a grid period:
    about 1 for a field with no grid, large where knots of a coarse grid were interpolated
    linearly (the second difference vanishes between knots and peaks on them)."""
    d2 = np.abs(np.diff(field, n=2, axis=-1)).reshape(-1, field.shape[-1] - 2).mean(axis=0)
    phase = (np.arange(1, field.shape[-1] - 1) % period_px)
    per_phase = np.array([d2[phase == p].mean() for p in range(period_px)])
    return per_phase.max() / per_phase.min()


def test_random_fields_show_no_grid():
    rng = np.random.default_rng(0)
    field = gaussian_field(rng, (6, 160, 160), (5.0, 0.7, 0.7), 7.0)
    assert abs(field.mean()) < 1e-5 and abs(field.std() - 1.0) < 1e-5
    assert _knot_contrast(field, 10) < 1.2
    # The detector sees a grid where there is one: a coarse field linearly interpolated.
    coarse = rng.standard_normal((6, 17, 17))
    idx = np.arange(160) / 10.0
    gridded = ndimage.map_coordinates(coarse, np.meshgrid(np.arange(6), idx, idx, indexing="ij"), order=1)
    assert _knot_contrast(gridded, 10) > 3.0


def test_heterogeneous_tumours_mix_distinct_tissues(rendered):
    """On the largest slice, the most heterogeneous tumour holds more tissues in more
    separate patches than the least heterogeneous one."""
    def patches(m):
        k = int(np.argmax((m > 0).sum(axis=(1, 2))))
        labs = [lab for lab in np.unique(m[k]) if lab]
        return len(labs), sum(ndimage.label(m[k] == lab, structure=np.ones((3, 3)))[1] for lab in labs)

    by_h = sorted(rendered, key=lambda r: r[0].true_heterogeneity)
    lo, hi = patches(by_h[0][1].habitat_map), patches(by_h[-1][1].habitat_map)
    assert hi[0] >= 3 and hi[0] > lo[0]
    assert hi[1] > 5 * lo[1]


def test_institution_b_has_a_batch_effect(rendered):
    spec, _ = next((s, im) for s, im in rendered if s.institution == "A")
    b_spec = dataclasses.replace(spec, institution="B", scanner=SCANNERS["B"].scanners[1])
    a = sitk.GetArrayFromImage(render_patient(spec).venous).astype(float)
    bim = render_patient(b_spec)
    b = sitk.GetArrayFromImage(bim.venous).astype(float)
    tumour = bim.habitat_map == 1  # the enhancing solid habitat
    assert b[tumour].mean() - a[tumour].mean() > 15.0
    air = a < -950
    assert b[air].std() > a[air].std() * 1.2 or b[tumour].std() > a[tumour].std()


def test_fragmentation_rises_with_heterogeneity(rendered):
    """More habitat regions on the largest slice where the true heterogeneity is higher."""
    h, regions = [], []
    for spec, im in rendered:
        m = im.habitat_map
        k = int(np.argmax((m > 0).sum(axis=(1, 2))))
        n = sum(ndimage.label(m[k] == lab, structure=np.ones((3, 3)))[1] for lab in np.unique(m[k]) if lab)
        h.append(spec.true_heterogeneity)
        regions.append(n / max((m[k] > 0).sum(), 1))
    assert stats.spearmanr(h, regions).statistic > 0.5


def test_reader2_mask_is_a_perturbed_boundary(rendered):
    """Reader 2 moves the boundary; reader 1's repeat, on the same patients, moves it less."""
    def dice(a, b):
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    masks = [[sitk.GetArrayFromImage(m) for m in (im.mask, im.mask_reader2, im.mask_reader1_repeat)]
             for s, im in rendered if im.mask_reader2 is not None]
    assert masks
    assert all((im.mask_reader1_repeat is None) == (im.mask_reader2 is None) for _, im in rendered)
    for m1, m2, m1r in masks:
        assert 0.85 < dice(m1, m2) < dice(m1, m1r) < 1.0


def test_written_cohort_sheet(tiny_cohort_dir):
    sheet = pd.read_csv(tiny_cohort_dir / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    clin = pd.read_csv(tiny_cohort_dir / "clinical.tsv", sep="\t")
    assert list(sheet["patient_id"]) == list(clin["patient_id"])
    assert (sheet["image"].str.endswith("dicom") == (sheet["image_series_uid"] != "")).all()
    for col in ("image", "mask"):
        assert all((tiny_cohort_dir / p).exists() for p in sheet[col])
    assert (sheet["mask_reader2"] != "").any() and (sheet["plain_ct"] != "").any()
    assert ((sheet["mask_reader1_repeat"] != "") == (sheet["mask_reader2"] != "")).all()


def test_clinical_table_writes_integer_ratings(tiny_cohort_dir):
    text = (tiny_cohort_dir / "clinical.tsv").read_text().splitlines()
    header = text[0].split("\t")
    col = header.index("necrosis_r2")
    values = {line.split("\t")[col] for line in text[1:]}
    assert values <= {"", "0", "1"} and values & {"0", "1"}


def test_demo_figure_picks_four_tumours_by_true_heterogeneity(tmp_path, capsys):
    """`ctith demo-figure`: four eligible demo tumours at rising quantiles of the planted
    heterogeneity, drawn under the published method and the variant; a variant that sets
    nothing is refused."""
    from ctith.cli import main
    from ctith.demo.figure import pick_patients

    truth = pd.DataFrame({"true_heterogeneity": [0.9, 0.1, 0.5, 0.3, 0.7, 0.2]},
                         index=["P1", "P2", "P3", "P4", "P5", "P6"])
    assert pick_patients(truth) == ["P2", "P4", "P3", "P1"]
    out = tmp_path / "demo_heterogeneity.png"
    args = ["demo-figure", "--preset", "tiny", "--demo-seed", "7", "--ith", '{"window": 1, "n_init": 2}',
            "--clusters", "2", "3", "--out", str(out)]
    assert main([*args, "--variant", '{"feature_smoothing_fraction": 0.06, "feature_smoothing_edge_hu": 30}']) == 0
    printed = capsys.readouterr().out
    picks = printed.split("(")[1].split(")")[0].split(", ")
    specs, _ = simulate_cohort("tiny", 7)
    h = {s.patient_id: s.true_heterogeneity for s in specs if not s.ineligible_reason}
    assert len(set(picks)) == 4 and [h[p] for p in picks] == sorted(h[p] for p in picks)
    assert out.stat().st_size > 20_000
    assert main([*args, "--variant", '{"feature_smoothing_edge_hu": 30}']) == 1  # edge scale alone: no variant
    assert "sets no noise-robust variant" in capsys.readouterr().err


def test_demo_validation_cohorts_can_speak():
    """The README's run: the split of the demo's eligible patients (config seed 42, the
    paper's 0.821 training share) gives internal validation at least 15 patients with 6 DM
    events and external validation at least 24 with 10."""
    from ctith.cohort.split import assign_cohorts

    specs, clin = simulate_cohort("demo", seed=20240601)
    event = clin.set_index("patient_id")["dm_event"]
    eligible = [s for s in specs if not s.ineligible_reason]
    patients = pd.DataFrame({"patient_id": [s.patient_id for s in eligible],
                             "institution": [s.institution for s in eligible], "cohort": "",
                             "event": [event[s.patient_id] for s in eligible]})
    split = assign_cohorts(patients, ["A"], ["B"], 0.821, 42).merge(patients[["patient_id", "event"]])
    size = split.groupby("cohort")["event"].agg(["size", "sum"])
    assert size.loc["internal_validation", "size"] >= 15 and size.loc["internal_validation", "sum"] >= 6
    assert size.loc["external_validation", "size"] >= 24 and size.loc["external_validation", "sum"] >= 10
