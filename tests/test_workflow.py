"""End-to-end runs of the Snakemake workflow on the tiny demo cohort."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import REPO
from workflow_run import IDENTIFIERS, SNAKEMAKE, copy_scans, dry_run_jobs, make_workdir, outputs_digest, smk

pytestmark = pytest.mark.slow
PATIENT_FILES = ["dl", "image.nii.gz", "ith", "mask.nii.gz", "qc.json", "radiomics", "semantic.json"]


def eligible(work):
    return list(pd.read_csv(work / "results/cohort/eligible.tsv", sep="\t")["patient_id"])


@pytest.fixture
def work(workflow_cohort_dir, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(workflow_cohort_dir, cohort)
    return make_workdir(cohort, tmp_path)


def test_full_run_then_incremental_patient(local_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(local_run.work, work, symlinks=True)  # keeps mtimes: nothing reruns
    truth = pd.read_csv(work / "cohort/truth.tsv", sep="\t", keep_default_na=False)
    n_eligible = int((truth["ineligible_reason"] == "").sum())
    planned_ingest = [w[0] for rule, w in local_run.planned if rule == "ingest"]
    assert len(planned_ingest) == n_eligible == len(set(planned_ingest))
    ids = eligible(work)
    assert sorted(ids) == sorted(planned_ingest)
    for pid in ids:
        assert sorted(p.name for p in (work / "results/patients" / pid).iterdir()) == PATIENT_FILES
        assert sorted(p.name for p in (work / "results/patients" / pid / "ith").iterdir()) == \
            ["habitats.png", "label_maps.npz", "scores.json"]
    ith = pd.read_csv(work / "results/cohort/ith_scores.tsv", sep="\t")
    assert sorted(ith["patient_id"]) == sorted(ids)
    k_cols = [f"ith_k{k}" for k in range(2, 9)]
    assert ith[k_cols].notna().all().all() and ith[k_cols].ge(0).all().all() and ith[k_cols].le(1).all().all()
    assert (work / "results/figures/figure_s6_ith_comparison.png").stat().st_size > 10_000
    qc = pd.read_csv(work / "results/cohort/qc.tsv", sep="\t")
    assert sorted(qc["patient_id"]) == sorted(ids) and (qc["tumour_voxels"] > 0).all()
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t")
    assert set(split["cohort"]) == {"train", "internal_validation", "external_validation"}
    flow = pd.read_csv(work / "results/cohort/eligibility_flow.tsv", sep="\t")
    assert flow["n_after"].iloc[-1] == n_eligible
    check_radiomics_outputs(work, ids)
    check_dl_outputs(work, ids)
    check_ith_model_outputs(work, ids)
    check_survival_outputs(work, ids)
    again = smk(work, "-n", "--cores", "1")
    assert "Nothing to be done" in again.stdout + again.stderr

    check_incremental(work, ids)


# Rules that fit something: a new validation or predict patient must plan none of them.
FIT_RULES = {"crossfit_folds", "ith_train_table", "ith_model", "radiomics_train_table", "reproducibility", "harmonize",
             "select", "dl_train", "dl_train_features", "dl_signature", "survival_model", "model_bundle"}
PER_PATIENT_RULES = {"ingest", "ith", "radiomics", "radiomics_resegmented", "semantic", "dl_input"}


def fitted_files(results: Path) -> dict:
    """sha256 of every fitted file: what no new validation or predict patient may change."""
    import hashlib

    cohort = results / "cohort"
    paths = [*(cohort / "train").iterdir(), *(results / "model_bundle").rglob("*"), *(cohort / "dl").rglob("*.pt"),
             *(cohort / "dl").rglob("training.json"), *(cohort / "dl").rglob("loss.tsv"),
             *(cohort / "dl").rglob("scores.tsv"),
             cohort / "dl/fold_features.tsv", cohort / "dl/dl_f_lasso.tsv", cohort / "dl/dl_f_selection.json",
             cohort / "crossfit_folds.tsv", cohort / "radiomics_icc.tsv", cohort / "combat_estimates.json",
             cohort / "radiomics_signature.tsv", cohort / "radiomics_lasso_cv.tsv", cohort / "radiomics_selection.json",
             *(cohort / "survival").glob("*/model.json")]
    for d in (cohort / "ith_model").iterdir():
        paths += [d / f for f in ("fitted.json", "oof.tsv", "trials.tsv", "model.skops", "shap_values.tsv",
                                  "shap_summary.png", "shap_beeswarm.png")]
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def check_incremental(work, ids):
    """After a full run, one patient to predict and one external-validation patient arrive:
    the dry run plans their per-patient jobs, the prediction and the evaluation, no fit; the
    run leaves every fitted file byte-identical; the prediction equals `ctith predict
    --bundle` on the same scan in a fresh folder; a tampered bundle is refused."""
    from ctith import cli

    results = work / "results"
    before = fitted_files(results)
    assert len(before) > 40 and any(k.endswith("model.skops") for k in before)
    # The bundle leaves the study's data behind: no patient ID in any of its text files.
    for f in (results / "model_bundle").rglob("*"):
        if f.suffix in (".json", ".tsv", ".yaml"):
            text = f.read_text()
            assert not [p for p in ids if p in text], f
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    clinical = pd.read_csv(work / "cohort/clinical.tsv", sep="\t", dtype=str, keep_default_na=False)
    split = pd.read_csv(results / "cohort/split.tsv", sep="\t").set_index("patient_id")["cohort"]
    nifti = samples["image"].str.endswith(".nii.gz") & (samples["image_series_uid"] == "")
    new = {}
    for new_id, donor_cohort, cohort in (("NEW01", "internal_validation", "predict"),
                                         ("B900", "external_validation", "")):
        donor = samples[nifti & samples["patient_id"].map(split).eq(donor_cohort)].iloc[0].copy()
        new[new_id] = donor["patient_id"]
        crow = clinical[clinical["patient_id"] == donor["patient_id"]].copy()
        donor[["mask_reader2", "mask_reader1_repeat"]] = ""
        donor = copy_scans(work, donor, new_id)  # the same scan, another file: same cohort or predict
        donor["cohort"] = cohort
        crow["patient_id"] = new_id
        if cohort == "predict":  # no outcome yet
            crow[["dm_event", "dm_time_months"]] = ""
        samples = pd.concat([samples, donor.to_frame().T])
        clinical = pd.concat([clinical, crow])
    samples.to_csv(work / "cohort/samples.tsv", sep="\t", index=False)
    clinical.to_csv(work / "cohort/clinical.tsv", sep="\t", index=False)

    jobs = {}
    for rule, wildcards in dry_run_jobs(work):
        jobs.setdefault(rule, []).extend(wildcards)
    assert not FIT_RULES & set(jobs), sorted(FIT_RULES & set(jobs))
    for rule in ("ingest", "ith", "radiomics", "dl_input"):
        assert sorted(jobs.pop(rule)) == ["B900", "NEW01"], rule
    assert jobs.pop("semantic") == ["B900"]  # a patient to predict needs no semantic rating table
    assert jobs.pop("predict") == ["NEW01"]
    assert not PER_PATIENT_RULES & set(jobs)
    smk(work, "--cores", "2")
    assert fitted_files(results) == before

    # The predict patient is in no table of the study; the external one is in each.
    for table in ("split.tsv", "ith_scores.tsv", "radscore.tsv", "dl_e.tsv", "ith_signature.tsv"):
        got = set(pd.read_csv(results / "cohort" / table, sep="\t")["patient_id"])
        assert "B900" in got and "NEW01" not in got, table
    prediction = json.loads((results / "predict/NEW01/prediction.json").read_text())
    assert prediction["patient_id"] == "NEW01" and set(prediction["batch"]) == {"scanner"}
    assert set(prediction["survival"]) == set(json.loads((results / "model_bundle/manifest.json").read_text())
                                              ["info"]["survival_models"])
    for s in prediction["survival"].values():
        assert s["risk_group"] in ("high", "low") and all(0 < v <= 1 for v in s["survival"].values())
    assert prediction["bundle"]["artefacts"]["combat_estimates.json"] == before["model_bundle/combat_estimates.json"]
    # The donor is a validation patient scored by the same frozen models in the cohort tables.
    radscore = pd.read_csv(results / "cohort/radscore.tsv", sep="\t").set_index("patient_id")
    assert prediction["signatures"]["rad_score"] == pytest.approx(radscore.at[new["NEW01"], "rad_score"], rel=1e-9)
    ith = pd.read_csv(results / "cohort/ith_signature.tsv", sep="\t").set_index("patient_id")
    assert prediction["signatures"]["ith_signature"] == pytest.approx(ith.at[new["NEW01"], "ith_signature"])
    dl_e = pd.read_csv(results / "cohort/dl_e.tsv", sep="\t").set_index("patient_id")
    assert prediction["signatures"]["dl_e"] == pytest.approx(dl_e.at[new["NEW01"], "dl_e"], abs=1e-5)

    # Another site: the bundle alone, the raw scan and a one-row clinical table.
    site = work.parent / "site"
    shutil.copytree(results / "model_bundle", site / "bundle")
    row = samples[samples["patient_id"] == "NEW01"].iloc[0]
    clinical[clinical["patient_id"] == "NEW01"].assign(scanner=row["scanner"]).to_csv(
        site / "row.tsv", sep="\t", index=False)
    args = ["predict", "--bundle", str(site / "bundle"), "--patient-id", "NEW01",
            "--image", str(work / "cohort" / row["image"]), "--mask", str(work / "cohort" / row["mask"]),
            "--clinical", str(site / "row.tsv"), "--out-dir", str(site / "out")]
    assert cli.main(args) == 0
    assert json.loads((site / "out/prediction.json").read_text()) == prediction
    # One byte changed in a forest: refused, naming the file, before anything is read.
    forest = next((site / "bundle/ith_model").glob("*/model.skops"))
    data = bytearray(forest.read_bytes())
    data[len(data) // 2] ^= 0x01
    forest.write_bytes(bytes(data))
    (site / "out/prediction.json").unlink()
    with pytest.raises(Exception, match=f"{forest.parent.name}/model.skops' does not match"):
        parsed = cli.build_parser().parse_args(args)
        parsed.func(parsed)
    assert not (site / "out/prediction.json").exists()


def check_radiomics_outputs(work, ids):
    """C-radiomics branch: every eligible patient in each table, Table S3 in the paper's form."""
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    reader2 = sorted(set(samples.loc[samples["mask_reader2"] != "", "patient_id"]) & set(ids))
    features = pd.read_csv(work / "results/cohort/radiomics_features.tsv", sep="\t", index_col=0)
    assert sorted(features.index) == sorted(ids) and features.shape[1] == 14 + 93 * 12
    second = pd.read_csv(work / "results/cohort/radiomics_features_reader2.tsv", sep="\t", index_col=0)
    assert sorted(second.index) == reader2
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t")
    train = set(split.loc[split["cohort"] == "train", "patient_id"])
    icc = pd.read_csv(work / "results/cohort/radiomics_icc.tsv", sep="\t")  # a fit: training patients only
    assert len(icc) == features.shape[1] and (icc["n"] == len(set(reader2) & train)).all()
    assert icc.loc[icc["feature"] == "original_shape_VoxelVolume", "icc"].iloc[0] > 0.9
    s3 = pd.read_csv(work / "results/tables/table_s3.tsv", sep="\t", keep_default_na=False)
    assert list(s3.columns)[:3] == ["CECT semantic feature", "ICC", "95% CI"] and len(s3) == 10
    assert (work / "results/tables/table_s3.md").read_text().startswith("| CECT semantic feature | ICC |")
    report = json.loads((work / "results/cohort/harmonization.json").read_text())
    # Mode train, by scanner: fitted on the training patients' three scanners; the external
    # institution's scanners, which training never saw, pass unharmonised (unseen_batch: keep).
    assert report["mode"] == "train" and report["batch_column"] == "scanner"
    assert report["n_fitted"] == len(train)
    assert report["features_in"] == int(icc["reproducible"].sum())
    assert len(report["unharmonised"]) == 1 and "United Imaging" in report["unharmonised"][0]
    estimates = json.loads((work / "results/cohort/combat_estimates.json").read_text())
    train_scanners = set(samples.set_index("patient_id").loc[sorted(train), "scanner"])
    assert estimates["batches"] == sorted(train_scanners) and len(estimates["features"]) == report["features_out"]
    scores = pd.read_csv(work / "results/cohort/radscore.tsv", sep="\t")
    assert sorted(scores["patient_id"]) == sorted(ids) and scores["rad_score"].notna().all()
    folds = pd.read_csv(work / "results/cohort/crossfit_folds.tsv", sep="\t")
    assert sorted(folds["patient_id"]) == sorted(split.loc[split["cohort"] == "train", "patient_id"])
    assert set(folds["fold"]) == {0, 1}
    oof = scores["patient_id"].isin(folds["patient_id"])
    assert (scores.loc[oof, "fit"] == "oof").all() and (scores.loc[~oof, "fit"] == "refit").all()
    assert (scores.loc[~oof, "rad_score"] == scores.loc[~oof, "rad_score_refit"]).all()
    assert set(scores["combat_mode"]) == {"train"}
    signature = pd.read_csv(work / "results/cohort/radiomics_signature.tsv", sep="\t")
    assert len(signature) >= 1 and (signature["coefficient"] != 0).all()
    semantic = pd.read_csv(work / "results/cohort/semantic_features.tsv", sep="\t")
    assert sorted(semantic["patient_id"]) == sorted(ids)


