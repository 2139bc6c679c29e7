import pandas as pd
import pytest
import yaml

from ctith.cohort.eligibility import apply_criteria, eligible_ids, passes
from ctith.errors import InputError
from ctith.io import read_table
from ctith.cohort.sheets import validate_inputs
from ctith.cohort.split import assign_cohorts
from conftest import REPO

CRITERIA = yaml.safe_load((REPO / "config.yaml").read_text())["eligibility"]["criteria"]


def frame(**cols):
    return pd.DataFrame(cols, index=[f"P{i}" for i in range(len(next(iter(cols.values()))))])


def test_tests_and_blank_values():
    df = frame(h=["RLMS", "RLPS", "UPS", ""], d=["3", "20", "14", ""], f=[0, 1, "0.0", None])
    assert list(passes(df, {"name": "h", "column": "h", "keep_if": {"in": ["RLMS", "RLPS"]}})) == [True, True, False, False]
    assert list(passes(df, {"name": "d", "column": "d", "keep_if": {"lt": 15}})) == [True, False, True, False]
    assert list(passes(df, {"name": "f", "column": "f", "keep_if": {"eq": 0}})) == [True, False, True, False]
    assert list(passes(df, {"name": "c", "columns": ["h", "d"], "keep_if": {"complete": True}})) == [True, True, True, False]


def test_flow_counts_each_patient_once():
    df = frame(h=["RLMS", "UPS", "RLPS", "UPS", "RLPS"], m=["R0", "R0", "R1", "R1", "R0"])
    inst = pd.Series(["A", "A", "B", "B", "B"], index=df.index)
    crit = [{"name": "histology", "column": "h", "keep_if": {"in": ["RLMS", "RLPS"]}},
            {"name": "R0", "column": "m", "keep_if": {"eq": "R0"}}]
    res = apply_criteria(df, inst, crit)
    assert list(res.eligible["patient_id"]) == ["P0", "P4"]
    assert list(res.flow["n_removed"]) == [0, 2, 1]
    assert list(res.flow["removed_B"]) == [0, 1, 1]
    assert list(res.flow["n_after"]) == [5, 3, 2]
    p3 = res.excluded.set_index("patient_id").loc["P3"]
    assert p3["reason"] == "histology" and p3["all_failed"] == "histology; R0"
    assert eligible_ids(df, inst, crit) == ["P0", "P4"]


def test_demo_cohort_exclusions_match_the_truth(tiny_cohort_dir):
    samples, clinical = read_table(tiny_cohort_dir / "samples.tsv"), read_table(tiny_cohort_dir / "clinical.tsv")
    truth = read_table(tiny_cohort_dir / "truth.tsv").set_index("patient_id")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    inputs = validate_inputs(samples, clinical, config, str(tiny_cohort_dir / "samples.tsv"), "c.tsv")
    res = apply_criteria(inputs.clinical, inputs.samples["institution"], CRITERIA)
    planted = set(truth.index[truth["ineligible_reason"] != ""])
    assert set(res.excluded["patient_id"]) == planted
    assert res.flow["n_after"].iloc[-1] == len(samples) - len(planted)


