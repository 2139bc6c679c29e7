# Sample-sheet helpers and input functions. Parse-time work stays cheap: every cluster
# job re-parses the Snakefile, so nothing here reads images.
import json
import os
import re
import shlex
import sys

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ctith.errors import ConfigError, SheetError
from ctith.io import read_table, write_tsv_if_changed
from ctith.cohort.sheets import PATH_COLUMNS, check_config, predict_patients, results_owner, results_owner_problem
from ctith.cohort.preflight import preflight
from ctith.cohort.split import training_sheets


try:
    check_config(config)  # one line per problem, an unknown key named with its nearest known one
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, schema="../schemas/config.schema.yaml")  # fills the schema's defaults

# The repository root, two folders above this file: whichever Snakefile is the main one
# (the top-level one, or workflow/Snakefile given with --snakefile).
REPOSITORY = os.path.dirname(os.path.dirname(str(workflow.current_basedir)))
# For the envs' post-deploy script (envs/install-ctith.sh): under --sdm conda each env
# installs this repository's ctith package, found through this variable.
os.environ.setdefault("CTITH_SOURCE", REPOSITORY)


wildcard_constraints:
    patient=r"[A-Za-z0-9][A-Za-z0-9_-]*",

# Jobs run highest priority first. The network's fits are the longest jobs and need only the
# training patients' 2.5D inputs: those patients are ingested and their inputs made first, so
# the nets train beside the other patients' measurements and no run ends waiting on them
# alone (on 16 cores, a paper-size net takes as long as the whole per-patient phase).
# Otherwise a patient's measurements run before the next patient is ingested: each finished
# patient is then complete on disk, and the queue of ready jobs stays short (Snakemake stats
# the input files of every ready job at every scheduling round, which with all patients'
# jobs ready at once took half a core on the demo).
PATIENT_PRIORITY = 1
NETWORK_PRIORITY = 2
TRAINING_INPUT_PRIORITY = 3


def training_first(otherwise):
    """The priority of ingest and dl_input: a training patient's before the nets, another's
    ``otherwise``."""

    def priority(wildcards):
        return TRAINING_INPUT_PRIORITY if wildcards.patient in TRAIN_SET else otherwise

    return priority


def stop_rescheduling_timers():
    """Stop the scheduler's pending re-evaluation timers once the run is over. Snakemake starts
    one (a non-daemon threading.Timer of max-jobs-per-timespan's span) after every scheduling
    loop, and the process waits for the last of them before it exits: up to a timespan of
    idling after the last job (the default profile's 60 s). Nothing else runs on such timers."""
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def _build_demo_if_needed():
    """Default run: build the synthetic demo cohort once, when its sheet is missing. True
    when the run is on the demo cohort."""
    demo = config["demo"]
    sheet = os.path.join(demo["out_dir"], "samples.tsv")
    if demo["generate"] and os.path.normpath(config["samples"]) == os.path.normpath(sheet):
        if not os.path.exists(sheet):
            from ctith.demo.synthetic import write_cohort

            print(f"Building the demo cohort ({demo['preset']}) in {demo['out_dir']} ...", file=sys.stderr)
            write_cohort(demo["out_dir"], demo["preset"], demo["seed"],
                         n_jobs=max(1, min(workflow.cores or 1, os.cpu_count() or 1)))
        return True
    return False


# A results folder belongs to one cohort: a rerun or report without the user's --configfile
# would otherwise build the demo and write the demo's sheets over the cohort's. The first
# run that executes jobs records it (onstart: not a dry run, which a user may repeat while
# fixing the sheets).
OWNER_RECORD = "results/cohort/sheets.json"


def record_results_owner():
    if not os.path.exists(OWNER_RECORD):
        os.makedirs(os.path.dirname(OWNER_RECORD), exist_ok=True)
        with open(OWNER_RECORD, "w") as fh:
            json.dump(results_owner(config), fh, indent=1)


_owner_problem = results_owner_problem(OWNER_RECORD, config)
if _owner_problem:
    raise WorkflowError(_owner_problem)
