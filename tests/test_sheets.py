import pytest
import yaml

from ctith.cohort import sheets
from ctith.errors import SheetError
from ctith.io import read_table
from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def load(cohort):
    return read_table(cohort / "samples.tsv"), read_table(cohort / "clinical.tsv")


def validate(cohort, samples, clinical, config=CONFIG):
    return sheets.validate_inputs(samples, clinical, config, str(cohort / "samples.tsv"),
                                  str(cohort / "clinical.tsv"))


def test_demo_sheets_pass_and_are_typed(tiny_cohort_dir):
    samples, clinical = load(tiny_cohort_dir)
    inputs = validate(tiny_cohort_dir, samples, clinical)
    assert list(inputs.samples.index) == list(samples["patient_id"])
    assert inputs.clinical["dm_event"].isin([0, 1]).all()
    first = inputs.samples.iloc[0]
    assert first["image"].startswith(str(tiny_cohort_dir))  # resolved against the sheet's folder


def test_every_problem_reported_at_once(tiny_cohort_dir):
    samples, clinical = load(tiny_cohort_dir)
    ids = list(samples["patient_id"])
    samples.loc[1, "patient_id"] = ids[0]  # duplicate
    samples.loc[2, "patient_id"] = "../x"  # unsafe
    samples.loc[3, "patient_id"] = "has space"  # unsafe
    samples.loc[4, "mask"] = "nowhere/seg.nii.gz"  # missing file
    samples.loc[5, "patient_id"] = "NEW01"  # not in the clinical table
    clinical.loc[clinical.patient_id == ids[6], "dm_time_months"] = "soon"
    clinical.loc[clinical.patient_id == ids[7], "dm_time_months"] = "-3"
    clinical.loc[clinical.patient_id == ids[8], "dm_event"] = "2"
    clinical.loc[clinical.patient_id == ids[9], "dm_event"] = ""
    with pytest.raises(SheetError) as info:
        validate(tiny_cohort_dir, samples, clinical)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 9, text
    assert f"patient {ids[0]} appears more than once (rows 2, 3)" in text
    assert "patient ID '../x' is not a safe token" in text
    assert "patient ID 'has space' is not a safe token" in text
    assert f"patient {ids[4]}: mask '" in text and "nowhere/seg.nii.gz' (sample sheet column 'mask') does not exist" in text
    assert "patient NEW01: missing from clinical table" in text
    assert f"(patient {ids[6]}): column 'dm_time_months': 'soon' is not of type 'number'" in text
    assert f"(patient {ids[7]}): column 'dm_time_months': -3.0 is less than the minimum of 0" in text
    assert f"(patient {ids[8]}): column 'dm_event': 2 is not one of [0, 1]" in text
    assert f"patient {ids[9]}: 'dm_event' is blank in clinical table" in text


def test_predict_patients_need_no_outcome(tiny_cohort_dir):
    samples, clinical = load(tiny_cohort_dir)
    samples.loc[0, "cohort"] = "predict"
    clinical.loc[0, ["dm_event", "dm_time_months"]] = ""
    assert validate(tiny_cohort_dir, samples, clinical).samples.iloc[0]["cohort"] == "predict"


def test_clinical_columns_are_mapped(tiny_cohort_dir):
    samples, clinical = load(tiny_cohort_dir)
    clinical = clinical.rename(columns={"dm_event": "DM", "dm_time_months": "DMFS"})
    config = {**CONFIG, "clinical_columns": {**CONFIG["clinical_columns"], "dm_event": "DM",
                                             "dm_time_months": "DMFS"}}
    inputs = validate(tiny_cohort_dir, samples, clinical, config)
    assert "dm_event" in inputs.clinical.columns
    with pytest.raises(SheetError, match=r"has no column 'DM' \(config clinical_columns.dm_event\)") as exc:
        validate(tiny_cohort_dir, samples, clinical.drop(columns="DM"), config)
    assert len(exc.value.problems) == 1  # said once, not again under its canonical name


def test_missing_required_column_and_criterion_column(tiny_cohort_dir):
    samples, clinical = load(tiny_cohort_dir)
    with pytest.raises(SheetError) as info:
        validate(tiny_cohort_dir, samples.drop(columns="mask"), clinical.drop(columns="resection_margin"))
    text = str(info.value)
    assert "has no column 'mask'" in text
    assert "no column 'resection_margin', needed by eligibility criterion 'Inclusion 2: R0 resection'" in text