def patients(n_a=40, n_b=20, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = [f"A{i:03d}" for i in range(n_a)] + [f"B{i:03d}" for i in range(n_b)]
    return pd.DataFrame({"patient_id": ids, "institution": ["A"] * n_a + ["B"] * n_b,
                         "cohort": "", "event": (rng.random(n_a + n_b) < 0.3).astype(int)})


def test_split_is_stratified_seeded_and_order_free():
    df = patients()
    out = assign_cohorts(df, ["A"], ["B"], 0.7, seed=1).set_index("patient_id")
    assert (out.loc[out.institution == "B", "cohort"] == "external_validation").all()
    a = out[out.institution == "A"]
    assert (a["cohort"] == "train").sum() == 28 and (a["cohort"] == "internal_validation").sum() == 12
    ev = df.set_index("patient_id")["event"]
    rate = a.groupby("cohort").apply(lambda g: ev[g.index].mean())
    assert abs(rate["train"] - rate["internal_validation"]) < 0.1
    shuffled = assign_cohorts(df.sample(frac=1.0, random_state=3), ["A"], ["B"], 0.7, seed=1)
    assert shuffled.set_index("patient_id")["cohort"].equals(out["cohort"])
    other = assign_cohorts(df, ["A"], ["B"], 0.7, seed=2).set_index("patient_id")
    assert not other["cohort"].equals(out["cohort"])


def test_sheet_cohorts_are_kept_and_unknown_institutions_fail():
    df = patients(10, 4)
    df.loc[0, "cohort"] = "external_validation"
    df.loc[1, "cohort"] = "predict"
    out = assign_cohorts(df, ["A"], ["B"], 0.7, seed=0).set_index("patient_id")
    assert out.loc["A000", "cohort"] == "external_validation" and out.loc["A000", "assigned_by"] == "sample sheet"
    assert out.loc["A001", "cohort"] == "predict"
    df.loc[5, "institution"] = "C"
    with pytest.raises(InputError, match="patient A005: institution 'C' is in neither"):
        assign_cohorts(df, ["A"], ["B"], 0.7, seed=0)


def test_training_sheets_hold_the_training_rows_only(tiny_cohort_dir, tmp_path):
    """What every fit reads of the sheets: the training rows, the clinical table as written
    (the user's column names), the sample sheet without its file paths; patients to predict
    are in none of the study's tables."""
    import os

    from ctith.io import write_tsv_if_changed
    from ctith.cohort.sheets import PATH_COLUMNS, predict_patients, study_inputs
    from ctith.cohort.split import split_cohorts, training_sheets

    samples = read_table(tiny_cohort_dir / "samples.tsv")
    clinical = read_table(tiny_cohort_dir / "clinical.tsv")
    samples.loc[samples.index[-1], "cohort"] = "predict"
    new = samples.at[samples.index[-1], "patient_id"]
    clinical.loc[clinical["patient_id"] == new, ["dm_event", "dm_time_months"]] = ""
    config = {"clinical_columns": {}, "eligibility": {"criteria": []}}
    inputs = validate_inputs(samples, clinical, config, str(tiny_cohort_dir / "samples.tsv"),
                             str(tiny_cohort_dir / "clinical.tsv"), check_files=False)
    assert predict_patients(inputs) == [new]
    study = study_inputs(inputs)
    assert new not in study.samples.index and new not in study.clinical.index
    split = split_cohorts(study.samples, study.clinical, study.samples.index, ["A"], ["B"], 0.7, 3)
    assert new not in set(split["patient_id"])
    sheets = training_sheets(split, study.samples, clinical, "patient_id", PATH_COLUMNS)
    train = sorted(split.loc[split["cohort"] == "train", "patient_id"])
    assert sheets["split"]["patient_id"].tolist() == train and set(sheets["split"]["cohort"]) == {"train"}
    assert sheets["clinical"]["patient_id"].tolist() == train
    assert list(sheets["clinical"].columns) == list(clinical.columns)
    assert not set(PATH_COLUMNS) & set(sheets["samples"].columns)
    # Freezing the split (its cohort column copied into the sample sheet) leaves every
    # training sheet as it was: a fit reads nothing of how a cohort was decided.
    frozen_samples = study.samples.copy()
    frozen_samples["cohort"] = split.set_index("patient_id")["cohort"].reindex(frozen_samples.index)
    frozen = split_cohorts(frozen_samples, study.clinical, study.samples.index, ["A"], ["B"], 0.7, 3)
    assert (frozen["assigned_by"] == "sample sheet").all() and (split["assigned_by"] == "split").any()
    refrozen = training_sheets(frozen, frozen_samples, clinical, "patient_id", PATH_COLUMNS)
    for name, table in sheets.items():
        pd.testing.assert_frame_equal(refrozen[name], table, obj=name)
    # Written only when the content changes: the file's time says when its content did.
    path = tmp_path / "train_split.tsv"
    assert write_tsv_if_changed(sheets["split"], path)
    os.utime(path, (1_000_000, 1_000_000))
    assert not write_tsv_if_changed(sheets["split"].copy(), path) and path.stat().st_mtime == 1_000_000
    assert write_tsv_if_changed(sheets["split"].iloc[1:], path)
    assert pd.read_csv(path, sep="\t", dtype=str)["patient_id"].tolist() == train[1:]


def test_paper_preset_splits_as_the_paper(tmp_path):
    """The paper's 274 analysed patients: 142 training, 31 internal validation (Table S2's
    accuracies are multiples of 1/31) and 101 external. The preset's sheets go through the
    same validation, eligibility and split as the workflow's, with the default config;
    no image is rendered."""
    from ctith.demo.patients import simulate_cohort
    from ctith.io import write_tsv
    from ctith.cohort.split import split_cohorts

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    specs, clinical = simulate_cohort("paper", seed=config["seed"])
    samples = pd.DataFrame({"patient_id": [s.patient_id for s in specs],
                            "institution": [s.institution for s in specs], "cohort": "",
                            "image": [f"{s.patient_id}/venous.nii.gz" for s in specs],
                            "mask": [f"{s.patient_id}/seg_reader1.nii.gz" for s in specs]})
    write_tsv(samples, tmp_path / "samples.tsv")
    write_tsv(clinical, tmp_path / "clinical.tsv")
    inputs = validate_inputs(read_table(tmp_path / "samples.tsv"), read_table(tmp_path / "clinical.tsv"),
                             config, str(tmp_path / "samples.tsv"), str(tmp_path / "clinical.tsv"),
                             check_files=False)
    eligible = eligible_ids(inputs.clinical, inputs.samples["institution"], config["eligibility"]["criteria"])
    assert len(eligible) == 274 < len(specs)  # each institution's excluded patients come on top
    s = config["split"]
    split = split_cohorts(inputs.samples, inputs.clinical, eligible, s["internal_institutions"],
                          s["external_institutions"], s["train_fraction"], config["seed"])
    assert split["cohort"].value_counts().to_dict() == {"train": 142, "external_validation": 101,
                                                        "internal_validation": 31}