ON_DEMO = _build_demo_if_needed()
# The sheets, the study's rows and eligible patients, and what the institutions and the
# cross-fitting folds make of the split: all said at once before any job, as `ctith
# validate` says it.
try:
    PREFLIGHT = preflight(config)
except SheetError as exc:
    raise WorkflowError(str(exc)) from None
if PREFLIGHT.problems:
    raise WorkflowError(str(SheetError(PREFLIGHT.problems)))
INPUTS, ELIGIBLE, STUDY_CHECK = PREFLIGHT.inputs, PREFLIGHT.eligible, PREFLIGHT.check
# The schema contract, in Snakemake's own terms (the checks above already passed).
validate(INPUTS.samples.replace("", None), schema="../schemas/samples.schema.yaml")
SAMPLES = INPUTS.samples
# Patients to predict (cohort `predict`) stay out of the study: its eligibility, split, fits
# and tables. The frozen models score them one by one.
PREDICT = predict_patients(INPUTS)
if workflow.is_main_process:  # not again in every cluster job's parse
    for line in STUDY_CHECK.warnings:
        print(f"warning: {line}", file=sys.stderr)


def _write_sheets():
    """The split, made now from the sheets (the `split` rule writes the same table for the
    report), and two views of the sheets, written under results/cohort/ only when their
    content changes:
    - study/: the sheets' rows but patients to predict, as written. Every cohort table
      reads these, so a patient to predict reruns none of them.
    - train/: the training patients' rows (the sample sheet without file paths). Every fit
      reads these and the training patients' own files, nothing else: a new validation or
      predict patient plans no fit, and a changed training row refits what it must."""
    split = STUDY_CHECK.split
    samples_raw = read_table(config["samples"])
    study = ~samples_raw["patient_id"].str.strip().isin(PREDICT)
    sheets = {f"train/{k}": v for k, v in
              training_sheets(split, SAMPLES, CLINICAL_RAW, CLINICAL_ID, PATH_COLUMNS).items()}
    sheets["study/samples"] = samples_raw.loc[study]
    # Only the study's patients: a clinical row without a sample-sheet row is in no study
    # table, so giving it one later as a patient to predict reruns no cohort rule.
    study_ids = samples_raw.loc[study, "patient_id"].str.strip()
    sheets["study/clinical"] = CLINICAL_RAW.loc[CLINICAL_RAW[CLINICAL_ID].str.strip().isin(study_ids)]
    for name, table in sheets.items():
        write_tsv_if_changed(table, f"results/cohort/{name}.tsv")
    return split


CLINICAL_RAW = read_table(config["clinical"])  # as the user wrote it
CLINICAL_ID = config["clinical_columns"]["patient_id"]
TRAIN_SHEETS = {name: f"results/cohort/train/{name}.tsv" for name in ("split", "samples", "clinical")}
STUDY_SHEETS = {name: f"results/cohort/study/{name}.tsv" for name in ("samples", "clinical")}
SPLIT = _write_sheets()


def _check_ingested_scans():
    """One scan under two patients in different cohorts, among the scans ingested in earlier
    runs (their qc.json's pixel digests): stop before anything runs. Scans ingested in this
    run are checked by the qc_table rule, before any validation table."""
    from ctith.cohort.scan_identity import same_scans, same_scans_error

    records = []
    for pid in ELIGIBLE:
        path = f"results/patients/{pid}/qc.json"
        if os.path.exists(path):
            with open(path) as fh:
                records.append(json.load(fh))
    errors, _ = same_scans(records, dict(zip(SPLIT["patient_id"], SPLIT["cohort"])))
    if errors:
        raise WorkflowError(same_scans_error(errors))


_check_ingested_scans()
TRAIN = SPLIT.loc[SPLIT["cohort"] == "train", "patient_id"].tolist()
TRAIN_SET = set(TRAIN)


def sample(patient, column):
    return SAMPLES.at[patient, column]


def ingest_inputs(wildcards):
    return {"image": sample(wildcards.patient, "image"), "mask": sample(wildcards.patient, "mask")}


