"""C-radiomics and semantic features: extraction, cohort tables, reader agreement and ICC (Appendix
3), ComBat (Appendix 5), selection and the Rad-score.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts, selection_args

if TYPE_CHECKING:
    import pandas as pd


def cmd_radiomics(args) -> None:
    import SimpleITK as sitk

    from .. import radiomics
    from ..io import write_json, write_tsv

    patient = args.patient_id
    params = radiomics.load_params(args.params, args.bin_width, args.resampled_spacing)
    image = sitk.ReadImage(str(args.image))
    if args.reader == 2 or args.repeat:
        mask = radiomics.reader2_mask_on_image(args.mask, image, patient, args.mask_label, image_path=str(args.image),
                                               what="reader-1 repeat mask" if args.repeat else "reader-2 mask")
    else:
        mask = sitk.ReadImage(str(args.mask))
    t0 = time.perf_counter()
    features, diagnostics = radiomics.extract(image, mask, params, patient, str(args.mask))
    seconds = time.perf_counter() - t0
    diagnostics.update({"patient_id": patient, "reader": args.reader, "repeat": args.repeat, "mask": str(args.mask),
                        "params_file": str(args.params)})  # the time goes to the log only
    write_tsv(radiomics.features_row(features, patient), args.out, index=True)
    write_json(diagnostics, args.diagnostics)
    print(f"{patient}: reader {args.reader}, {len(features)} features in {seconds:.1f} s -> {args.out}")
    for name in diagnostics.get("non_finite_features", []):
        print(f"warning: {patient}: feature {name} is not finite", file=sys.stderr)


def cmd_radiomics_table(args) -> None:
    from .. import radiomics
    from ..io import read_feature_table, write_tsv

    rows = [read_feature_table(p) for p in args.features]
    table = radiomics.cohort_table(rows)
    write_tsv(table, args.out, index=True)
    print(f"{table.shape[0]} patients x {table.shape[1]} features -> {args.out}")


def _same_frame(args) -> None:
    """Refuse a plain CT whose DICOM frame of reference is not the venous phase's: its voxels
    would be read at the venous phase's coordinates as if the two were registered."""
    from ..errors import InputError
    from ..ingest import frame_of_reference

    if not args.image_source:
        return
    plain = frame_of_reference(args.plain_ct, "plain CT", args.plain_series_uid or None, args.patient_id)
    venous = frame_of_reference(args.image_source, "image", args.image_series_uid or None, args.patient_id)
    if plain and venous and plain != venous:
        raise InputError(f"plain CT '{args.plain_ct}' is on frame of reference {plain} but the venous CT on "
                         f"{venous}: register the plain CT to the venous phase first", args.patient_id,
                         args.plain_ct)


def cmd_semantic(args) -> None:
    import SimpleITK as sitk

    from .. import semantic
    from ..ingest import read_ct
    from ..io import write_json

    params = semantic.SemanticParams(**(args.params or {}))
    image = sitk.ReadImage(str(args.image))
    mask = sitk.ReadImage(str(args.mask))
    plain = None
    if args.plain_ct:
        plain = read_ct(args.plain_ct, "plain CT", args.plain_series_uid or None, args.patient_id)
        _same_frame(args)
    record = semantic.measure(image, mask, plain, params, args.patient_id, args.plain_ct)
    write_json(record, args.out)
    ratings = ", ".join(f"{k} {record[k]}" for k in semantic.RATINGS)
    print(f"{args.patient_id}: {ratings} -> {args.out}")


def cmd_semantic_table(args) -> None:
    from .. import semantic
    from ..io import read_json, write_tsv

    table = semantic.semantic_table([read_json(p) for p in args.records])
    write_tsv(table, args.out_table)
    agreement = semantic.agreement_with_readers(table, read_clinical(args))
    write_tsv(agreement, args.out_agreement)
    print(f"semantic features of {len(table)} patients -> {args.out_table}")
    print(agreement.to_string(index=False))


