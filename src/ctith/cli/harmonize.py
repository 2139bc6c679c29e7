"""ComBat (Appendix 5), feature selection and the Rad-score, and a fitted LASSO signature
(the Rad-score, DL_F) applied to every patient: the rules of ``workflow/rules/harmonize.smk``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CtithError
from ._common import clinical_args, read_clinical, read_cohorts, selection_args

if TYPE_CHECKING:
    import pandas as pd


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
    from ..radiomics import harmonize
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

    from ..radiomics import harmonize
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

    from ..radiomics import selection
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
        from ..cohort.crossfit import read_folds

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

    from ..radiomics import selection
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
