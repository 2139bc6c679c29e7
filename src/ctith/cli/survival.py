"""Survival models of time to DM: one Cox model per job, then Tables S4 and S5, the survival
figures and Figure S4.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts, save_figure


SIGNATURE_COLUMNS = {"ith": "ith_signature", "radscore": "rad_score", "dl_e": "dl_e_logit", "dl_f": "dl_f_score"}


def _covariates(args, ids, clinical, outcome, train, fitted=None):
    """The model's covariates of the patients ``ids``, and what the clinical selection
    decided (on ``train``; with ``fitted``, its record is applied instead)."""
    import pandas as pd

    from .. import survival

    parts, fits, decided = [], [], {}
    for source in args.covariates:
        if source == "clinical":
            if fitted is None and args.selection == "penalised":  # every candidate: the penalty selects
                from ..survival_penalised import clinical_candidates

                Xc, decided["clinical"] = clinical_candidates(clinical.loc[ids], args.clinical_spec, train)
            elif fitted is None:
                Xc, decided["clinical"] = survival.clinical_covariates(
                    clinical.loc[ids], args.clinical_spec, train, outcome.loc[train, "dm_time_months"],
                    outcome.loc[train, "dm_event"], args.p_enter, args.penalizer)
            else:
                record = fitted["clinical"]
                Xc = survival.ClinicalEncoder.from_dict(record["encoder"]).transform(clinical.loc[ids],
                                                                                     record["chosen"])
            parts.append(Xc)
            continue
        path = dict(args.signatures or {}).get(source)
        if path is None:
            raise CtithError(f"model {args.name}: covariate source '{source}' needs --signatures {source}=FILE")
        from ..io import read_table

        table = read_table(path).set_index("patient_id")
        col = SIGNATURE_COLUMNS[source]
        missing = [p for p in ids if p not in table.index]
        if missing:
            raise CtithError(f"patient {missing[0]}: no {col} in '{path}'")
        parts.append(pd.to_numeric(table.loc[ids, col]).rename(source).to_frame())
        fits.append(table.loc[ids, "fit"])
    X = pd.concat(parts, axis=1)
    covariates = pd.Series("measured", index=ids)
    for f in fits:  # a patient is out-of-fold if any signature of theirs is
        covariates[(f == "oof").to_numpy()] = "oof"
        covariates[((f == "refit") & (covariates != "oof")).to_numpy()] = "refit"
    return X, covariates, decided


def _fit(args, X, outcome, decided, clinical) -> dict:
    """The model file's content: a penalised Cox model where clinical variables are candidates
    under ``--selection penalised``, else a Cox model of the covariates as given (chosen by
    the stepwise selection where clinical). Both record their events per variable and,
    with ``--optimism-bootstrap``, Harrell's optimism-corrected C-index and calibration
    slope, the whole building repeated on each resample."""
    import pandas as pd

    from .. import survival
    from ..crossfit import fold_positions, read_folds
    from ..survival_optimism import ModelBuilding, optimism_corrected
    from ..survival_penalised import PenaltyParams, fit_penalised_model

    signatures = [c for c in X.columns if c in SIGNATURE_COLUMNS]
    n_events = int(outcome.loc[X.index, "dm_event"].sum())
    folds = None
    if args.folds:
        folds = read_folds(args.folds)
        fold_positions(folds, X.index)  # every training patient has a fold, or a named error
        folds = folds.reindex(X.index).to_numpy()
    selection = args.selection if "clinical" in decided else "none"
    groups = decided["clinical"]["encoder_columns"] if "clinical" in decided else {}
    building = ModelBuilding(selection, groups, signatures, PenaltyParams(**args.penalty), args.p_enter, args.penalizer)
    candidates = X
    if selection == "penalised":
        if folds is None:
            raise CtithError(f"model {args.name}: --selection penalised needs --folds (the cross-fitting folds)")
        fitted = fit_penalised_model(args.label, X, outcome, folds, building.penalty, signatures, args.horizons)
        decided["clinical"]["chosen"] = [v for v, cols in groups.items() if set(cols) & set(fitted["features"])]
    else:
        fitted = survival.fit_cox_model(args.label, X, outcome, args.penalizer, args.horizons)
        if selection == "stepwise":  # what the screening could choose from, not only what it kept
            encoder = survival.ClinicalEncoder.from_dict(decided["clinical"]["encoder"])
            candidates = pd.concat([encoder.transform(clinical.loc[X.index]), X[signatures]], axis=1)
    fitted["selection"] = selection if selection != "none" else "none (signatures only)"
    fitted["events_per_variable"] = survival.events_per_variable(n_events, candidates.shape[1],
                                                                 len(fitted["features"]))
    if args.optimism_bootstrap:
        t, e = outcome.loc[X.index, "dm_time_months"].to_numpy(float), outcome.loc[X.index, "dm_event"].to_numpy()
        fitted["internal_validation"] = optimism_corrected(building, candidates, t, e, folds, args.optimism_bootstrap,
                                                           args.seed)
    return fitted


def cmd_survival_model(args) -> None:
    """Without --fitted: fit on the training patients of --split, write model.json. With
    --fitted: that model, frozen, on every patient of --split: predictions, metrics and
    covariates."""
    import pandas as pd

    from .. import survival
    from ..io import read_json, read_table, write_json, write_tsv

    cohorts = read_cohorts(args.split)
    clinical = read_clinical(args)
    ids = cohorts.index[cohorts.index.isin(clinical.index)]
    outcome = pd.DataFrame({"dm_time_months": pd.to_numeric(clinical.loc[ids, "dm_time_months"], errors="coerce"),
                            "dm_event": pd.to_numeric(clinical.loc[ids, "dm_event"], errors="coerce")}, index=ids)
    bad = outcome.index[outcome.isna().any(axis=1).to_numpy()]
    if len(bad):
        raise CtithError(f"patient {bad[0]}: dm_time_months / dm_event missing or not numbers in "
                         f"'{args.clinical}'")
    train = ids[(cohorts.reindex(ids) == survival.TRAIN).to_numpy()]
    out = Path(args.out_dir)
    if args.fitted is None:
        X, _, decided = _covariates(args, train, clinical, outcome, train)
        fitted = _fit(args, X, outcome, decided, clinical)
        fitted.update({"model": args.name, "covariate_sources": args.covariates, **decided})
        write_json(fitted, out / "model.json")
        print(f"{args.label}: coefficients {dict(zip(fitted['features'], [round(c, 4) for c in fitted['coef']]))} "
              f"on {len(train)} training patients")
        return
    fitted = read_json(args.fitted)
    X, covariates, _ = _covariates(args, ids, clinical, outcome, train, fitted)
    X = X[fitted["features"]]  # a penalised fit may have set a level's coefficient to zero
    institution = read_table(args.split).set_index("patient_id")["institution"]
    predictions, rows = survival.evaluate_model(fitted, X, covariates, outcome, cohorts.reindex(ids),
                                                args.n_bootstrap, args.seed,
                                                survival.institution_subgroups(cohorts.reindex(ids), institution))
    write_tsv(predictions, out / "predictions.tsv")
    write_tsv(pd.DataFrame(rows), out / "metrics.tsv")
    write_tsv(X.rename_axis("patient_id").reset_index(), out / "covariates.tsv")
    m = pd.DataFrame(rows).set_index(["cohort", "metric"])
    cindex = {c: m.loc[(c, "c_index"), "value"] for c in dict.fromkeys(m.index.get_level_values(0))}
    print(f"{args.label}: C-index " + ", ".join(f"{c} {v:.3f}" if pd.notna(v) else f"{c} -"
                                                for c, v in cindex.items()))


def cmd_survival_report(args) -> None:
    import numpy as np
    import pandas as pd

    from .. import survival
    from ..io import markdown_table, read_json, read_table, write_markdown, write_tsv
    from ..models import shap_figures

    cohorts = read_cohorts(args.split)
    institution = read_table(args.split).set_index("patient_id")["institution"]
    clinical = read_clinical(args)
    outcome = pd.DataFrame({"dm_time_months": pd.to_numeric(clinical["dm_time_months"], errors="coerce"),
                            "dm_event": pd.to_numeric(clinical["dm_event"], errors="coerce")})
    models = {}
    for name, folder in args.models:
        folder = Path(folder)
        models[name] = {"fitted": read_json(folder / "model.json"), "pred": read_table(folder / "predictions.tsv"),
                        "metrics": read_table(folder / "metrics.tsv"), "X": read_table(folder / "covariates.tsv")}
    metrics = pd.concat([m["metrics"] for m in models.values()], ignore_index=True)
    labels = [m["fitted"]["name"] for m in models.values()]
    table_labels = list(labels)
    if args.truth:  # the demo: the generating model, scored on the same resamples
        from ..survival_truth import TRUE_MODEL, true_model_rows

        truth = read_table(args.truth).set_index("patient_id")["linear_predictor"]
        ids = cohorts.index[cohorts.index.isin(clinical.index)]
        metrics = pd.concat([metrics, pd.DataFrame(true_model_rows(
            pd.to_numeric(truth), outcome, cohorts.reindex(ids), args.horizons, args.n_bootstrap, args.seed,
            survival.institution_subgroups(cohorts.reindex(ids), institution)))], ignore_index=True)
        table_labels.append(TRUE_MODEL)
    for col in ("horizon_months", "value", "ci_low", "ci_high"):
        metrics[col] = pd.to_numeric(metrics[col].replace("", np.nan))
    write_tsv(metrics, args.out_metrics)
    validation = survival.validation_cohorts(metrics["cohort"])
    note = ("\nC-index: Harrell's; AUC: the risk score's ROC AUC for DM status (as Table S2); IBS: integrated "
            "Brier score over the horizons the cohort's follow-up supports. 95% CIs: percentile bootstrap of the "
            f"validation patients ({args.n_bootstrap} resamples), every model frozen, the same resamples for every model. "
            "'-': cannot be computed (see metrics.tsv). Training columns: Harrell's bootstrap optimism "
            "correction (survival.optimism_bootstrap resamples of the training patients, the whole model "
            "building, selection or penalty included, repeated on each); the C-index's optimism is the "
            "resamples' mean gap, the slope's their median (a nearly flat resample model makes a slope unbounded)."
            + (" Last row (demo only): the generating model's true risk, scored the same way: what this "
               "sample allows a model to reach." if args.truth else "") + "\n")
    from ..survival_optimism import calibration_slope, harrell_c, internal_validation_columns

    internal = {m["fitted"]["name"]: m["fitted"].get("internal_validation") for m in models.values()}
    if args.truth:  # nothing fitted: apparent is what it is
        train_ids = cohorts.index[(cohorts == "train").to_numpy() & cohorts.index.isin(clinical.index)]
        lp, t, e = (pd.to_numeric(truth).loc[train_ids], outcome.loc[train_ids, "dm_time_months"],
                    outcome.loc[train_ids, "dm_event"])
        c, slope = harrell_c(t, e, lp), calibration_slope(t, e, lp)
        internal[TRUE_MODEL] = {"c_index": {"apparent": c, "corrected": c},
                                "calibration_slope": {"apparent": slope, "corrected": slope}}
    s4 = internal_validation_columns(survival.table_s4(metrics, table_labels, validation), internal)
    write_tsv(s4, args.out_s4)
    write_markdown(s4, args.out_s4_md, note)
    from ..survival_penalised import model_building_table

    building = model_building_table({n: m["fitted"] for n, m in models.items()})
    write_tsv(building, args.out_models)
    write_markdown(building, args.out_models_md, "\nEvents per variable: training DM events per candidate parameter "
                                                 "(what the model building could choose from) and per kept one. "
                                                 "Penalised: elastic-net Cox, the penalty by cross-validated partial "
                                                 "likelihood on the cross-fitting folds; signatures unpenalised "
                                                 "unless survival.penalised.penalise_signatures. Stepwise: "
                                                 "univariable screening, then backward AIC.\n")
    from ..survival_calibration import calibration_table, differences_table

    cal = calibration_table(metrics, table_labels, validation, args.horizons)
    write_tsv(cal, args.out_calibration)
    write_markdown(cal, args.out_calibration_md, "\nCalibration per validation cohort and horizon (Crowson et al. 2016): "
                   "follow-up cut at the horizon; intercept = log(observed / expected events), 0 ideal, above 0 "
                   "too few predicted; slope of the linear predictor in a Poisson model with the model's "
                   "cumulative hazard as offset, 1 ideal, below 1 risks too extreme. 95% CIs on the resamples of "
                   "Table S4.\n")
    frames = {}
    order = models[args.figure_model]["pred"]
    subgroup = survival.institution_subgroups(order.set_index("patient_id")["cohort"], institution).to_numpy()
    for c in validation:
        member = (order["cohort"] == c).to_numpy() | (subgroup == c)
        ids = order.loc[member, "patient_id"].to_numpy()
        frame = pd.DataFrame(index=ids)
        for m in models.values():
            p = m["pred"].set_index("patient_id")
            frame[m["fitted"]["name"]] = pd.to_numeric(p.loc[ids, "risk"]).to_numpy()
        if args.truth:
            frame[TRUE_MODEL] = pd.to_numeric(truth).reindex(ids).to_numpy()
        frames[c] = frame
    reference = models[args.figure_model]["fitted"]["name"]
    diff = differences_table(frames, outcome, reference, table_labels, validation, args.n_bootstrap, args.seed)
    write_tsv(diff, args.out_differences)
    write_markdown(diff, args.out_differences_md, f"\nHarrell's C-index of each model minus {reference}'s, on the "
                   "same validation patients; 95% CI: paired percentile bootstrap (both models on each of the "
                   f"{args.n_bootstrap} resamples of Table S4). A CI that excludes 0 is a difference this sample "
                   "can see.\n")
    s5 = survival.table_s5(metrics, table_labels, validation, args.horizons)
    write_tsv(s5, args.out_s5)
    write_markdown(s5, args.out_s5_md, "\nCumulative/dynamic AUC (IPCW, scikit-survival) at each horizon, 95% "
                                       "percentile bootstrap CI. '-': the cohort's follow-up cannot support "
                                       "the horizon."
                                       + (" Last rows per cohort (demo only): the generating model's true risk."
                                          if args.truth else "") + "\n")

    # Figures of the headline model, per validation cohort.
    head = models[args.figure_model]
    label = head["fitted"]["name"]
    pred = head["pred"].set_index("patient_id")
    pred["risk"] = pd.to_numeric(pred["risk"])
    train = pred.index[(pred["cohort"] == "train").to_numpy()]
    t_tr, e_tr = outcome.loc[train, "dm_time_months"].to_numpy(), outcome.loc[train, "dm_event"].to_numpy()
    km, rocs, cal, dcs = [], [], [], []
    for c in [v for v in validation if ":" not in v]:  # the figures pool each cohort's institutions
        ids = pred.index[(pred["cohort"] == c).to_numpy()]
        t, e = outcome.loc[ids, "dm_time_months"].to_numpy(), outcome.loc[ids, "dm_event"].to_numpy().astype(bool)
        name = survival.cohort_label(c)
        km.append({"cohort": name, "time": t, "event": e, "group": pred.loc[ids, "risk_group"].to_numpy()})
        for h in (12.0, 36.0, 60.0):
            if survival.horizon_problem(t_tr, e_tr, t, e, h) is None:
                fpr, tpr = survival.cumulative_dynamic_roc(t_tr, e_tr, t, e, pred.loc[ids, "risk"], h)
                rocs.append({"cohort": name, "horizon": h, "fpr": fpr, "tpr": tpr, "auc": np.trapezoid(tpr, fpr)})
        for h in (12.0, 36.0):
            col = f"survival_{h:g}m"
            if col in pred:
                cal.append({"cohort": name, "horizon": h, "points": survival.calibration_points(
                    t, e, 1 - pd.to_numeric(pred.loc[ids, col]).to_numpy(), h)})
        frame = pd.DataFrame({"dm_time_months": t, "dm_event": e.astype(int)}, index=ids)
        for m in models.values():
            p = m["pred"].set_index("patient_id")
            frame[m["fitted"]["name"]] = 1 - pd.to_numeric(p.loc[ids, "survival_36m"]).to_numpy()
        dcs.append({"cohort": name, "curves": survival.decision_curves(frame, labels, 36.0)})
    fig_dir = Path(args.figures_dir)
    save_figure(survival.km_risk_groups_figure(km, f"{label}: DM-free survival, high vs low risk (training "
                                                   "median cut-off)"), fig_dir / "survival_km_risk_groups.png")
    save_figure(survival.td_roc_figure(rocs, f"{label}: time-dependent ROC"), fig_dir / "survival_td_roc.png")
    save_figure(survival.calibration_figure(cal, f"{label}: calibration by risk quintile"),
                fig_dir / "survival_calibration.png")
    save_figure(survival.decision_curve_figure(dcs, 36.0, "Decision curves at 36 months"),
                fig_dir / "survival_decision_curves.png")

    # Figure S4: SHAP of the clinicoradiological model on the log-hazard scale.
    clin = models[args.clinical_model]
    X = clin["X"].set_index("patient_id").astype(float)
    cp = clin["pred"].set_index("patient_id")
    tr = X.index[(cp.reindex(X.index)["cohort"] == "train").to_numpy()]
    values = survival.linear_shap(clin["fitted"]["coef"], X.loc[tr], X.loc[tr])
    for fig, fname in zip(shap_figures(values, X.loc[tr], clin["fitted"]["name"], args.seed, scale="log-hazard"),
                          ("figure_s4_shap_summary.png", "figure_s4_shap_beeswarm.png")):
        save_figure(fig, fig_dir / fname)
    print(markdown_table(s4))


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    sm = sub.add_parser("survival-model", help="fit one Cox model of time to DM on training, or evaluate it frozen")
    sm.add_argument("--name", required=True, help="model key (file names)")
    sm.add_argument("--label", required=True, help="model name in tables and figures")
    sm.add_argument("--covariates", nargs="+", required=True, choices=["clinical", *SIGNATURE_COLUMNS])
    sm.add_argument("--signatures", nargs="*", type=lambda a: tuple(a.split("=", 1)), default=[],
                    help="SOURCE=FILE: signature tables (patient_id, value, fit)")
    sm.add_argument("--split", required=True)
    clinical_args(sm)
    sm.add_argument("--clinical-spec", type=json_arg, default={}, help="JSON: clinical variable -> encoding")
    sm.add_argument("--p-enter", type=float, default=0.1, help="univariable p of the clinical selection")
    sm.add_argument("--penalizer", type=float, default=0.0, help="ridge penalty of the Cox model")
    sm.add_argument("--selection", choices=["penalised", "stepwise"], default="penalised",
                    help="clinical variables: one elastic-net Cox model with the signatures (penalty by "
                         "cross-validated partial likelihood on --folds), or univariable screening then "
                         "backward AIC")
    sm.add_argument("--penalty", type=json_arg, default={}, help="JSON: survival.penalised settings")
    sm.add_argument("--folds", help="cross-fitting folds of the training patients (penalised selection)")
    sm.add_argument("--optimism-bootstrap", type=int, default=200,
                    help="resamples of Harrell's optimism correction (0: none)")
    sm.add_argument("--horizons", type=float, nargs="+", default=[12, 24, 36, 48, 60])
    sm.add_argument("--n-bootstrap", type=int, default=1000)
    sm.add_argument("--seed", type=int, default=42)
    sm.add_argument("--fitted", help="a fitted model.json: evaluate it on every patient of --split (no fit)")
    sm.add_argument("--out-dir", required=True, help="folder for model.json (fit), or predictions.tsv, "
                                                     "metrics.tsv and covariates.tsv (with --fitted)")
    sm.set_defaults(func=cmd_survival_model)

    sr = sub.add_parser("survival-report", help="Tables S4 and S5, survival figures and Figure S4")
    sr.add_argument("--models", nargs="+", required=True, type=lambda a: tuple(a.split("=", 1)),
                    help="NAME=DIR: survival_model output folders")
    sr.add_argument("--split", required=True)
    clinical_args(sr)
    sr.add_argument("--truth", help="the demo's truth.tsv: add the generating model's row to Tables S4 and S5")
    sr.add_argument("--figure-model", required=True, help="model of the KM, ROC and calibration figures")
    sr.add_argument("--clinical-model", required=True, help="model of Figure S4 (SHAP)")
    sr.add_argument("--horizons", type=float, nargs="+", default=[12, 24, 36, 48, 60])
    sr.add_argument("--n-bootstrap", type=int, default=1000, help="resamples behind the CIs (for the table note)")
    sr.add_argument("--seed", type=int, default=42)
    sr.add_argument("--out-metrics", required=True)
    sr.add_argument("--out-s4", required=True)
    sr.add_argument("--out-s4-md", required=True)
    sr.add_argument("--out-models", required=True, help="how each model was built, events per variable (TSV)")
    sr.add_argument("--out-models-md", required=True)
    sr.add_argument("--out-calibration", required=True, help="calibration intercept and slope table (TSV)")
    sr.add_argument("--out-calibration-md", required=True)
    sr.add_argument("--out-differences", required=True, help="paired C-index differences table (TSV)")
    sr.add_argument("--out-differences-md", required=True)
    sr.add_argument("--out-s5", required=True)
    sr.add_argument("--out-s5-md", required=True)
    sr.add_argument("--figures-dir", required=True)
    sr.set_defaults(func=cmd_survival_report)