def cmd_reproducibility(args) -> None:
    """Table S3 (the readers' semantic ratings), the feature ICC (the filter a fit uses),
    or both."""
    s3_args = (args.eligible, args.clinical, args.table_s3_items, args.out_table_s3, args.out_table_s3_md,
               args.out_table_s3_values)
    icc_args = (args.reader1, args.reader2, args.split, args.out_icc)
    for group, what in ((s3_args, "Table S3: --eligible, --clinical, --table-s3-items and its three outputs"),
                        (icc_args, "the feature ICC: --reader1, --reader2, --split and --out-icc")):
        if any(group) and not all(group):
            raise CtithError(f"reproducibility: {what} go together")
    if not any(s3_args + icc_args):
        raise CtithError("reproducibility: nothing to do (give Table S3's or the feature ICC's arguments)")
    if all(s3_args):
        _table_s3(args)
    if all(icc_args):
        _feature_icc(args)


def _table_s3(args) -> None:
    from .. import reproducibility
    from ..io import read_table, write_markdown, write_tsv

    clinical = read_clinical(args)
    eligible = read_table(args.eligible)["patient_id"].tolist()
    s3 = reproducibility.table_s3(clinical.loc[eligible], args.table_s3_items, args.icc_form)
    write_tsv(s3, args.out_table_s3_values)
    formatted = reproducibility.format_table_s3(s3)
    write_tsv(formatted, args.out_table_s3)
    write_markdown(formatted, args.out_table_s3_md)
    print(f"Table S3 ({args.icc_form}, {len(eligible)} eligible patients):")
    print(formatted.to_string(index=False))


def _feature_icc(args) -> None:
    import pandas as pd

    from .. import reproducibility
    from ..io import read_feature_table, write_markdown, write_tsv

    r1 = read_feature_table(args.reader1)
    cohorts = read_cohorts(args.split)

    def rated(other: pd.DataFrame, what: str) -> list:
        use = [p for p in other.index if p in r1.index and cohorts.get(p) in args.cohorts]
        if len(use) < args.min_patients:
            raise CtithError(f"{len(use)} patients of cohorts {args.cohorts} have a {what}; the ICC filter needs at "
                             f"least {args.min_patients} (config reproducibility.min_patients, icc_cohorts, or "
                             "icc_threshold: null to switch the filter off)")
        return use

    if args.icc_threshold is None:
        table = pd.DataFrame({"feature": r1.columns, "icc": float("nan"), "ci_low": float("nan"),
                              "ci_high": float("nan"), "n": 0})
        table["reproducible"] = True
        summary = pd.DataFrame([{"ICC": "none computed: the filter is off (reproducibility.icc_threshold: null)"}])
        print("ICC filter off: every feature kept")
    else:
        r2 = read_feature_table(args.reader2)
        use = rated(r2, "reader-2 mask")
        inter = reproducibility.feature_icc(r1.loc[use], r2.loc[use], args.icc_form)
        intra = None
        if args.reader1_repeat:
            repeat = read_feature_table(args.reader1_repeat)
            again = rated(repeat, "repeat reader-1 mask")
            intra = reproducibility.feature_icc(r1.loc[again], repeat.loc[again], args.icc_form, "reader-1 repeat")
        table = reproducibility.feature_filter(inter, intra, args.icc_threshold)
        print(f"feature ICC on {len(use)} re-segmented patients of {args.cohorts}"
              + (f" and {len(again)} repeated by reader 1" if intra is not None else "") + ": "
              f"{int(table['reproducible'].sum())} of {len(table)} features with {args.icc_form} >= "
              f"{args.icc_threshold}" + (" for both" if intra is not None else ""))
        summary = reproducibility.icc_summary(table, args.icc_threshold)
    write_tsv(table, args.out_icc)
    if args.out_summary:
        write_tsv(summary, args.out_summary)
        write_markdown(summary.round(3), Path(args.out_summary).with_suffix(".md"))