def ingest_options(wildcards):
    """Per-patient options of `ctith ingest`, from the sheet and the config."""
    opts = []
    uid = sample(wildcards.patient, "image_series_uid")
    if uid:
        opts += ["--series-uid", str(uid)]
    label = sample(wildcards.patient, "mask_label") or config["ingest"]["mask_label"]
    if label:
        opts += ["--mask-label", str(int(label))]
    return " ".join(opts)


def predict_row(wildcards):
    """A patient to predict: its clinical row as written, the sample sheet's columns (but file
    paths) beside, as JSON for `ctith predict --clinical-row`."""
    row = CLINICAL_RAW.loc[CLINICAL_RAW[CLINICAL_ID].str.strip() == wildcards.patient].iloc[0].to_dict()
    sheet = SAMPLES.loc[wildcards.patient].drop(labels=list(PATH_COLUMNS)).to_dict()
    return shlex.quote(json.dumps({**sheet, **row}, sort_keys=True))


def eligible_files(pattern):
    return expand(pattern, patient=ELIGIBLE)


def train_files(pattern):
    """The training patients' files: all that a fit reads of the per-patient stages."""
    return expand(pattern, patient=TRAIN)


def sheet_options():
    """The study's sheets and how to read them, for cohort-level subcommands."""
    return "--samples {} --clinical {} --clinical-columns {} --criteria {}".format(
        *(shlex.quote(str(x)) for x in (
            STUDY_SHEETS["samples"],
            STUDY_SHEETS["clinical"],
            json.dumps(config["clinical_columns"]),
            json.dumps(config["eligibility"]["criteria"]),
        ))
    )


# Opt-in noise-robust ITH variants (config ith:, null = the published method).
ITH_VARIANTS = ("feature_smoothing_mm", "feature_smoothing_fraction", "feature_smoothing_edge_hu", "pca_components")


def ith_options():
    """`ctith ith` options from the config's ith section (clusters are passed apart)."""
    c = config["ith"]
    return (
        f"--window {c['window']} --padding {c['padding']} --border {c['border']}"
        f" --bin-width {c['bin_width']} --feature-classes {' '.join(c['feature_classes'])}"
        f" --n-init {c['n_init']} --min-region-pixels {c['min_region_pixels']}"
        f" --connectivity {c['connectivity']} --on-small-tumour {c['on_small_tumour']}"
        f" --seed {config['seed']}"
        + "".join(f" --{key.replace('_', '-')} {c[key]}" for key in ITH_VARIANTS if c.get(key) is not None)
        # Whole-tumour habitats; the published slice adds nothing, so its commands stay as they were.
        + (f" --slices all --connectivity-3d {c['connectivity_3d']}" if c.get("slices") == "all" else "")
    )


# Re-delineations (Appendix 3) -> their sample-sheet column: reader 2 (inter-observer
# ICC) and reader 1 weeks later (intra-observer ICC).
RESEGMENTATIONS = {"reader2": "mask_reader2", "reader1_repeat": "mask_reader1_repeat"}


def resegmented_files(pattern, reading, patients=None):
    """Per-patient files of the patients (default: every eligible one) the sheet gives
    that re-delineation (``reading``: a key of RESEGMENTATIONS) for."""
    return expand(pattern, patient=[p for p in (ELIGIBLE if patients is None else patients)
                                    if sample(p, RESEGMENTATIONS[reading])], reading=reading)


# The feature ICC is a fitted filter: on training patients only (the default) it is a fit
# of the training data; with validation cohorts in reproducibility.icc_cohorts, adding
# such a patient refits it and everything after it.
ICC_TABLES = ("results/cohort/train" if set(config["reproducibility"]["icc_cohorts"]) <= {"train"}
              else "results/cohort")


def resegmented_mask(wildcards):
    return sample(wildcards.patient, RESEGMENTATIONS[wildcards.reading])