def check_dl_outputs(work, ids):
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t").set_index("patient_id")["cohort"]
    for pid in ids:
        assert np.load(work / f"results/patients/{pid}/dl/input.npy").shape == (3, 224, 224)
    training = json.loads((work / "results/cohort/dl/refit/training.json").read_text())
    train = sorted(split.index[split == "train"])
    assert sorted(training["train_patients"]) == train
    assert training["device"] == "cpu" and training["params"]["base_width"] == 16
    loss = pd.read_csv(work / "results/cohort/dl/refit/loss.tsv", sep="\t")
    assert list(loss["epoch"]) == [1, 2, 3]
    folds = pd.read_csv(work / "results/cohort/crossfit_folds.tsv", sep="\t").set_index("patient_id")["fold"]
    for k in (0, 1):  # one net per cross-fitting fold, trained without that fold
        held = json.loads((work / f"results/cohort/dl/fold{k}/training.json").read_text())
        assert held["held_out_patients"] == sorted(folds.index[folds == k])
        assert sorted(held["train_patients"]) == sorted(folds.index[folds != k])
    dl_e = pd.read_csv(work / "results/cohort/dl_e.tsv", sep="\t")
    dl_f = pd.read_csv(work / "results/cohort/dl_f.tsv", sep="\t")
    assert sorted(dl_e["patient_id"]) == sorted(dl_f["patient_id"]) == sorted(ids)
    assert dl_f.shape[1] == 2 + 64 and dl_e["dl_e"].between(0, 1).all()
    for table in (dl_e, pd.read_csv(work / "results/cohort/dl_f_signature.tsv", sep="\t")):
        assert sorted(table.loc[table["fit"] == "oof", "patient_id"]) == train
        assert sorted(table.loc[table["fit"] == "refit", "patient_id"]) == sorted(set(ids) - set(train))
    gradcam = np.load(work / "results/cohort/dl/gradcam.npz")
    assert sorted(gradcam["patient_id"]) == sorted(split.index[split != "train"])
    for name in ("figure_s3_loss_curve.png", "figure_s5_gradcam.png"):
        assert (work / "results/figures" / name).stat().st_size > 10_000


