"""Tables S4 and S5, the model comparisons, the survival figures and Figure S4, from the
``survival-model`` jobs' outputs.
"""

from __future__ import annotations

from pathlib import Path

from ._common import clinical_args, read_clinical, read_cohorts, save_figure


def _read_models(args) -> dict:
    """name -> the fitted model's record, predictions, metrics and covariates."""
    from ..io import read_json, read_table

    models = {}
    for name, folder in args.models:
        folder = Path(folder)
        models[name] = {"fitted": read_json(folder / "model.json"), "pred": read_table(folder / "predictions.tsv"),
                        "metrics": read_table(folder / "metrics.tsv"), "X": read_table(folder / "covariates.tsv")}
    return models


def _table_s4_note(args) -> str:
    return ("\nC-index: Harrell's; AUC: the risk score's ROC AUC for DM status (as Table S2); IBS: integrated "
            "Brier score over the horizons the cohort's follow-up supports. 95% CIs: percentile bootstrap of the "
            f"validation patients ({args.n_bootstrap} resamples), every model frozen, the same resamples for every model. "
            "'-': cannot be computed (see metrics.tsv). Training columns: Harrell's bootstrap optimism "
            "correction (survival.optimism_bootstrap resamples of the training patients, the whole model "
            "building, selection or penalty included, repeated on each); the C-index's optimism is the "
            "resamples' mean gap, the slope's their median (a nearly flat resample model makes a slope unbounded)."
            + (" Last row (demo only): the generating model's true risk, scored the same way: what this "
               "sample allows a model to reach." if args.truth else "") + "\n")


def _table_s4(args, metrics, models, table_labels, validation, cohorts, clinical, outcome, truth):
    """Table S4 with the training columns: each model's optimism-corrected C and slope (the
    true model's apparent ones: nothing was fitted)."""
    import pandas as pd

    from ..survival.optimism import calibration_slope, harrell_c, internal_validation_columns
    from ..survival.tables import table_s4
    from ..demo.true_model import TRUE_MODEL

    internal = {m["fitted"]["name"]: m["fitted"].get("internal_validation") for m in models.values()}
    if truth is not None:
        train_ids = cohorts.index[(cohorts == "train").to_numpy() & cohorts.index.isin(clinical.index)]
        lp, t, e = (pd.to_numeric(truth).loc[train_ids], outcome.loc[train_ids, "dm_time_months"],
                    outcome.loc[train_ids, "dm_event"])
        c, slope = harrell_c(t, e, lp), calibration_slope(t, e, lp)
        internal[TRUE_MODEL] = {"c_index": {"apparent": c, "corrected": c},
                                "calibration_slope": {"apparent": slope, "corrected": slope}}
    return internal_validation_columns(table_s4(metrics, table_labels, validation), internal)


def _comparison_frames(args, models, institution, validation, truth) -> dict:
    """Validation cohort (and institution subgroup) -> every model's risk per patient."""
    import pandas as pd

    from ..survival.tables import institution_subgroups
    from ..demo.true_model import TRUE_MODEL

    frames = {}
    order = models[args.figure_model]["pred"]
    subgroup = institution_subgroups(order.set_index("patient_id")["cohort"], institution).to_numpy()
    for c in validation:
        member = (order["cohort"] == c).to_numpy() | (subgroup == c)
        ids = order.loc[member, "patient_id"].to_numpy()
        frame = pd.DataFrame(index=ids)
        for m in models.values():
            p = m["pred"].set_index("patient_id")
            frame[m["fitted"]["name"]] = pd.to_numeric(p.loc[ids, "risk"]).to_numpy()
        if truth is not None:
            frame[TRUE_MODEL] = pd.to_numeric(truth).reindex(ids).to_numpy()
        frames[c] = frame
    return frames


