"""ITH habitats and the ITH model (Appendix 6): per-patient habitats, the cohort table and Figure
S6, the tuned forests, Table S2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts, save_figure


def ith_args(sp):
    from ..names import FEATURE_CLASSES

    sp.add_argument("--window", type=int, default=2, help="w: features of the (2w+1)^2 window")
    sp.add_argument("--padding", type=int, default=2, help="pixels around the tumour's bounding box")
    sp.add_argument("--border", default="edge", choices=["edge", "reflect", "symmetric"],
                    help="how image values continue past the image border")
    sp.add_argument("--bin-width", type=float, default=25.0)
    sp.add_argument("--feature-classes", nargs="+", default=list(FEATURE_CLASSES), choices=FEATURE_CLASSES)
    sp.add_argument("--n-init", type=int, default=10, help="k-means restarts")
    sp.add_argument("--min-region-pixels", type=int, default=1,
                    help="regions of at most this many pixels are ignored by the score")
    sp.add_argument("--connectivity", type=int, default=8, choices=[4, 8])
    sp.add_argument("--on-small-tumour", default="error", choices=["error", "nan"])
    sp.add_argument("--seed", type=int, default=42)
    v = sp.add_mutually_exclusive_group()
    v.add_argument("--feature-smoothing-mm", type=float,
                   help="variant: Gaussian sigma (mm) on each feature map before k-means")
    v.add_argument("--feature-smoothing-fraction", type=float,
                   help="variant: that sigma as a fraction of the tumour's diameter on the slice")
    sp.add_argument("--feature-smoothing-edge-hu", type=float,
                    help="variant: make that smoothing edge-preserving, keeping CT contrasts of this many HU")
    sp.add_argument("--pca-components", type=float,
                    help="variant: PCA before k-means, a count or a variance share below 1")
    sp.add_argument("--slices", default="largest", choices=["largest", "all"],
                    help="habitats of the largest slice (the paper) or of every tumour slice, scored in 3D")
    sp.add_argument("--connectivity-3d", type=int, default=26, choices=[6, 26],
                    help="with --slices all: regions joined through faces (6) or also edges and corners (26)")


def _ith_params(args):
    from ..ith.habitats import ITHParams

    return ITHParams(window=args.window, padding=args.padding, border=args.border, bin_width=args.bin_width,
                     feature_classes=tuple(args.feature_classes), clusters=tuple(args.clusters),
                     n_init=args.n_init, min_region_pixels=args.min_region_pixels,
                     connectivity=args.connectivity, on_small_tumour=args.on_small_tumour, seed=args.seed,
                     feature_smoothing_mm=args.feature_smoothing_mm,
                     feature_smoothing_fraction=args.feature_smoothing_fraction,
                     pca_components=args.pca_components, feature_smoothing_edge_hu=args.feature_smoothing_edge_hu,
                     slices=args.slices, connectivity_3d=args.connectivity_3d)


def cmd_ith(args) -> None:
    import warnings

    import numpy as np
    import SimpleITK as sitk

    from ..cohort.geometry import axial_axis
    from ..io import atomic_path, write_json
    from ..ith import habitats as ith
    from ..ith.figures import habitat_figure

    params = _ith_params(args)
    patient = args.patient_id or Path(args.out_dir).parent.name
    image = sitk.ReadImage(str(args.image))
    mask = sitk.ReadImage(str(args.mask))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        axis = axial_axis(image)
        spacing = [s for i, s in enumerate(image.GetSpacing()[::-1]) if i != axis]  # (rows, cols) of a slice
        result = ith.run_ith(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask), axis,
                             params, patient, str(args.mask), spacing=spacing)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    record = ith.summary(result, params, patient)
    seconds = round(time.perf_counter() - t0, 3)  # for the log: outputs hold no timing
    out = Path(args.out_dir)
    arrays = {f"k{k}": m for k, m in result.maps.items()}
    if result.volume_mask is not None:  # the whole tumour's habitats beside their cut
        arrays.update({f"k{k}_volume": v for k, v in result.volumes.items()}, volume_mask=result.volume_mask)
    with atomic_path(out / "label_maps.npz") as tmp:
        np.savez_compressed(tmp, image=result.image.astype(np.float32), mask=result.mask,
                            crop_origin=np.array(result.info["crop_origin"]),
                            slice_index=np.array(result.info["slice_index"]), **arrays)
    write_json(record, out / "scores.json")
    where = ("habitats of the whole tumour, cut through its largest slice" if result.volume_mask is not None
             else "habitats on the largest tumour slice")
    fig = habitat_figure(result, params.clusters, f"{patient}: {where}")
    save_figure(fig, out / "habitats.png")
    scores = ", ".join(f"K{k} {v:.3f}" for k, v in result.scores.items())
    print(f"{patient}: slice {result.info['slice_index']}, {result.info['tumour_pixels']} px, "
          f"{seconds} s; ITH {scores}")


def cmd_ith_cohort(args) -> None:
    from ..ith import habitats as ith
    from ..io import read_json, write_tsv

    table = ith.scores_table([read_json(p) for p in args.scores], args.clusters)
    write_tsv(table, args.out_table)
    print(f"ITH scores of {len(table)} patients -> {args.out_table}")


def _describe(pid: str, clinical, prediction) -> str:
    c = clinical.loc[pid]
    age = _years(c.get("age"))
    traits = ", ".join(str(c[t]) for t in ("sex", "histology", "t_stage", "n_stage") if str(c.get(t, "")) != "")
    dm = ("DM at {:g} months".format(float(c["dm_time_months"])) if int(float(c["dm_event"])) == 1
          else "no DM, follow-up {:g} months".format(float(c["dm_time_months"])))
    risk = "high" if int(prediction["predicted"]) == 1 else "low"
    return (f"{pid} ({prediction['cohort'].replace('_', ' ')}), {age} y, {traits}; "
            f"ITH model: {risk} risk (p = {float(prediction['probability']):.2f}); {dm}")


def _years(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "?"


def cmd_figure_s6(args) -> None:
    import numpy as np

    from ..io import read_json, read_table, write_json
    from ..ith.figures import comparison_figure, pick_matched_pair

    predictions = read_table(args.predictions)
    clinical = read_clinical(args)
    pick = pick_matched_pair(predictions, clinical, args.max_age_gap)
    by_pid = predictions.set_index("patient_id")
    records = {r["patient_id"]: (r, p) for r, p in ((read_json(p), p) for p in args.scores)}
    rows = []
    for pid, name in ((pick["low"], "Patient A"), (pick["high"], "Patient B")):
        rec, path = records[pid]
        data = np.load(Path(path).with_name("label_maps.npz"))
        rows.append({"image": data["image"], "mask": data["mask"],
                     "maps": {k: data[f"k{k}"] for k in args.clusters if f"k{k}" in data},
                     "scores": {k: rec["k"][str(k)]["ith_score"] for k in args.clusters if str(k) in rec["k"]},
                     "label": f"{name}: {_describe(pid, clinical, by_pid.loc[pid])}"})
    save_figure(comparison_figure(rows, args.clusters, pick["how"] + "."), args.out_figure)
    write_json(pick, args.out_pair)
    print(f"Figure S6: {pick['low']} (A) vs {pick['high']} (B). {pick['how']}")


def _ith_features(path, clusters):
    import pandas as pd

    from ..io import read_table

    scores = read_table(path).set_index("patient_id")
    columns = [f"ith_k{k}" for k in clusters]
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise CtithError(f"ITH score table '{path}' has no column {missing[0]}")
    return scores[columns].apply(pd.to_numeric, errors="coerce")


def cmd_ith_model(args) -> None:
    """The fit: the training patients of --split only (the workflow gives it nothing else)."""
    import pandas as pd

    from ..models import ith_model as models
    from ..io import write_json, write_tsv

    X = _ith_features(args.scores, args.clusters)
    cohorts = read_cohorts(args.split).reindex(X.index)
    train = X.index[(cohorts == "train").to_numpy()]
    if len(train) == 0:
        raise CtithError(f"split '{args.split}' puts no patient with ITH scores in the train cohort")
    y = pd.to_numeric(read_clinical(args).reindex(train)["dm_event"], errors="coerce")
    space = models.SearchSpace(**{k: tuple(v) for k, v in (args.space or {}).items()})
    model = models.TunedClassifier(args.n_trials, args.cv_folds, args.smote_k, args.seed, space)
    folds = None
    if args.folds:
        from ..cohort.crossfit import read_folds

        folds = read_folds(args.folds)
    model.fit(X.loc[train], y, folds=folds)

    out = Path(args.out_dir)
    write_json({"name": args.name, **model.fitted()}, out / "fitted.json")
    # The training patients' ITH signature (what the survival models fit on): out-of-fold.
    write_tsv(pd.DataFrame({"patient_id": train, "cohort": "train", "ith_signature": model.oof_.reindex(train),
                            "fit": "oof"}), out / "oof.tsv")
    write_tsv(model.trials_, out / "trials.tsv")
    models.save_model(model.pipeline_, out / models.MODEL_FILE)
    values = models.shap_values(model, X.loc[train])
    write_tsv(pd.DataFrame(values, index=train, columns=X.columns), out / "shap_values.tsv", index=True)
    for fig, name in zip(models.shap_figures(values, X.loc[train], f"ITH model ({args.name})", args.seed),
                         ("shap_summary.png", "shap_beeswarm.png")):
        save_figure(fig, out / name)
    print(f"{args.name}: {model.best_params_}, CV AUC {model.cv_auc_:.3f}, threshold {model.threshold_:.3f} "
          f"on {len(train)} training patients")


def cmd_ith_model_predict(args) -> None:
    """The frozen forest on every patient: predictions and metrics per cohort."""
    import pandas as pd

    from ..models import ith_model as models
    from ..io import read_json, read_table, write_json, write_tsv

    fit_dir = Path(args.model_dir)
    fitted = read_json(fit_dir / "fitted.json")
    clusters = [int(c[len("ith_k"):]) for c in fitted["features"]]
    X = _ith_features(args.scores, clusters)
    cohorts = read_cohorts(args.split).reindex(X.index)
    y = pd.to_numeric(read_clinical(args).reindex(X.index)["dm_event"], errors="coerce")
    oof = read_table(fit_dir / "oof.tsv").set_index("patient_id")["ith_signature"].astype(float)
    pred = models.frozen_predictions(models.load_model(fit_dir / models.MODEL_FILE), fitted, X, cohorts, oof)
    write_tsv(pred, args.out_predictions)
    from ..survival.tables import institution_subgroups
    from ..models.table_s2 import cohort_metrics

    institution = read_table(args.split).set_index("patient_id")["institution"]
    prob = pd.Series(pred["probability"].to_numpy(), index=X.index)
    metrics = {"name": fitted["name"], "clusters": clusters, "n_bootstrap": args.n_bootstrap,
               **cohort_metrics(y, prob, cohorts, fitted["threshold"], args.n_bootstrap, args.seed,
                                institution_subgroups(cohorts, institution))}
    write_json(metrics, args.out_metrics)
    m = metrics
    print(f"{fitted['name']}: AUC internal {m['internal_validation']['auc']:.3f}, "
          f"external {m['external_validation']['auc']:.3f}")


def cmd_table_s2(args) -> None:
    from ..io import markdown_table, read_json, read_table, write_markdown, write_tsv
    from ..models.ith_model import ith_signature, table_s2

    table, hyper = table_s2([read_json(p) for p in args.metrics], [read_json(p) for p in args.fitted])
    note = ""
    if args.truth:  # the demo: the generating model's row, scored the same way
        import pandas as pd

        from ..survival.tables import institution_subgroups
        from ..demo.true_model import TRUE_MODEL
        from ..models.table_s2 import cohort_metrics, s2_row, youden_threshold

        split = read_table(args.split).set_index("patient_id")
        lp = pd.to_numeric(read_table(args.truth).set_index("patient_id")["linear_predictor"]).reindex(split.index)
        y = pd.to_numeric(read_clinical(args).reindex(split.index)["dm_event"], errors="coerce")
        train = (split["cohort"] == "train").to_numpy() & y.notna().to_numpy()
        threshold = youden_threshold(y[train], lp[train])
        n_boot = read_json(args.metrics[0]).get("n_bootstrap", 1000)
        m = cohort_metrics(y, lp, split["cohort"], threshold, n_boot, args.seed,
                           institution_subgroups(split["cohort"], split["institution"]))
        table = pd.concat([table, pd.DataFrame([s2_row(TRUE_MODEL, m)])], ignore_index=True)
        note = (" Last row (demo only): the generating model's true risk, its threshold by Youden's J on the "
                "training patients: what this sample allows.")
    write_tsv(table, args.out_table)
    write_tsv(hyper, args.out_params)
    write_markdown(table, args.out_md, "\nAccuracy at the threshold fixed on training and AUC for DM status, with "
                                       "95% percentile bootstrap CIs of the validation patients." + note
                   + "\n\nChosen hyper-parameters (optuna TPE on stratified CV AUC, training cohort):\n\n"
                   + markdown_table(hyper))
    write_tsv(ith_signature(read_table(args.main_predictions)), args.out_signature)
    print(table.to_string(index=False))


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    t = sub.add_parser("ith", help="habitats and ITH scores of one patient's largest tumour slice")
    t.add_argument("--image", required=True, help="ingested image.nii.gz")
    t.add_argument("--mask", required=True, help="ingested mask.nii.gz")
    t.add_argument("--out-dir", required=True, help="folder for label_maps.npz, scores.json, habitats.png")
    t.add_argument("--patient-id", help="patient ID (default: the parent folder of --out-dir)")
    t.add_argument("--clusters", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    ith_args(t)
    t.set_defaults(func=cmd_ith)

    tc = sub.add_parser("ith-cohort", help="cohort ITH score table")
    tc.add_argument("--scores", nargs="+", required=True, help="per-patient scores.json files")
    tc.add_argument("--clusters", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    tc.add_argument("--out-table", required=True)
    tc.set_defaults(func=cmd_ith_cohort)

    f6 = sub.add_parser("figure-s6", help="Figure S6: a clinically matched low- and high-risk pair, habitats K = 2-8")
    f6.add_argument("--predictions", required=True, help="the ITH model's predictions.tsv")
    f6.add_argument("--scores", nargs="+", required=True, help="per-patient scores.json (label_maps.npz beside)")
    clinical_args(f6)
    f6.add_argument("--clusters", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8], help="K shown")
    f6.add_argument("--max-age-gap", type=float, default=5.0, help="years between the pair's ages at most")
    f6.add_argument("--out-figure", required=True)
    f6.add_argument("--out-pair", required=True, help="JSON: the pair and how it was chosen")
    f6.set_defaults(func=cmd_figure_s6)

    im = sub.add_parser("ith-model", help="SMOTE + random forest on ITH scores, tuned by optuna (Appendix 6)")
    im.add_argument("--scores", required=True, help="cohort ITH score table")
    im.add_argument("--clusters", type=int, nargs="+", required=True, help="K whose ITH scores are the features")
    im.add_argument("--name", required=True)
    im.add_argument("--split", required=True)
    clinical_args(im)
    im.add_argument("--n-trials", type=int, default=25)
    im.add_argument("--cv-folds", type=int, default=10, help="without --folds: seeded stratified CV folds")
    im.add_argument("--folds", help="cross-fitting folds (TSV): the search's CV folds, and out-of-fold "
                                    "signatures for training patients")
    im.add_argument("--smote-k", type=int, default=5)
    im.add_argument("--space", type=json_arg, help="JSON: search space (SearchSpace fields)")
    im.add_argument("--seed", type=int, default=42)
    im.add_argument("--out-dir", required=True, help="folder for fitted.json, oof.tsv, trials.tsv, model.skops, "
                                                     "shap_values.tsv and the SHAP figures")
    im.set_defaults(func=cmd_ith_model)

    ip = sub.add_parser("ith-model-predict", help="the fitted ITH model on every patient, and its metrics")
    ip.add_argument("--scores", required=True, help="cohort ITH score table")
    ip.add_argument("--split", required=True)
    clinical_args(ip)
    ip.add_argument("--model-dir", required=True, help="ith-model's --out-dir")
    ip.add_argument("--out-predictions", required=True)
    ip.add_argument("--out-metrics", required=True)
    ip.add_argument("--n-bootstrap", type=int, default=1000, help="resamples behind the 95% CIs")
    ip.add_argument("--seed", type=int, default=42)
    ip.set_defaults(func=cmd_ith_model_predict)

    s2 = sub.add_parser("table-s2", help="Table S2 and the ITH signature")
    s2.add_argument("--metrics", nargs="+", required=True)
    s2.add_argument("--fitted", nargs="+", required=True)
    s2.add_argument("--main-predictions", required=True, help="predictions.tsv of the ITH model")
    s2.add_argument("--out-table", required=True)
    s2.add_argument("--out-md", required=True)
    s2.add_argument("--out-params", required=True)
    s2.add_argument("--out-signature", required=True)
    s2.add_argument("--truth", help="the demo's truth.tsv: add the generating model's row")
    s2.add_argument("--split", help="split.tsv (with --truth)")
    s2.add_argument("--clinical", help="clinical table (with --truth)")
    s2.add_argument("--clinical-columns", type=json_arg, help="JSON: canonical -> your column")
    s2.add_argument("--seed", type=int, default=42)
    s2.set_defaults(func=cmd_table_s2)