def check_ith_model_outputs(work, ids):
    s2 = pd.read_csv(work / "results/tables/table_s2.tsv", sep="\t", dtype=str)
    assert list(s2["Cluster numbers"]) == ["2-5", "2", "3", "4", "5", "6", "7", "8"]
    assert (work / "results/tables/table_s2.md").read_text().startswith("| Cluster numbers |")
    signature = pd.read_csv(work / "results/cohort/ith_signature.tsv", sep="\t")
    assert sorted(signature["patient_id"]) == sorted(ids) and signature["ith_signature"].between(0, 1).all()
    assert set(signature.loc[signature["cohort"] == "train", "fit"]) == {"oof"}
    fitted = json.loads((work / "results/cohort/ith_model/k2-5/fitted.json").read_text())
    assert fitted["features"] == ["ith_k2", "ith_k3", "ith_k4", "ith_k5"] and fitted["n_trials"] == 3
    assert (work / "results/cohort/ith_model/k2-5/shap_beeswarm.png").stat().st_size > 5_000


def check_survival_outputs(work, ids):
    """Survival stage: every model fitted on training, every patient predicted, Tables S4
    and S5 in the paper's layout, every figure drawn."""
    import yaml

    config = yaml.safe_load((work / "config.yaml").read_text())
    models = config["survival"]["models"]
    metrics = pd.read_csv(work / "results/cohort/survival/metrics.tsv", sep="\t")
    assert set(metrics["model"]) == {m["label"] for m in models.values()}
    assert set(metrics["cohort"]) == {"train", "internal_validation", "external_validation"}
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t").set_index("patient_id")["cohort"]
    for key, spec in models.items():
        pred = pd.read_csv(work / f"results/cohort/survival/{key}/predictions.tsv", sep="\t")
        assert sorted(pred["patient_id"]) == sorted(ids) and set(pred["risk_group"]) <= {"high", "low"}
        fitted = json.loads((work / f"results/cohort/survival/{key}/model.json").read_text())
        assert fitted["n_train"] == int((split == "train").sum())
        signature = spec["covariates"] != ["clinical"]  # every other source is a cross-fitted signature
        train = pred["cohort"] == "train"
        assert set(pred.loc[train, "covariates"]) == ({"oof"} if signature else {"measured"})
    s4 = pd.read_csv(work / "results/tables/table_s4.tsv", sep="\t", keep_default_na=False)
    assert list(s4["Model"]) == [m["label"] for m in models.values()]
    assert list(s4.columns[1:4]) == ["Internal validation C-index", "Internal validation AUC",
                                     "Internal validation IBS"]
    assert list(s4.columns[-3:]) == ["Training C-index (apparent)", "Training C-index (optimism-corrected)",
                                     "Training calibration slope (optimism-corrected)"]
    diff = pd.read_csv(work / "results/tables/table_s4_differences.tsv", sep="\t", keep_default_na=False)
    assert diff.set_index("Model").loc["Combined"].tolist() == ["0.000 (0.000-0.000)"] * 2
    building = pd.read_csv(work / "results/tables/survival_models.tsv", sep="\t", keep_default_na=False)
    assert list(building["Model"]) == [m["label"] for m in models.values()]
    for key, spec in models.items():  # the default: clinical variables penalised, with their EPV
        fitted = json.loads((work / f"results/cohort/survival/{key}/model.json").read_text())
        assert fitted["selection"] == ("penalised" if "clinical" in spec["covariates"] else "none (signatures only)")
        assert fitted["events_per_variable"]["events"] == fitted["n_train_events"]
    s5 = pd.read_csv(work / "results/tables/table_s5.tsv", sep="\t", keep_default_na=False)
    assert list(s5.columns) == ["Cohort", "Model", "12 months", "24 months", "36 months", "48 months", "60 months"]
    for name in ("survival_km_risk_groups", "survival_td_roc", "survival_calibration", "survival_decision_curves",
                 "figure_s4_shap_summary", "figure_s4_shap_beeswarm"):
        assert (work / f"results/figures/{name}.png").stat().st_size > 5_000, name


