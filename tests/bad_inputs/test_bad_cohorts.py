"""The bad-input corpus, cohorts and models: a finished run (the shared local run, copied)
meets a cohort the fits or the metrics cannot take, a tampered model, or a patient to
predict whose outcome is filled in. (A training cohort without events is refused when the
sheets are read: test_bad_sheets.py.)"""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
import yaml

from workflow_run import copy_scans, dry_run_jobs, smk

pytestmark = pytest.mark.slow

# Rules that fit something: none may run when only validation outcomes change.
FIT_RULES = {"crossfit_folds", "ith_train_table", "ith_model", "radiomics_train_table", "reproducibility", "harmonize",
             "select", "dl_train", "dl_train_features", "dl_signature", "survival_model", "model_bundle"}


def _copy(local_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(local_run.work, work, symlinks=True)  # keeps mtimes: nothing reruns
    return work


def _sheets(work):
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    clinical = pd.read_csv(work / "cohort/clinical.tsv", sep="\t", dtype=str, keep_default_na=False)
    return samples, clinical


def _write(work, samples, clinical):
    samples.to_csv(work / "cohort/samples.tsv", sep="\t", index=False)
    clinical.to_csv(work / "cohort/clinical.tsv", sep="\t", index=False)


def _cohort(work, name):
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t")
    return split.loc[split["cohort"] == name, "patient_id"].tolist()


def test_validation_cohort_without_events_reports_dashes(local_run, tmp_path):
    """External validation with no DM: every metric that needs an event is '-', the rest
    stand, and no fitted file is redone."""
    work = _copy(local_run, tmp_path)
    samples, clinical = _sheets(work)
    external = _cohort(work, "external_validation")
    clinical.loc[clinical["patient_id"].isin(external), "dm_event"] = "0"
    _write(work, samples, clinical)
    assert not FIT_RULES & {rule for rule, _ in dry_run_jobs(work)}
    smk(work, "--cores", "2")
    s2 = pd.read_csv(work / "results/tables/table_s2.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert (s2["External validation AUC"] == "-").all(), s2
    assert (s2["External validation accuracy"] != "-").all()  # defined without events
    s5 = pd.read_csv(work / "results/tables/table_s5.tsv", sep="\t", dtype=str, keep_default_na=False)
    horizons = [c for c in s5.columns if c.endswith("months")]
    external = s5[s5["Cohort"] == "External validation"]
    assert len(external) and (external[horizons] == "-").all().all(), external
    assert (s5.loc[s5["Cohort"] == "Internal validation", horizons] != "-").any().any()


def test_combat_batch_of_one_patient_is_named(local_run, tmp_path):
    work = _copy(local_run, tmp_path)
    samples, clinical = _sheets(work)
    lonely = _cohort(work, "train")[0]
    samples.loc[samples["patient_id"] == lonely, "scanner"] = "Lonely Scanner 9000"
    _write(work, samples, clinical)
    proc = smk(work, "--cores", "2", "--keep-going", "results/cohort/harmonization.json", check=False)
    assert proc.returncode != 0
    log = (work / "results/logs/harmonize.log").read_text().strip()
    assert log == (f"HarmonizeError: batch 'Lonely Scanner 9000' (scanner) has 1 patient ({lonely}) among "
                   "those ComBat is fitted on; each batch needs at least 2"), log


def test_clinical_variable_constant_in_training_is_noted_not_fatal(local_run, tmp_path):
    """Every patient male: the clinical model's variable selection says so and goes on."""
    work = _copy(local_run, tmp_path)
    samples, clinical = _sheets(work)
    clinical["sex"] = "M"
    _write(work, samples, clinical)
    target = "results/cohort/survival/clinical/model.json"
    smk(work, "--cores", "2", target)
    fitted = json.loads((work / target).read_text())  # penalised (the default): the column is left out
    assert "sex_M" in fitted["penalised"]["constant"] and "sex_M" not in fitted["features"]
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["survival"]["clinical_selection"] = "stepwise"  # the published practice
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    smk(work, "--cores", "2", target)
    selection = {row["variable"]: row for row in json.loads((work / target).read_text())["clinical"]["selection"]}
    assert selection["sex"]["note"] == "one value only in training"
    assert selection["sex"]["passed_univariable"] is False and selection["sex"]["kept"] is False


def _add_predict_patient(work, pid, outcome: bool):
    """A patient to predict, copied from a validation patient's NIfTI files."""
    samples, clinical = _sheets(work)
    donor_id = next(p for p in _cohort(work, "internal_validation")
                    if samples.set_index("patient_id").at[p, "image"].endswith(".nii.gz"))
    donor = samples[samples["patient_id"] == donor_id].iloc[0].copy()
    donor[["cohort", "mask_reader2", "mask_reader1_repeat"]] = ["predict", "", ""]
    donor = copy_scans(work, donor, pid).to_frame().T
    crow = clinical[clinical["patient_id"] == donor_id].copy()
    crow["patient_id"] = pid
    if outcome:
        crow[["dm_event", "dm_time_months"]] = ["1", "12.5"]
    else:
        crow[["dm_event", "dm_time_months"]] = ""
    _write(work, pd.concat([samples, donor]), pd.concat([clinical, crow]))


def test_predict_patient_with_outcome_is_predicted_with_a_warning(local_run, tmp_path):
    work = _copy(local_run, tmp_path)
    _add_predict_patient(work, "NEW02", outcome=True)
    assert not FIT_RULES & {rule for rule, _ in dry_run_jobs(work)}
    smk(work, "--cores", "2", "results/predict/NEW02/prediction.json")
    prediction = json.loads((work / "results/predict/NEW02/prediction.json").read_text())
    assert any(re.search(r"outcome column\(s\) dm_event, dm_time_months .*ignored", w)
               for w in prediction["warnings"]), prediction["warnings"]


def test_tampered_model_file_is_refused(local_run, tmp_path):
    work = _copy(local_run, tmp_path)
    _add_predict_patient(work, "NEW03", outcome=False)
    forest = sorted((work / "results/model_bundle/ith_model").glob("*/model.skops"))[0]
    data = bytearray(forest.read_bytes())
    data[len(data) // 2] ^= 0x01
    forest.write_bytes(bytes(data))
    proc = smk(work, "--cores", "2", "--keep-going", "results/predict/NEW03/prediction.json", check=False)
    assert proc.returncode != 0
    log = (work / "results/logs/predict/NEW03.log").read_text().strip()
    assert len(log.splitlines()) == 1, log
    assert re.search(rf"{forest.parent.name}/model\.skops' does not match", log), log
    assert not (work / "results/predict/NEW03/prediction.json").exists()