def _write_comparisons(args, metrics, models, table_labels, validation, institution, outcome, truth) -> None:
    """The model-building table, the calibration table and the paired C-index differences."""
    from ..io import write_markdown, write_tsv
    from ..survival.calibration import calibration_table, differences_table
    from ..survival.penalised import model_building_table

    building = model_building_table({n: m["fitted"] for n, m in models.items()})
    write_tsv(building, args.out_models)
    write_markdown(building, args.out_models_md, "\nEvents per variable: training DM events per candidate parameter "
                                                 "(what the model building could choose from) and per kept one. "
                                                 "Penalised: elastic-net Cox, the penalty by cross-validated partial "
                                                 "likelihood on the cross-fitting folds; signatures unpenalised "
                                                 "unless survival.penalised.penalise_signatures. Stepwise: "
                                                 "univariable screening, then backward AIC.\n")
    cal = calibration_table(metrics, table_labels, validation, args.horizons)
    write_tsv(cal, args.out_calibration)
    write_markdown(cal, args.out_calibration_md, "\nCalibration per validation cohort and horizon (Crowson et al. 2016): "
                   "follow-up cut at the horizon; intercept = log(observed / expected events), 0 ideal, above 0 "
                   "too few predicted; slope of the linear predictor in a Poisson model with the model's "
                   "cumulative hazard as offset, 1 ideal, below 1 risks too extreme. 95% CIs on the resamples of "
                   "Table S4.\n")
    frames = _comparison_frames(args, models, institution, validation, truth)
    reference = models[args.figure_model]["fitted"]["name"]
    diff = differences_table(frames, outcome, reference, table_labels, validation, args.n_bootstrap, args.seed)
    write_tsv(diff, args.out_differences)
    write_markdown(diff, args.out_differences_md, f"\nHarrell's C-index of each model minus {reference}'s, on the "
                   "same validation patients; 95% CI: paired percentile bootstrap (both models on each of the "
                   f"{args.n_bootstrap} resamples of Table S4). A CI that excludes 0 is a difference this sample "
                   "can see.\n")


def _headline_figures(args, models, labels, validation, outcome) -> None:
    """Kaplan-Meier by risk group, time-dependent ROC, calibration and decision curves of the
    headline model, per validation cohort."""
    import numpy as np
    import pandas as pd

    from ..survival.figures import calibration_figure, decision_curve_figure, km_risk_groups_figure, td_roc_figure
    from ..survival.decision import decision_curves
    from ..survival.metrics import calibration_points, cumulative_dynamic_roc, horizon_problem
    from ..survival.tables import cohort_label

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
        name = cohort_label(c)
        km.append({"cohort": name, "time": t, "event": e, "group": pred.loc[ids, "risk_group"].to_numpy()})
        for h in (12.0, 36.0, 60.0):
            if horizon_problem(t_tr, e_tr, t, e, h) is None:
                fpr, tpr = cumulative_dynamic_roc(t_tr, e_tr, t, e, pred.loc[ids, "risk"], h)
                rocs.append({"cohort": name, "horizon": h, "fpr": fpr, "tpr": tpr, "auc": np.trapezoid(tpr, fpr)})
        for h in (12.0, 36.0):
            col = f"survival_{h:g}m"
            if col in pred:
                cal.append({"cohort": name, "horizon": h, "points": calibration_points(
                    t, e, 1 - pd.to_numeric(pred.loc[ids, col]).to_numpy(), h)})
        frame = pd.DataFrame({"dm_time_months": t, "dm_event": e.astype(int)}, index=ids)
        for m in models.values():
            p = m["pred"].set_index("patient_id")
            frame[m["fitted"]["name"]] = 1 - pd.to_numeric(p.loc[ids, "survival_36m"]).to_numpy()
        dcs.append({"cohort": name, "curves": decision_curves(frame, labels, 36.0)})
    fig_dir = Path(args.figures_dir)
    save_figure(km_risk_groups_figure(km, f"{label}: DM-free survival, high vs low risk (training "
                                                   "median cut-off)"), fig_dir / "survival_km_risk_groups.png")
    save_figure(td_roc_figure(rocs, f"{label}: time-dependent ROC"), fig_dir / "survival_td_roc.png")
    save_figure(calibration_figure(cal, f"{label}: calibration by risk quintile"),
                fig_dir / "survival_calibration.png")
    save_figure(decision_curve_figure(dcs, 36.0, "Decision curves at 36 months"),
                fig_dir / "survival_decision_curves.png")