def test_the_nets_and_everything_they_wait_for_outrank_the_other_patients_measurements(work):
    """The network's fits are the longest jobs: every job a dl_train job waits for (the training
    patients' ingest and 2.5D input, the cross-fitting folds, the fold nets for the refit)
    ranks at or above the nets, and the nets above the measurements (ITH, C-radiomics,
    semantic), so that the nets start first and train beside them. A job ranked below would
    hold the nets back until every patient is measured (as crossfit_folds once did)."""
    proc = smk(work, "-n", "--cores", "1")
    jobs, producer = [], {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        field = {k: re.search(rf"^\s+{k}: (.*)$", block, re.M) for k in ("input", "output", "priority")}
        job = {"rule": m.group(1), "priority": int(field["priority"].group(1)) if field["priority"] else 0,
               "input": field["input"].group(1).split(", ") if field["input"] else []}
        jobs.append(job)
        for path in field["output"].group(1).split(", ") if field["output"] else []:
            producer[path] = job
    nets = [j for j in jobs if j["rule"] == "dl_train"]
    network_priority = {j["priority"] for j in nets}
    assert len(nets) == 3 and len(network_priority) == 1  # the refit and two fold nets
    upstream, stack = {}, list(nets)
    while stack:
        for path in stack.pop()["input"]:
            if path in producer and id(producer[path]) not in upstream:
                upstream[id(producer[path])] = producer[path]
                stack.append(producer[path])
    low = sorted({(j["rule"], j["priority"]) for j in upstream.values() if j["priority"] < min(network_priority)})
    assert not low, f"jobs the nets wait for, ranked below them: {low}"
    assert {j["rule"] for j in upstream.values()} >= {"ingest", "dl_input", "crossfit_folds", "dl_train"}
    measurements = {j["priority"] for j in jobs if j["rule"] in ("ith", "radiomics", "semantic")}
    assert max(measurements) < min(network_priority)


def test_lint_is_clean(work):
    proc = smk(work, "--lint", check=False)
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.returncode == 0


def _readable_bytes(path: Path) -> list[bytes]:
    """A file's bytes and, for gzip, zip (npz) and PDF, what they hold unpacked."""
    import gzip
    import zipfile
    import zlib

    raw = path.read_bytes()
    out = [raw]
    if raw[:2] == b"\x1f\x8b":
        out.append(gzip.decompress(raw))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            out += [z.read(name) for name in z.namelist()]
    elif raw[:5] == b"%PDF-":
        for stream in re.findall(rb"stream\r?\n(.*?)endstream", raw, flags=re.S):
            try:
                out.append(zlib.decompress(stream))
            except zlib.error:
                pass
    return out


def test_no_header_identifier_reaches_any_output(local_run):
    """The DICOM patients' files carry a name, birth date, IDs, institution and physician
    (conftest stamps them); Table S1's allow-listed fields are read from those headers, and
    not one identifier is in any file the workflow wrote (logs and packed files included)."""
    work = local_run.work
    needles = {v.lower().encode() for v in IDENTIFIERS.values()}
    needles |= {part.lower().encode() for v in IDENTIFIERS.values() for part in re.split(r"[\^ ]", v) if len(part) > 3}
    files = [p for p in work.rglob("*") if p.is_file() and "cohort" not in p.relative_to(work).parts[:1]]
    assert len(files) > 500
    leaks = [(str(p.relative_to(work)), n.decode()) for p in files for blob in _readable_bytes(p)
             for n in needles if n in blob.lower()]
    assert leaks == []
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    dicom = [pid for pid, image in zip(samples["patient_id"], samples["image"])
             if (work / "cohort" / image).is_dir() and (work / "results/patients" / pid / "qc.json").exists()]
    assert dicom
    for pid in dicom:
        acq = json.loads((work / "results/patients" / pid / "qc.json").read_text())["acquisition"]
        assert acq["KVP"] in (100.0, 120.0) and acq["Manufacturer"], pid
    table = pd.read_csv(work / "results/tables/table_s1.tsv", sep="\t", dtype=str).set_index("Parameters")
    assert table.loc["Tube voltage"].str.contains("kV").sum() >= 1


def test_report_holds_every_table_and_figure_and_stays_small(local_run, tmp_path):
    """`snakemake --report` on the finished run: Tables S1-S5 and Figures S1-S6 (Figure S2
    as one thumbnail per patient), the survival figures, the QC, flow, ICC and ComBat tables,
    grouped by stage; captions render without RST errors; a few MB for the whole cohort."""
    report = tmp_path / "report.html"
    proc = smk(local_run.work, "--report", str(report))
    assert not (local_run.work / "results/demo").exists()  # the user's cohort's report builds no demo
    log = proc.stdout + proc.stderr
    assert "ERROR/" not in log and "Undefined substitution" not in log, log[-3000:]
    html = report.read_text()
    wanted = ["table_s1.tsv", "table_s2.tsv", "table_s3.tsv", "table_s4.tsv", "table_s5.tsv",
              "survival_models.tsv", "table_s4_calibration.tsv", "table_s4_differences.tsv",
              "figure_s1_delineation.png", "figure_s3_loss_curve.png", "figure_s4_shap_summary.png",
              "figure_s4_shap_beeswarm.png", "figure_s5_gradcam.png", "figure_s6_ith_comparison.png", "survival_km_risk_groups.png", "survival_td_roc.png",
              "survival_calibration.png", "survival_decision_curves.png", "qc.tsv", "eligibility_flow.tsv",
              "radiomics_icc.tsv", "feature_icc.tsv", "harmonization.json"]
    missing = [name for name in wanted if f"filename={name};" not in html]
    assert not missing, missing
    ids = eligible(local_run.work)
    assert all(f"filename={pid}.png;" in html for pid in ids)  # Figure S2, per patient
    assert "Figure S2, per patient" in html and "filename=habitats.png;" not in html
    for stage in ("1. Cohort and QC", "2. ITH habitats", "5. Deep learning", "6. ITH model", "7. Survival"):
        assert stage in html
    thumbs = list((local_run.work / "results/report/habitats").glob("*.png"))
    assert len(thumbs) == len(ids)
    full = local_run.work / f"results/patients/{ids[0]}/ith/habitats.png"
    thumb = local_run.work / f"results/report/habitats/{ids[0]}.png"
    assert thumb.stat().st_size < full.stat().st_size / 2
    assert report.stat().st_size < 8e6


def test_top_level_snakefile_keeps_the_default_profile(work):
    """`snakemake` in the repository root runs the thin top-level Snakefile (which includes
    workflow/Snakefile): the same jobs, and still the default profile (found through the
    `profiles` link beside it, where Snakemake looks)."""
    proc = smk(work, "-n", "--cores", "1", from_root=True)
    out = proc.stdout + proc.stderr
    assert "Using workflow specific profile profiles/default" in out, out[-2000:]
    assert (REPO / "profiles" / "default" / "config.yaml").samefile(
        REPO / "workflow" / "profiles" / "default" / "config.yaml")
    # The same jobs, the target rule renamed (an include keeps the including file's target).
    jobs = [("all", ()) if job == ("default", ()) else job for job in dry_run_jobs(work, from_root=True)]
    assert len(jobs) > 100 and sorted(jobs) == sorted(dry_run_jobs(work))  # a dry run lists in no fixed order


def test_real_ct_through_the_per_patient_rules(work, real_ct):
    """The real abdominal CT as one more patient (left kidney as the tumour, an eroded copy
    as reader 2's mask): ingest, radiomics for both readers and semantic features run in
    the workflow on real HU, spacing and anatomy."""
    cohort = work / "cohort"
    mask = sitk.ReadImage(str(real_ct.masks["kidney_left"]))
    sitk.WriteImage(sitk.BinaryErode(sitk.Cast(mask, sitk.sitkUInt8), [1, 1, 0]), str(cohort / "real_kidney_r2.nii.gz"))
    samples = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    clinical = pd.read_csv(cohort / "clinical.tsv", sep="\t", dtype=str, keep_default_na=False)
    row = {c: "" for c in samples.columns}
    row.update(patient_id="REAL01", institution="A", image=str(real_ct.image), mask=str(real_ct.masks["kidney_left"]),
               mask_reader2="real_kidney_r2.nii.gz")
    crow = clinical.iloc[0].copy()
    crow["patient_id"] = "REAL01"
    pd.concat([samples, pd.DataFrame([row])]).to_csv(cohort / "samples.tsv", sep="\t", index=False)
    pd.concat([clinical, crow.to_frame().T]).to_csv(cohort / "clinical.tsv", sep="\t", index=False)
    out = work / "results/patients/REAL01"
    targets = [out / "radiomics/features.tsv", out / "radiomics/features_reader2.tsv", out / "semantic.json"]
    smk(work, "--cores", "2", *(str(t.relative_to(work)) for t in targets))
    r1 = pd.read_csv(targets[0], sep="\t", index_col=0)
    r2 = pd.read_csv(targets[1], sep="\t", index_col=0)
    assert r1.shape == r2.shape == (1, 14 + 93 * 12)
    assert r1.at["REAL01", "original_shape_VoxelVolume"] == pytest.approx(5144 * 27.0)
    assert r2.at["REAL01", "original_shape_VoxelVolume"] < r1.at["REAL01", "original_shape_VoxelVolume"]
    semantic = json.loads(targets[2].read_text())
    assert semantic["tumour_voxels"] == 5144 and semantic["enhancement_degree"] is None


def test_ith_variant_reruns_only_the_ith_branch(local_run, tmp_path):
    """Switching on a noise-robust ITH variant and whole-tumour habitats in the config
    reruns the ITH stage and what depends on it, nothing else, and both reach every
    patient's ITH record."""
    import yaml

    work = tmp_path / "work"
    shutil.copytree(local_run.work, work, symlinks=True)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["ith"].update(feature_smoothing_fraction=0.06, feature_smoothing_edge_hu=30, slices="all",
                         connectivity_3d=6)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = {}
    for rule, wildcards in dry_run_jobs(work):
        jobs.setdefault(rule, []).extend(wildcards)
    ids = eligible(work)
    assert sorted(jobs.pop("ith")) == sorted(ids)
    assert len(jobs.pop("ith_model")) == len(jobs.pop("ith_model_predict")) == 8
    with_ith = [m for m, spec in config["survival"]["models"].items() if "ith" in spec["covariates"]]
    assert sorted(jobs.pop("survival_model")) == sorted(jobs.pop("survival_predict")) == sorted(with_ith)
    assert set(jobs) == {"ith_cohort", "ith_train_table", "table_s2", "figure_s6", "survival_report",
                         "report_thumbnails", "model_bundle", "all"}
    smk(work, "--cores", "2", f"results/patients/{ids[0]}/ith/scores.json")
    rec = json.loads((work / f"results/patients/{ids[0]}/ith/scores.json").read_text())
    assert rec["params"]["feature_smoothing_fraction"] == 0.06 and rec["params"]["feature_smoothing_edge_hu"] == 30
    assert rec["feature_smoothing_sigma_px"][0] > 1
    assert rec["params"]["slices"] == "all" and rec["params"]["connectivity_3d"] == 6
    assert rec["tumour_voxels"] > rec["tumour_pixels"] and rec["tumour_slices"] > 1


def test_frozen_split_plans_no_fit(local_run, tmp_path):
    """Freezing the split as docs/new_scans.md advises (split.tsv's cohort column copied into the
    sample sheet) changes no training patient, so it plans no fit: only the tables that show
    how each cohort was decided, and what reads them, run again."""
    work = tmp_path / "work"
    shutil.copytree(local_run.work, work, symlinks=True)
    split = pd.read_csv(work / "results/cohort/split.tsv", sep="\t").set_index("patient_id")["cohort"]
    samples = pd.read_csv(work / "cohort/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert (samples["cohort"] == "").any()
    samples["cohort"] = samples["patient_id"].map(split).fillna(samples["cohort"])
    samples.to_csv(work / "cohort/samples.tsv", sep="\t", index=False)
    planned = {rule for rule, _ in dry_run_jobs(work)}
    assert "split" in planned
    assert not FIT_RULES & planned, sorted(FIT_RULES & planned)
    assert not PER_PATIENT_RULES & planned, sorted(PER_PATIENT_RULES & planned)


def _run_until_killed(work: Path, targets: list, ready, timeout: float = 600.0) -> None:
    """Start Snakemake on ``targets`` and SIGKILL it and every job it started (its whole
    process group: nothing gets to clean up) as soon as ``ready()`` holds; then release
    the workdir's lock, which a killed Snakemake leaves, as docs/reliability.md says to."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([*SNAKEMAKE, "--directory", str(work), "--configfile", str(work / "config.yaml"),
                             "--cores", "2", *targets], cwd=work, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while not ready():
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() - t0 < timeout
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    smk(work, "--unlock")


def test_killed_run_restarts_and_loses_nothing(local_run, tmp_path):
    """SIGKILL in the middle of a per-patient job (radiomics), then of a cohort job
    (radiomics_table, after the first of its three tables was written); each time
    `snakemake --unlock` and the same command finish the work. Every output then equals the uninterrupted
    run's, byte for byte: Snakemake reruns the killed jobs (their outputs are marked
    incomplete) and the atomic writes leave no half-written file, nor a temporary one."""
    work = tmp_path / "work"
    shutil.copytree(local_run.work, work, symlinks=True)
    pid = eligible(work)[0]
    results = work / "results"
    tables = [results / f"cohort/radiomics_features{s}.tsv" for s in ("", "_reader2", "_reader1_repeat")]
    shutil.rmtree(results / f"patients/{pid}/radiomics")
    for path in [*tables, results / f"logs/radiomics/{pid}.log", results / "logs/radiomics_table.log"]:
        path.unlink()
    targets = [str(t.relative_to(work)) for t in tables]
    # The per-patient job: killed a second into its extraction.
    started = {}
    _run_until_killed(work, targets, lambda: (results / f"logs/radiomics/{pid}.log").exists()
                      and time.monotonic() - started.setdefault("t", time.monotonic()) > 1.0)
    assert not (results / f"patients/{pid}/radiomics/features.tsv").exists()
    # The cohort job: killed once its first table is in place and before the last one.
    _run_until_killed(work, targets, lambda: tables[0].exists())
    assert not tables[2].exists()
    smk(work, "--cores", "2", *targets)
    digest = outputs_digest(results)
    assert sorted(digest) == sorted(local_run.digest)  # no temporary file left, nothing missing
    assert [f for f in digest if digest[f] != local_run.digest[f]] == []