def _batch(args, patients) -> pd.Series:
    from ..io import read_table

    samples = read_table(args.samples).set_index("patient_id")
    if args.batch_column in samples.columns:
        batch = samples[args.batch_column]
    else:
        clinical = read_clinical(args)
        if args.batch_column not in clinical.columns:
            raise CtithError(f"batch column '{args.batch_column}' is in neither the sample sheet nor the "
                             "clinical table")
        batch = clinical[args.batch_column]
    batch = batch.reindex(patients)
    blank = batch.isna() | (batch.astype(str).str.strip() == "")
    if blank.any():
        raise CtithError(f"patient {batch.index[blank.to_numpy()][0]}: batch column '{args.batch_column}' "
                         "is blank")
    return batch.astype(str)


def cmd_harmonize(args) -> None:
    """The fit: ComBat's estimates, and the fitted mode's patients harmonised (the training
    patients in mode train, every patient in mode transductive)."""
    from .. import harmonize
    from ..io import read_feature_table, read_table, write_json, write_tsv

    features = read_feature_table(args.features)
    icc = read_table(args.icc)
    keep = icc.loc[icc["reproducible"].str.lower() == "true", "feature"].tolist()
    X = features[keep]
    cohorts = read_cohorts(args.split).reindex(X.index)
    covariates = read_clinical(args) if (args.categorical or args.continuous) else None
    batch = _batch(args, X.index)
    model, fit_rows = harmonize.fit_combat(X, batch, cohorts, args.mode, covariates, args.categorical,
                                           args.continuous, args.constant_in_batch)
    fit = {**harmonize.fit_record(model, args.mode, len(fit_rows)), "batch_column": args.batch_column,
           "icc_filtered_out": int(features.shape[1] - len(keep))}
    write_json({**model.to_dict(), "fit": fit}, args.out_estimates)
    write_tsv(model.transform(X.loc[fit_rows], batch.loc[fit_rows], covariates), args.out_features, index=True)
    print(f"ComBat ({args.mode}, batch '{args.batch_column}') fitted on {len(fit_rows)} patients: "
          f"{len(model.features_)} features harmonised, {len(model.constant_)} constant in a batch "
          f"({model.constant_in_batch})")


def cmd_harmonize_apply(args) -> None:
    """The fitted estimates on every patient; how far batches differ before and after."""
    import warnings

    from .. import harmonize
    from ..io import read_feature_table, read_json, write_json, write_tsv

    estimates = read_json(args.estimates)
    model = harmonize.ComBat.from_dict(estimates)
    features = read_feature_table(args.features)
    missing = model.features_in_.difference(features.columns)
    if len(missing):
        raise CtithError(f"feature table '{args.features}' has no '{missing[0]}', which ComBat was fitted on")
    X = features[model.features_in_]
    covariates = read_clinical(args) if (model.categorical or model.continuous) else None
    batch = _batch(args, X.index)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            out = model.transform(X, batch, covariates, unseen_batch=args.unseen_batch)
        except harmonize.HarmonizeError as exc:
            raise CtithError(f"{exc} (config harmonize.unseen_batch: keep passes them unharmonised)") from None
    smd, summary = harmonize.harmonization_summary(model, estimates["fit"], X, out, batch)
    summary.update({"batch_column": estimates["fit"]["batch_column"],
                    "icc_filtered_out": estimates["fit"]["icc_filtered_out"]})
    if caught:
        summary["unharmonised"] = [str(w.message) for w in caught]
        for w in caught:
            print(f"WARNING: {w.message}")
    write_tsv(out, args.out_features, index=True)
    write_tsv(smd, args.out_smd)
    write_json(summary, args.out_report)
    s = summary
    print(f"ComBat ({s['mode']}, batch '{s['batch_column']}', fitted on {s['fitted_on']}): "
          f"{s['features_out']} features of {len(out)} patients; mean |standardized difference| between batches "
          f"{s['mean_abs_smd_before']:.3f} -> {s['mean_abs_smd_after']:.3f} "
          f"({100 * s['smd_reduction']:.1f}% less)")