def _figure_s4(args, models) -> None:
    """Figure S4: SHAP of the clinicoradiological model on the log-hazard scale."""
    from ..models.ith_model import shap_figures
    from ..survival.figures import linear_shap

    clin = models[args.clinical_model]
    X = clin["X"].set_index("patient_id").astype(float)
    cp = clin["pred"].set_index("patient_id")
    tr = X.index[(cp.reindex(X.index)["cohort"] == "train").to_numpy()]
    values = linear_shap(clin["fitted"]["coef"], X.loc[tr], X.loc[tr])
    for fig, fname in zip(shap_figures(values, X.loc[tr], clin["fitted"]["name"], args.seed, scale="log-hazard"),
                          ("figure_s4_shap_summary.png", "figure_s4_shap_beeswarm.png")):
        save_figure(fig, Path(args.figures_dir) / fname)


def cmd_survival_report(args) -> None:
    import numpy as np
    import pandas as pd

    from ..io import markdown_table, read_table, write_markdown, write_tsv
    from ..survival.tables import institution_subgroups, table_s5, validation_cohorts

    cohorts = read_cohorts(args.split)
    institution = read_table(args.split).set_index("patient_id")["institution"]
    clinical = read_clinical(args)
    outcome = pd.DataFrame({"dm_time_months": pd.to_numeric(clinical["dm_time_months"], errors="coerce"),
                            "dm_event": pd.to_numeric(clinical["dm_event"], errors="coerce")})
    models = _read_models(args)
    metrics = pd.concat([m["metrics"] for m in models.values()], ignore_index=True)
    labels = [m["fitted"]["name"] for m in models.values()]
    table_labels = list(labels)
    truth = None
    if args.truth:  # the demo: the generating model, scored on the same resamples
        from ..demo.true_model import TRUE_MODEL, true_model_rows

        truth = read_table(args.truth).set_index("patient_id")["linear_predictor"]
        ids = cohorts.index[cohorts.index.isin(clinical.index)]
        metrics = pd.concat([metrics, pd.DataFrame(true_model_rows(
            pd.to_numeric(truth), outcome, cohorts.reindex(ids), args.horizons, args.n_bootstrap, args.seed,
            institution_subgroups(cohorts.reindex(ids), institution)))], ignore_index=True)
        table_labels.append(TRUE_MODEL)
    for col in ("horizon_months", "value", "ci_low", "ci_high"):
        metrics[col] = pd.to_numeric(metrics[col].replace("", np.nan))
    write_tsv(metrics, args.out_metrics)
    validation = validation_cohorts(metrics["cohort"])
    s4 = _table_s4(args, metrics, models, table_labels, validation, cohorts, clinical, outcome, truth)
    write_tsv(s4, args.out_s4)
    write_markdown(s4, args.out_s4_md, _table_s4_note(args))
    _write_comparisons(args, metrics, models, table_labels, validation, institution, outcome, truth)
    s5 = table_s5(metrics, table_labels, validation, args.horizons)
    write_tsv(s5, args.out_s5)
    write_markdown(s5, args.out_s5_md, "\nCumulative/dynamic AUC (IPCW, scikit-survival) at each horizon, 95% "
                                       "percentile bootstrap CI. '-': the cohort's follow-up cannot support "
                                       "the horizon."
                                       + (" Last rows per cohort (demo only): the generating model's true risk."
                                          if args.truth else "") + "\n")
    _headline_figures(args, models, labels, validation, outcome)
    _figure_s4(args, models)
    print(markdown_table(s4))


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
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