def resegmented_options(wildcards):
    """--reader 2, or reader 1's --repeat, and the mask's label: its own column's
    (mask_reader2_label, mask_reader1_repeat_label), else reader 1's (mask_label), else
    the config's."""
    reader = "--reader 2" if wildcards.reading == "reader2" else "--reader 1 --repeat"
    column = RESEGMENTATIONS[wildcards.reading]
    label = (sample(wildcards.patient, f"{column}_label") or sample(wildcards.patient, "mask_label")
             or config["ingest"]["mask_label"])
    return f"{reader} --mask-label {int(label)}" if label else reader


# The intra-observer ICC joins the feature filter when patients of the ICC's cohorts have a
# repeat delineation by reader 1.
ICC_REPEATS = resegmented_files("{patient}", "reader1_repeat",
                                SPLIT.loc[SPLIT["cohort"].isin(config["reproducibility"]["icc_cohorts"]), "patient_id"])


def harmonize_fit_inputs(wildcards):
    """What ComBat is fitted on: the training patients (mode train) or everyone (mode
    transductive)."""
    if config["harmonize"]["mode"] == "train":
        return {"features": "results/cohort/train/radiomics_features.tsv", "split": TRAIN_SHEETS["split"],
                "samples": TRAIN_SHEETS["samples"], "clinical": TRAIN_SHEETS["clinical"]}
    return {"features": "results/cohort/radiomics_features.tsv", "split": "results/cohort/split.tsv",
            "samples": STUDY_SHEETS["samples"], "clinical": STUDY_SHEETS["clinical"]}


def harmonize_fit_clinical():
    return clinical_options(harmonize_fit_inputs(None)["clinical"])


def radiomics_params_file():
    """The pyradiomics parameter file: as given, or else in the repository (the default
    ships with the workflow; a run in another --directory still finds it)."""
    path = config["radiomics"]["params"]
    if not os.path.isabs(path) and not os.path.exists(path):
        # Shipped paths in config.yaml are relative to the repository root, above workflow/.
        shipped = os.path.join(REPOSITORY, path)
        if os.path.exists(shipped):
            return shipped
    return path


def radiomics_settings():
    c = config["radiomics"]
    opts = f"--bin-width {c['bin_width']}"
    if c["resampled_spacing"]:
        opts += " --resampled-spacing " + " ".join(str(s) for s in c["resampled_spacing"])
    return opts


def radiomics_options():
    return f"--params {shlex.quote(radiomics_params_file())} {radiomics_settings()}"


def ingest_settings():
    c = config["ingest"]
    return (f"--orientation {c['orientation'] or 'none'} --tolerance-mm {c['geometry_tolerance_mm']}"
            f" --direction-tolerance {c['direction_tolerance']}")


def bundle_stages():
    """The per-patient stages' options, as the rules pass them: a bundle processes a new
    site's scan exactly as the study's were (per-patient options such as a series UID
    come with the scan)."""
    return {"ingest": ingest_settings(),
            "ith": f"--clusters {' '.join(map(str, config['ith']['clusters']))} {ith_options()}",
            "radiomics": radiomics_settings(),
            "dl_input": f"--params {shlex.quote(json.dumps(config['dl_input']))}"}


def semantic_inputs(wildcards):
    files = {"image": f"results/patients/{wildcards.patient}/image.nii.gz",
             "mask": f"results/patients/{wildcards.patient}/mask.nii.gz"}
    plain = sample(wildcards.patient, "plain_ct")
    if plain:
        files["plain_ct"] = plain
    return files


def semantic_options(wildcards):
    opts = ["--params", shlex.quote(json.dumps(config["semantic"]))]
    plain = sample(wildcards.patient, "plain_ct")
    if plain:
        opts += ["--plain-ct", shlex.quote(plain)]
        uid = sample(wildcards.patient, "plain_ct_series_uid")
        if uid:
            opts += ["--plain-series-uid", str(uid)]
        # The venous source, for its DICOM frame of reference (not an input file: the
        # ingested image stands for it, and its header is read only to compare).
        opts += ["--image-source", shlex.quote(sample(wildcards.patient, "image"))]
        uid = sample(wildcards.patient, "image_series_uid")
        if uid:
            opts += ["--image-series-uid", str(uid)]
    return " ".join(opts)


