"""Survival models of time to DM: one Cox model per job, fitted on training or evaluated
frozen (``survival_report`` turns them into Tables S4 and S5 and the figures).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts


SIGNATURE_COLUMNS = {"ith": "ith_signature", "radscore": "rad_score", "dl_e": "dl_e_score", "dl_f": "dl_f_score"}


def _covariates(args, ids, clinical, outcome, train, fitted=None):
    """The model's covariates of the patients ``ids``, and what the clinical selection
    decided (on ``train``; with ``fitted``, its record is applied instead)."""
    import pandas as pd

    from ..survival.clinical import ClinicalEncoder, clinical_covariates

    parts, fits, decided = [], [], {}
    for source in args.covariates:
        if source == "clinical":
            if fitted is None and args.selection == "penalised":  # every candidate: the penalty selects
                from ..survival.penalised import clinical_candidates

                Xc, decided["clinical"] = clinical_candidates(clinical.loc[ids], args.clinical_spec, train)
            elif fitted is None:
                Xc, decided["clinical"] = clinical_covariates(
                    clinical.loc[ids], args.clinical_spec, train, outcome.loc[train, "dm_time_months"],
                    outcome.loc[train, "dm_event"], args.p_enter, args.penalizer)
            else:
                record = fitted["clinical"]
                Xc = ClinicalEncoder.from_dict(record["encoder"]).transform(clinical.loc[ids],
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

    from ..cohort.crossfit import fold_positions, read_folds
    from ..survival.clinical import ClinicalEncoder
    from ..survival.fitting import events_per_variable, fit_cox_model
    from ..survival.optimism import ModelBuilding, optimism_corrected
    from ..survival.penalised import PenaltyParams, fit_penalised_model

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
        fitted = fit_cox_model(args.label, X, outcome, args.penalizer, args.horizons)
        if selection == "stepwise":  # what the screening could choose from, not only what it kept
            encoder = ClinicalEncoder.from_dict(decided["clinical"]["encoder"])
            candidates = pd.concat([encoder.transform(clinical.loc[X.index]), X[signatures]], axis=1)
    fitted["selection"] = selection if selection != "none" else "none (signatures only)"
    fitted["events_per_variable"] = events_per_variable(n_events, candidates.shape[1],
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

    from ..io import read_json, read_table, write_json, write_tsv
    from ..survival.fitting import TRAIN, evaluate_model
    from ..survival.tables import institution_subgroups

    cohorts = read_cohorts(args.split)
    clinical = read_clinical(args)
    ids = cohorts.index[cohorts.index.isin(clinical.index)]
    outcome = pd.DataFrame({"dm_time_months": pd.to_numeric(clinical.loc[ids, "dm_time_months"], errors="coerce"),
                            "dm_event": pd.to_numeric(clinical.loc[ids, "dm_event"], errors="coerce")}, index=ids)
    bad = outcome.index[outcome.isna().any(axis=1).to_numpy()]
    if len(bad):
        raise CtithError(f"patient {bad[0]}: dm_time_months / dm_event missing or not numbers in "
                         f"'{args.clinical}'")
    train = ids[(cohorts.reindex(ids) == TRAIN).to_numpy()]
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
    predictions, rows = evaluate_model(fitted, X, covariates, outcome, cohorts.reindex(ids),
                                                args.n_bootstrap, args.seed,
                                                institution_subgroups(cohorts.reindex(ids), institution))
    write_tsv(predictions, out / "predictions.tsv")
    write_tsv(pd.DataFrame(rows), out / "metrics.tsv")
    write_tsv(X.rename_axis("patient_id").reset_index(), out / "covariates.tsv")
    m = pd.DataFrame(rows).set_index(["cohort", "metric"])
    cindex = {c: m.loc[(c, "c_index"), "value"] for c in dict.fromkeys(m.index.get_level_values(0))}
    print(f"{args.label}: C-index " + ", ".join(f"{c} {v:.3f}" if pd.notna(v) else f"{c} -"
                                                for c, v in cindex.items()))


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