def cmd_select(args) -> None:
    import pandas as pd

    from .. import selection
    from ..io import read_feature_table, write_json, write_tsv

    features = read_feature_table(args.features)
    cohorts = read_cohorts(args.split).reindex(features.index)
    clinical = read_clinical(args).reindex(features.index)
    train = features.index[(cohorts == "train").to_numpy()]
    if len(train) == 0:
        raise CtithError(f"split '{args.split}' puts no patient with features in the train cohort")
    event = pd.to_numeric(clinical.loc[train, "dm_event"])
    time_ = pd.to_numeric(clinical.loc[train, "dm_time_months"])
    model = selection.RadScore(args.variance_threshold, args.correlation_cutoff, args.cv_folds, args.n_alphas,
                               args.alpha_min_ratio, args.alpha_rule, args.seed)
    folds = None
    if args.folds:
        from ..crossfit import read_folds

        folds = read_folds(args.folds)
    model.fit(features.loc[train], event, time_, folds=folds)
    mode = _combat_mode(args.harmonization)
    # The training patients' scores: out-of-fold (the fold LASSO that did not see them) with
    # cross-fitting folds; `signature-apply` scores everyone else with the signature.
    refit = model.predict(features.loc[train])
    scores = pd.DataFrame({"patient_id": train, "cohort": "train", "rad_score": refit.to_numpy(), "fit": "refit",
                           "rad_score_refit": refit.to_numpy(), "combat_mode": mode})
    if folds is not None:
        scores["rad_score"] = model.oof_.reindex(train).to_numpy()
        scores["fit"] = "oof"
    write_tsv(scores, args.out_scores)
    write_tsv(model.signature(), args.out_signature)
    write_tsv(model.cv_results_, args.out_cv)
    report = {**model.report(), "n_train": int(len(train)), "train_events": int(event.sum()),
              "combat_mode": mode}
    if mode == "transductive":
        report["note"] = ("features were ComBat-harmonised transductively: ComBat saw every cohort's "
                          "features (never labels)")
    write_json(report, args.out_report)
    r = report
    print(f"Rad-score: {r['features_in']} -> variance {r['after_variance_filter']} -> |rho| <= "
          f"{args.correlation_cutoff} {r['after_correlation_pruning']} -> LASSO-Cox {r['selected']} features "
          f"(alpha {r['alpha']:.4g}, CV C-index {r['cv_cindex_at_alpha']:.3f}); ComBat {mode}")


def _combat_mode(path) -> str:
    """ComBat's mode from its estimates (``fit.mode``) or its report (``mode``)."""
    from ..io import read_json

    if not path:
        return "none"
    record = read_json(path)
    return record.get("fit", record)["mode"]