def clinical_options(path=None):
    """--clinical and its column map: the study's rows of the clinical table, or (for a fit)
    the training rows, TRAIN_SHEETS["clinical"]."""
    return "--clinical {} --clinical-columns {}".format(
        shlex.quote(path or STUDY_SHEETS["clinical"]), shlex.quote(json.dumps(config["clinical_columns"])))


def dl_train_params():
    """TrainParams fields of the config's dl section (device and seed are passed apart)."""
    keep = ("depth", "base_width", "head_hidden", "dropout", "epochs", "min_epochs", "patience", "batch_size",
            "lr", "weight_decay", "inner_val_fraction", "augment", "precision")
    return shlex.quote(json.dumps({k: config["dl"][k] for k in keep}))


# The network's fits: the refit on every training patient and one net per cross-fitting fold,
# the shared folds merged into dl.crossfit_folds (at most crossfit.folds).
DL_CROSSFIT_FOLDS = min(config["dl"]["crossfit_folds"] or config["crossfit"]["folds"], config["crossfit"]["folds"])
DL_FITS = ["refit"] + [f"fold{k}" for k in range(DL_CROSSFIT_FOLDS)]
DL_FIT_PATTERN = "refit|fold[0-9]+"


def dl_fit_files(name, folds_only=False):
    return [f"results/cohort/dl/{fit}/{name}" for fit in DL_FITS if not (folds_only and fit == "refit")]


def dl_train_inputs(wildcards):
    """A fold net's: the folds. The refit's: the fold nets' records, whose kept epochs it stops at
    (dl.refit_epochs: fold_median), so that its DL_E of validation patients and the fold nets'
    out-of-fold DL_E share one scale."""
    if wildcards.fit != "refit":
        return {"folds": "results/cohort/crossfit_folds.tsv"}
    if config["dl"]["refit_epochs"] == "fold_median":
        return {"fold_training": dl_fit_files("training.json", folds_only=True)}
    return {}


def dl_fold_option(wildcards, input):
    if wildcards.fit == "refit":
        return f"--stop-epoch-from {' '.join(input.fold_training)}" if "fold_training" in input.keys() else ""
    return f"--folds {input.folds} --fold {wildcards.fit[len('fold'):]}"


def dl_crossfit_option(wildcards):
    """A fold net's merged folds: a params function of the wildcards only, so that a changed
    dl.crossfit_folds retrains the fold nets (and not the refit)."""
    return "" if wildcards.fit == "refit" else f"--crossfit-folds {DL_CROSSFIT_FOLDS}"


def ith_model_name(clusters):
    """k2-5 for consecutive K, k2_4_6 otherwise, k3 for one K."""
    ks = sorted(clusters)
    if len(ks) == 1:
        return f"k{ks[0]}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"k{ks[0]}-{ks[-1]}"
    return "k" + "_".join(map(str, ks))


ITH_MODEL = ith_model_name(config["ith_model"]["clusters"])
ITH_MODELS = {ITH_MODEL: sorted(config["ith_model"]["clusters"])}
ITH_MODELS.update({ith_model_name([k]): [k] for k in config["ith_model"]["single_clusters"]})
ITH_MODEL_PATTERN = "|".join(re.escape(m) for m in ITH_MODELS)


def ith_model_files(name):
    return [f"results/cohort/ith_model/{m}/{name}" for m in ITH_MODELS]


def ith_model_options(wildcards):
    c = config["ith_model"]
    return (f"--clusters {' '.join(map(str, ITH_MODELS[wildcards.model]))} --n-trials {c['n_trials']}"
            f" --smote-k {c['smote_k']} --space {shlex.quote(json.dumps(c['space']))}"
            f" --seed {config['seed']}")


# Survival stage: one Cox model per key of survival.models.
SURVIVAL_MODELS = config["survival"]["models"]
SURVIVAL_MODEL_PATTERN = "|".join(re.escape(m) for m in SURVIVAL_MODELS)
SIGNATURE_FILES = {"ith": "results/cohort/ith_signature.tsv", "radscore": "results/cohort/radscore.tsv",
                   "dl_e": "results/cohort/dl_e.tsv", "dl_f": "results/cohort/dl_f_signature.tsv"}