def test_config_sheet_missing(tmp_path):
    with pytest.raises(SheetError, match="config 'samples': file '.*nope.tsv' does not exist"):
        sheets.load_inputs({**CONFIG, "samples": str(tmp_path / "nope.tsv")})


def test_sheet_without_patient_id_column_still_reports_the_rest(tiny_cohort_dir):
    samples, clinical = load(tiny_cohort_dir)
    clinical.loc[0, "dm_event"] = "5"
    with pytest.raises(SheetError) as info:
        validate(tiny_cohort_dir, samples.drop(columns="patient_id"), clinical)
    text = str(info.value)
    assert "sample sheet" in text and "has no column 'patient_id'" in text
    assert "column 'dm_event': 5 is not one of [0, 1]" in text


def test_cli_demo_then_validate(tmp_path, capsys):
    from ctith import cli

    assert cli.main(["demo", "--preset", "tiny", "--n-a", "12", "--n-b", "4", "--seed", "3",
                     "--out", str(tmp_path / "c"), "--quiet"]) == 0
    config = {**CONFIG, "samples": str(tmp_path / "c/samples.tsv"), "clinical": str(tmp_path / "c/clinical.tsv"),
              "crossfit": {"folds": 2}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert cli.main(["validate", "--config", str(tmp_path / "config.yaml")]) == 0
    assert "OK: 16 patients" in capsys.readouterr().out
    (tmp_path / "c/A001/seg_reader1.nii.gz").unlink()
    assert cli.main(["validate", "--config", str(tmp_path / "config.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("SheetError: 1 problem(s)") and "patient A001: mask '" in err


def _config_errors(config):
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(config)]


def test_unknown_config_keys_are_named_with_the_nearest_known_one(tmp_path, capsys):
    from ctith import cli

    assert sheets.config_problems(CONFIG) == []
    bad = {**CONFIG, "sed": 3, "ith": {**CONFIG["ith"], "n_clusters": [2, 3]},
           "crossfit": {"folds": 1}}
    assert sheets.config_problems(bad) == [
        "config key 'sed' is not a ctith setting; did you mean 'seed'?",
        "config 'crossfit.folds': 1 is less than the minimum of 2",
        "config key 'ith.n_clusters' is not a ctith setting; did you mean 'clusters'?",
    ]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    assert cli.main(["validate", "--config", str(tmp_path / "config.yaml")]) == 1
    assert capsys.readouterr().err.startswith("ConfigError: 3 problem(s) in the config:")


def test_config_schema_ith_variants():
    assert _config_errors(CONFIG) == []
    assert all(CONFIG["ith"][k] is None for k in ("feature_smoothing_mm", "feature_smoothing_fraction",
                                                  "pca_components"))  # the paper's method by default
    ok = {**CONFIG, "ith": {**CONFIG["ith"], "feature_smoothing_fraction": 0.08, "pca_components": 0.95}}
    assert _config_errors(ok) == []
    both = {**CONFIG, "ith": {**CONFIG["ith"], "feature_smoothing_mm": 4, "feature_smoothing_fraction": 0.08}}
    assert _config_errors(both)
    assert _config_errors({**CONFIG, "ith": {**CONFIG["ith"], "feature_smoothing_fraction": 1.5}})


def test_each_mask_column_has_its_own_label(tiny_cohort, tmp_path):
    """Reader 1's mask labelled 2 (a multi-label ITK-SNAP file), reader 2's labelled 1: each
    re-delineation job gets its own column's label, falling back to mask_label."""
    import pandas as pd

    from workflow_run import make_workdir, smk

    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str).fillna("")
    both = samples.index[(samples["mask_reader2"] != "") & (samples["mask_reader1_repeat"] != "")][0]
    pid = samples.at[both, "patient_id"]
    samples["mask_label"] = ""
    samples["mask_reader2_label"] = ""
    samples.loc[both, ["mask_label", "mask_reader2_label"]] = ["2", "1"]
    samples.to_csv(tiny_cohort / "samples.tsv", sep="\t", index=False)
    work = make_workdir(tiny_cohort, tmp_path)
    run = smk(work, "-n", "-p", "--cores", "1", "--forceall")
    commands = [line for line in run.stdout.splitlines() if f"--patient-id {pid}" in line]
    reader2 = [c for c in commands if "--reader 2" in c]
    repeat = [c for c in commands if "--repeat" in c]
    ingest = [c for c in commands if "ctith ingest " in c]
    assert reader2 and "--mask-label 1" in reader2[0]
    assert repeat and "--mask-label 2" in repeat[0]
    assert ingest and "--mask-label 2" in ingest[0]