def cmd_signature_apply(args) -> None:
    """A fitted LASSO signature (the Rad-score, DL_F) on every patient: the training
    patients keep their scores from the fit (out-of-fold), the others get the signature's."""
    import pandas as pd

    from .. import selection
    from ..io import read_table, write_tsv

    table = read_table(args.features).set_index("patient_id")
    X = table.drop(columns=[c for c in ("cohort",) if c in table]).apply(pd.to_numeric, errors="coerce")
    cohorts = read_cohorts(args.split).reindex(X.index)
    try:
        refit = selection.apply_signature(read_table(args.signature), X)
    except selection.SelectionError as exc:
        raise CtithError(f"{args.signature}: {exc}") from None
    train = read_table(args.train_scores).set_index("patient_id")
    scores = selection.signature_scores(refit, cohorts, train, args.name)
    if args.harmonization:
        scores["combat_mode"] = _combat_mode(args.harmonization)
    write_tsv(scores, args.out)
    print(f"{args.name} of {len(scores)} patients ({int((scores['fit'] == 'oof').sum())} out-of-fold) -> {args.out}")


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    r = sub.add_parser("radiomics", help="pyradiomics features of one patient and reader")
    r.add_argument("--image", required=True, help="ingested image.nii.gz")
    r.add_argument("--mask", required=True, help="ingested mask.nii.gz, or a raw re-delineation (--reader 2, --repeat)")
    r.add_argument("--reader", type=int, default=1, choices=[1, 2])
    r.add_argument("--repeat", action="store_true", help="the raw mask is reader 1's repeat delineation")
    r.add_argument("--mask-label", type=int, help="label of the tumour in a multi-label reader-2 mask")
    r.add_argument("--params", required=True, help="pyradiomics parameter file (YAML)")
    r.add_argument("--bin-width", type=float, help="overrides the parameter file's binWidth")
    r.add_argument("--resampled-spacing", type=float, nargs=3, help="mm (x y z); omit for native spacing")
    r.add_argument("--patient-id", required=True)
    r.add_argument("--out", required=True, help="one-row feature table (TSV)")
    r.add_argument("--diagnostics", required=True, help="pyradiomics diagnostics (JSON)")
    r.set_defaults(func=cmd_radiomics)

    rt = sub.add_parser("radiomics-table", help="cohort feature table from per-patient tables")
    rt.add_argument("--features", nargs="*", default=[])
    rt.add_argument("--out", required=True)
    rt.set_defaults(func=cmd_radiomics_table)

    se = sub.add_parser("semantic", help="quantitative semantic features of one patient (Appendix 2)")
    se.add_argument("--image", required=True, help="ingested image.nii.gz (venous phase)")
    se.add_argument("--mask", required=True, help="ingested mask.nii.gz")
    se.add_argument("--plain-ct", help="plain (non-contrast) CT, any grid of the same frame of reference")
    se.add_argument("--plain-series-uid", help="its SeriesInstanceUID when the folder holds several series")
    se.add_argument("--image-source", help="the venous CT as given to ingest (a DICOM folder's frame of reference "
                    "is checked against the plain CT's)")
    se.add_argument("--image-series-uid", help="its SeriesInstanceUID when the folder holds several series")
    se.add_argument("--params", type=json_arg, help="JSON: SemanticParams fields")
    se.add_argument("--patient-id", required=True)
    se.add_argument("--out", required=True)
    se.set_defaults(func=cmd_semantic)

    st = sub.add_parser("semantic-table", help="cohort table of measured semantic features, agreement with reader 1")
    st.add_argument("--records", nargs="+", required=True)
    clinical_args(st)
    st.add_argument("--out-table", required=True)
    st.add_argument("--out-agreement", required=True)
    st.set_defaults(func=cmd_semantic_table)

    rp = sub.add_parser("reproducibility", help="feature ICC between readers and Table S3")
    rp.add_argument("--reader1", help="reader-1 feature table")
    rp.add_argument("--reader2", help="reader-2 feature table")
    rp.add_argument("--reader1-repeat", help="reader 1's repeat delineation's feature table (intra-observer ICC)")
    rp.add_argument("--out-summary", help="the ICC distributions, inter- and intra-observer (TSV; .md beside)")
    rp.add_argument("--split")
    rp.add_argument("--eligible", help="eligible patients (Table S3 covers them)")
    rp.add_argument("--clinical", help="clinical table (Table S3's reader columns)")
    rp.add_argument("--clinical-columns", type=json_arg, help="JSON: canonical -> your column")
    rp.add_argument("--cohorts", nargs="+", default=["train"], help="cohorts whose re-segmentations give the ICC")
    rp.add_argument("--icc-form", default="ICC(A,1)", choices=["ICC(1,1)", "ICC(A,1)", "ICC(C,1)"])
    rp.add_argument("--icc-threshold", type=lambda s: None if s == "none" else float(s), default=0.75,
                    help="features below it are dropped; 'none' switches the filter off")
    rp.add_argument("--min-patients", type=int, default=5)
    rp.add_argument("--table-s3-items", type=json_arg, help="JSON list of {label, reader1, reader2, levels}")
    rp.add_argument("--out-icc")
    rp.add_argument("--out-table-s3")
    rp.add_argument("--out-table-s3-md")
    rp.add_argument("--out-table-s3-values", help="unrounded ICC, CI, n, exact agreement")
    rp.set_defaults(func=cmd_reproducibility)

    h = sub.add_parser("harmonize", help="ComBat (neuroCombat) on the reproducible features")
    h.add_argument("--features", required=True)
    h.add_argument("--icc", required=True, help="feature ICC table with its 'reproducible' column")
    h.add_argument("--split", required=True)
    h.add_argument("--samples", required=True)
    clinical_args(h)
    h.add_argument("--batch-column", default="institution")
    h.add_argument("--mode", default="transductive", choices=["train", "transductive"])
    h.add_argument("--categorical", nargs="*", default=[], help="categorical covariates to preserve")
    h.add_argument("--continuous", nargs="*", default=[], help="continuous covariates to preserve")
    h.add_argument("--constant-in-batch", default="drop", choices=["drop", "keep"])
    h.add_argument("--out-estimates", required=True, help="the fitted estimates (JSON; no patient data)")
    h.add_argument("--out-features", required=True, help="the fitted patients' features, harmonised")
    h.set_defaults(func=cmd_harmonize)

    ha = sub.add_parser("harmonize-apply", help="the fitted ComBat estimates on every patient")
    ha.add_argument("--features", required=True)
    ha.add_argument("--estimates", required=True, help="harmonize's --out-estimates")
    ha.add_argument("--samples", required=True)
    clinical_args(ha)
    ha.add_argument("--batch-column", default="institution")
    ha.add_argument("--unseen-batch", default="error", choices=["error", "keep"],
                    help="a batch ComBat never saw: an error, or its patients pass unharmonised (with a warning)")
    ha.add_argument("--out-features", required=True)
    ha.add_argument("--out-smd", required=True)
    ha.add_argument("--out-report", required=True)
    ha.set_defaults(func=cmd_harmonize_apply)

    sl = sub.add_parser("select", help="variance, correlation and LASSO-Cox selection; the Rad-score")
    sl.add_argument("--features", required=True, help="harmonised feature table")
    sl.add_argument("--harmonization", help="ComBat estimates (JSON): their mode is carried to the outputs")
    sl.add_argument("--split", required=True)
    clinical_args(sl)
    selection_args(sl)
    sl.add_argument("--cv-folds", type=int, default=5, help="without --folds: seeded stratified CV folds")
    sl.add_argument("--folds", help="cross-fitting folds (TSV): the LASSO's CV folds, and out-of-fold "
                                    "Rad-scores for training patients")
    sl.add_argument("--out-scores", required=True, help="the training patients' Rad-scores")
    sl.add_argument("--out-signature", required=True)
    sl.add_argument("--out-cv", required=True)
    sl.add_argument("--out-report", required=True)
    sl.set_defaults(func=cmd_select)

    sa = sub.add_parser("signature-apply", help="a fitted LASSO signature (Rad-score, DL_F) on every patient")
    sa.add_argument("--features", required=True, help="feature table (patient_id, features; a cohort column is "
                                                      "ignored)")
    sa.add_argument("--signature", required=True, help="feature, coefficient, train_mean, train_sd")
    sa.add_argument("--train-scores", required=True, help="the fit's scores of the training patients")
    sa.add_argument("--split", required=True)
    sa.add_argument("--name", required=True, help="score column: rad_score, dl_f_score")
    sa.add_argument("--harmonization", help="ComBat estimates (JSON): their mode goes in a combat_mode column")
    sa.add_argument("--out", required=True)
    sa.set_defaults(func=cmd_signature_apply)