# The training patients' signatures (out-of-fold), from the fits: all a Cox model is fitted on.
TRAIN_SIGNATURE_FILES = {"ith": f"results/cohort/ith_model/{ITH_MODEL}/oof.tsv",
                         "radscore": "results/cohort/train/radscore.tsv", "dl_e": "results/cohort/train/dl_e.tsv",
                         "dl_f": "results/cohort/train/dl_f_signature.tsv"}
for _key in ("figure_model", "clinical_model"):
    if config["survival"][_key] not in SURVIVAL_MODELS:
        raise WorkflowError(f"config survival.{_key}: '{config['survival'][_key]}' is not a key of survival.models "
                            f"({', '.join(SURVIVAL_MODELS)})")
if "clinical" not in SURVIVAL_MODELS[config["survival"]["clinical_model"]]["covariates"]:
    raise WorkflowError("config survival.clinical_model: Figure S4 explains the clinical model; its covariates "
                        "must include 'clinical'")


def survival_model_inputs(wildcards):
    """The fit's inputs: the training rows of the sheets and the training signatures."""
    sources = SURVIVAL_MODELS[wildcards.model]["covariates"]
    folds = {"folds": "results/cohort/crossfit_folds.tsv"} if "clinical" in sources else {}
    return {"split": TRAIN_SHEETS["split"], "clinical": TRAIN_SHEETS["clinical"], **folds,
            **{s: TRAIN_SIGNATURE_FILES[s] for s in sources if s in TRAIN_SIGNATURE_FILES}}


def survival_predict_inputs(wildcards):
    """Every patient's signatures, the fitted model, and the QC table: no validation metric
    while one scan sits in two cohorts (qc_table's check)."""
    sources = SURVIVAL_MODELS[wildcards.model]["covariates"]
    return {"split": "results/cohort/split.tsv", "clinical": STUDY_SHEETS["clinical"], "qc": "results/cohort/qc.tsv",
            "model": f"results/cohort/survival/{wildcards.model}/model.json",
            **{s: SIGNATURE_FILES[s] for s in sources if s in SIGNATURE_FILES}}


def survival_model_options(wildcards, input):
    """The options that name input files (signature tables, folds). Snakemake does not track
    params that are functions of ``input`` for reruns: the settings are in
    ``survival_model_settings``."""
    m = SURVIVAL_MODELS[wildcards.model]
    signatures = " ".join(f"{src}={input[src]}" for src in m["covariates"] if src in SIGNATURE_FILES)
    return ((f"--signatures {signatures}" if signatures else "")
            + (f" --folds {input.folds}" if "folds" in input.keys() else ""))


def survival_model_settings(wildcards):
    """The model's settings, as a params function of the wildcards only, so a changed setting
    (the clinical selection, the penalty, the horizons) reruns the fit and its evaluation."""
    m, s = SURVIVAL_MODELS[wildcards.model], config["survival"]
    return (f"--label {shlex.quote(m['label'])} --covariates {' '.join(m['covariates'])}"
            f" --clinical-spec {shlex.quote(json.dumps(s['clinical']['variables']))}"
            f" --p-enter {s['clinical']['p_enter']} --penalizer {s['penalizer']}"
            f" --selection {s['clinical_selection']} --penalty {shlex.quote(json.dumps(s['penalised']))}"
            f" --optimism-bootstrap {s['optimism_bootstrap']}"
            f" --horizons {' '.join(map(str, s['horizons']))} --n-bootstrap {s['n_bootstrap']}"
            f" --seed {config['seed']}")


# On the demo, the generator's truth: Tables S4 and S5 end with the true model's row.
DEMO_TRUTH = [os.path.join(config["demo"]["out_dir"], "truth.tsv")] if ON_DEMO else []


def survival_model_dirs():
    return [f"results/cohort/survival/{m}" for m in SURVIVAL_MODELS]
