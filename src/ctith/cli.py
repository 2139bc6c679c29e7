"""``ctith <stage>``: one subcommand per stage, explicit paths in, files out.

Each subcommand reads its inputs, calls one stage module, and writes outputs
atomically. Errors a user can act on print as one line naming the patient and the
file, with exit status 1 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CtithError

if TYPE_CHECKING:  # pandas costs 0.6 s to import: per-patient commands that do not need it skip it
    import pandas as pd


def _json_arg(text: str):
    return json.loads(text)


# --------------------------------------------------------------------------- demo


def cmd_demo(args) -> None:
    from . import demo

    counts = None
    if args.n_a is not None or args.n_b is not None:
        base = demo.PRESETS[args.preset].n_patients
        counts = {"A": base["A"] if args.n_a is None else args.n_a,
                  "B": base["B"] if args.n_b is None else args.n_b}
    t0 = time.time()

    def progress(i, n, pid):
        if not args.quiet:
            print(f"[{i}/{n}] {pid} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    sheet = demo.write_cohort(args.out, args.preset, args.seed, counts, progress, n_jobs=args.jobs)
    print(f"demo cohort ({args.preset}, seed {args.seed}) written: {sheet}")


# --------------------------------------------------------------------------- ingest


def cmd_ingest(args) -> None:
    from . import ingest

    result = ingest.ingest(args.image, args.mask, patient_id=args.patient_id or Path(args.out).name,
                           series_uid=args.series_uid or None, mask_label=args.mask_label,
                           orientation=None if args.orientation in (None, "none") else args.orientation,
                           tolerance_mm=args.tolerance_mm, direction_tolerance=args.direction_tolerance)
    paths = ingest.write_result(result, args.out)
    q = result.qc
    print(f"{q['patient_id']}: {q['tumour_voxels']} tumour voxels, {q['tumour_volume_ml']} ml, "
          f"spacing {q['spacing']}, largest slice {q['largest_slice']['index']} -> {paths['qc'].parent}")
    for w in q["warnings"]:
        print(f"warning: {w}", file=sys.stderr)


def cmd_qc_table(args) -> None:
    from .ingest import qc_table
    from .io import read_json, write_tsv

    table = qc_table([read_json(p) for p in args.qc])
    write_tsv(table, args.out)
    print(f"QC table of {len(table)} patients -> {args.out}")


# --------------------------------------------------------------------------- sheets


def _inputs(args, check_files=False):
    from .io import read_table
    from .sheets import validate_inputs

    config = {"clinical_columns": args.clinical_columns or {}, "eligibility": {"criteria": args.criteria or []}}
    return validate_inputs(read_table(args.samples), read_table(args.clinical), config,
                           args.samples, args.clinical, check_files=check_files)


def cmd_validate(args) -> None:
    import yaml

    from .sheets import load_inputs

    config = yaml.safe_load(Path(args.config).read_text())
    inputs = load_inputs(config)
    print(f"OK: {len(inputs.samples)} patients in '{config['samples']}', "
          f"clinical table '{config['clinical']}' complete")


def cmd_eligibility(args) -> None:
    from .eligibility import apply_criteria
    from .io import write_markdown, write_tsv

    inputs = _inputs(args)
    res = apply_criteria(inputs.clinical, inputs.samples["institution"], args.criteria)
    out = Path(args.out_dir)
    write_tsv(res.eligible, out / "eligible.tsv")
    write_tsv(res.flow, out / "eligibility_flow.tsv")
    write_markdown(res.flow, out / "eligibility_flow.md")
    write_tsv(res.excluded, out / "excluded.tsv")
    print(f"{len(res.eligible)} of {len(inputs.samples)} patients eligible -> {out}")


def cmd_split(args) -> None:
    import pandas as pd

    from .io import read_table, write_tsv
    from .split import assign_cohorts

    inputs = _inputs(args)
    eligible = read_table(args.eligible)["patient_id"]
    s = inputs.samples.loc[eligible]
    event = inputs.clinical.reindex(eligible)["dm_event"]
    patients = pd.DataFrame({"patient_id": s["patient_id"].to_numpy(), "institution": s["institution"].to_numpy(),
                             "cohort": s["cohort"].to_numpy(), "event": event.fillna(0).to_numpy()})
    out = assign_cohorts(patients, args.internal, args.external, args.train_fraction, args.seed)
    write_tsv(out, args.out)
    counts = out.groupby("cohort").size().to_dict()
    print(f"cohorts: {counts} -> {args.out}")


# --------------------------------------------------------------------------- ith


def _ith_params(args):
    from .ith import ITHParams

    return ITHParams(window=args.window, padding=args.padding, border=args.border, bin_width=args.bin_width,
                     feature_classes=tuple(args.feature_classes), clusters=tuple(args.clusters),
                     n_init=args.n_init, min_region_pixels=args.min_region_pixels,
                     connectivity=args.connectivity, on_small_tumour=args.on_small_tumour, seed=args.seed,
                     feature_smoothing_mm=args.feature_smoothing_mm,
                     feature_smoothing_fraction=args.feature_smoothing_fraction,
                     pca_components=args.pca_components, feature_smoothing_edge_hu=args.feature_smoothing_edge_hu)


def save_figure(fig, path) -> None:
    import matplotlib.pyplot as plt

    from .io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def cmd_ith(args) -> None:
    import warnings

    import numpy as np
    import SimpleITK as sitk

    from . import ith
    from .ingest import axial_axis
    from .io import atomic_path, write_json

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
    record["seconds"] = round(time.perf_counter() - t0, 3)
    out = Path(args.out_dir)
    arrays = {f"k{k}": m for k, m in result.maps.items()}
    with atomic_path(out / "label_maps.npz") as tmp:
        np.savez_compressed(tmp, image=result.image.astype(np.float32), mask=result.mask,
                            crop_origin=np.array(result.info["crop_origin"]),
                            slice_index=np.array(result.info["slice_index"]), **arrays)
    write_json(record, out / "scores.json")
    fig = ith.habitat_figure(result, params.clusters, f"{patient}: habitats on the largest tumour slice")
    save_figure(fig, out / "habitats.png")
    scores = ", ".join(f"K{k} {v:.3f}" for k, v in result.scores.items())
    print(f"{patient}: slice {result.info['slice_index']}, {result.info['tumour_pixels']} px, "
          f"{record['seconds']} s; ITH {scores}")


def cmd_ith_cohort(args) -> None:
    import numpy as np
    import pandas as pd

    from . import ith
    from .io import read_json, read_table, write_tsv

    records = [read_json(p) for p in args.scores]
    table = ith.scores_table(records, args.clusters)
    write_tsv(table, args.out_table)
    events = None
    if args.clinical:
        clinical = read_table(args.clinical).set_index(args.id_column)
        events = pd.to_numeric(clinical[args.event_column], errors="coerce")
    low, high = ith.pick_comparison(table, events, args.figure_clusters)
    by_id = {r["patient_id"]: p for r, p in zip(records, args.scores)}
    rows = []
    for pid, what in ((low, "low ITH"), (high, "high ITH")):
        data = np.load(Path(by_id[pid]).with_name("label_maps.npz"))
        rec = next(r for r in records if r["patient_id"] == pid)
        maps = {k: data[f"k{k}"] for k in args.clusters if f"k{k}" in data}
        scores = {k: rec["k"][str(k)]["ith_score"] for k in args.clusters if str(k) in rec["k"]}
        status = "" if events is None else (" DM" if events.get(pid) == 1 else " no DM")
        rows.append({"image": data["image"], "mask": data["mask"], "maps": maps, "scores": scores,
                     "label": f"{what}: {pid}{status}"})
    save_figure(ith.comparison_figure(rows, args.clusters), args.out_figure)
    print(f"ITH scores of {len(table)} patients -> {args.out_table}; Figure S6: {low} vs {high}")


# --------------------------------------------------------------------------- radiomics


def _clinical(args) -> pd.DataFrame:
    """The clinical table with canonical column names, indexed by patient_id."""
    from .io import read_table
    from .sheets import rename_clinical

    clinical, missing = rename_clinical(read_table(args.clinical), args.clinical_columns or {})
    if missing:
        raise CtithError(f"clinical table '{args.clinical}' has no {missing[0]}")
    return clinical.set_index("patient_id", drop=False)


def _cohorts(path) -> pd.Series:
    import pandas as pd

    from .io import read_table

    split = read_table(path)
    return pd.Series(split["cohort"].to_numpy(), index=split["patient_id"].to_numpy(), name="cohort")


def cmd_radiomics(args) -> None:
    import SimpleITK as sitk

    from . import radiomics
    from .io import write_json, write_tsv

    patient = args.patient_id
    params = radiomics.load_params(args.params, args.bin_width, args.resampled_spacing)
    image = sitk.ReadImage(str(args.image))
    if args.reader == 2:
        mask = radiomics.reader2_mask_on_image(args.mask, image, patient, args.mask_label,
                                               image_path=str(args.image))
    else:
        mask = sitk.ReadImage(str(args.mask))
    t0 = time.perf_counter()
    features, diagnostics = radiomics.extract(image, mask, params, patient, str(args.mask))
    seconds = time.perf_counter() - t0
    diagnostics.update({"patient_id": patient, "reader": args.reader, "mask": str(args.mask),
                        "params_file": str(args.params), "seconds": round(seconds, 3)})
    write_tsv(radiomics.features_row(features, patient), args.out, index=True)
    write_json(diagnostics, args.diagnostics)
    print(f"{patient}: reader {args.reader}, {len(features)} features in {seconds:.1f} s -> {args.out}")
    for name in diagnostics.get("non_finite_features", []):
        print(f"warning: {patient}: feature {name} is not finite", file=sys.stderr)


def cmd_radiomics_table(args) -> None:
    from . import radiomics
    from .io import read_feature_table, write_tsv

    rows = [read_feature_table(p) for p in args.features]
    table = radiomics.cohort_table(rows)
    write_tsv(table, args.out, index=True)
    print(f"{table.shape[0]} patients x {table.shape[1]} features -> {args.out}")


def cmd_semantic(args) -> None:
    import SimpleITK as sitk

    from . import semantic
    from .ingest import read_ct
    from .io import write_json

    params = semantic.SemanticParams(**(args.params or {}))
    image = sitk.ReadImage(str(args.image))
    mask = sitk.ReadImage(str(args.mask))
    plain = read_ct(args.plain_ct, "plain CT", args.plain_series_uid or None, args.patient_id) if args.plain_ct else None
    record = semantic.measure(image, mask, plain, params, args.patient_id, args.plain_ct)
    write_json(record, args.out)
    ratings = ", ".join(f"{k} {record[k]}" for k in semantic.RATINGS)
    print(f"{args.patient_id}: {ratings} -> {args.out}")


def cmd_semantic_table(args) -> None:
    from . import semantic
    from .io import read_json, write_tsv

    table = semantic.semantic_table([read_json(p) for p in args.records])
    write_tsv(table, args.out_table)
    agreement = semantic.agreement_with_readers(table, _clinical(args))
    write_tsv(agreement, args.out_agreement)
    print(f"semantic features of {len(table)} patients -> {args.out_table}")
    print(agreement.to_string(index=False))


def cmd_reproducibility(args) -> None:
    import pandas as pd

    from . import reproducibility
    from .io import read_feature_table, read_table, write_markdown, write_tsv

    clinical = _clinical(args)
    eligible = read_table(args.eligible)["patient_id"].tolist()
    s3 = reproducibility.table_s3(clinical.loc[eligible], args.table_s3_items, args.icc_form)
    write_tsv(s3, args.out_table_s3_values)
    formatted = reproducibility.format_table_s3(s3)
    write_tsv(formatted, args.out_table_s3)
    write_markdown(formatted, args.out_table_s3_md)
    print(f"Table S3 ({args.icc_form}, {len(eligible)} eligible patients):")
    print(formatted.to_string(index=False))

    r1 = read_feature_table(args.reader1)
    r2 = read_feature_table(args.reader2)
    cohorts = _cohorts(args.split)
    use = [p for p in r2.index if p in r1.index and cohorts.get(p) in args.cohorts]
    if args.icc_threshold is None:
        table = pd.DataFrame({"feature": r1.columns, "icc": float("nan"), "ci_low": float("nan"),
                              "ci_high": float("nan"), "n": 0})
        table["reproducible"] = True
        print("ICC filter off: every feature kept")
    else:
        if len(use) < args.min_patients:
            raise CtithError(f"{len(use)} patients of cohorts {args.cohorts} have a reader-2 mask; the ICC "
                             f"filter needs at least {args.min_patients} (config reproducibility.min_patients, "
                             "icc_cohorts, or icc_threshold: null to switch the filter off)")
        table = reproducibility.feature_icc(r1.loc[use], r2.loc[use], args.icc_form)
        table["reproducible"] = reproducibility.reproducible(table, args.icc_threshold).to_numpy()
        print(f"feature ICC on {len(use)} re-segmented patients of {args.cohorts}: "
              f"{int(table['reproducible'].sum())} of {len(table)} features with {args.icc_form} >= "
              f"{args.icc_threshold}")
    write_tsv(table, args.out_icc)


def _batch(args, patients) -> pd.Series:
    from .io import read_table

    samples = read_table(args.samples).set_index("patient_id")
    if args.batch_column in samples.columns:
        batch = samples[args.batch_column]
    else:
        clinical = _clinical(args)
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
    from . import harmonize
    from .io import read_feature_table, read_table, write_json, write_tsv

    features = read_feature_table(args.features)
    icc = read_table(args.icc)
    keep = icc.loc[icc["reproducible"].str.lower() == "true", "feature"].tolist()
    X = features[keep]
    cohorts = _cohorts(args.split).reindex(X.index)
    covariates = _clinical(args) if (args.categorical or args.continuous) else None
    result = harmonize.harmonize(X, _batch(args, X.index), cohorts, args.mode, covariates, args.categorical,
                                 args.continuous, args.constant_in_batch)
    result.summary.update({"batch_column": args.batch_column, "icc_filtered_out": int(features.shape[1] - len(keep))})
    write_tsv(result.features, args.out_features, index=True)
    write_tsv(result.smd, args.out_smd)
    write_json(result.summary, args.out_report)
    s = result.summary
    print(f"ComBat ({s['mode']}, batch '{args.batch_column}', fitted on {s['fitted_on']}): "
          f"{s['features_out']} features; mean |standardized difference| between batches "
          f"{s['mean_abs_smd_before']:.3f} -> {s['mean_abs_smd_after']:.3f} "
          f"({100 * s['smd_reduction']:.1f}% less)")


def cmd_select(args) -> None:
    import pandas as pd

    from . import selection
    from .io import read_feature_table, read_json, write_json, write_tsv

    features = read_feature_table(args.features)
    cohorts = _cohorts(args.split).reindex(features.index)
    clinical = _clinical(args).reindex(features.index)
    train = features.index[(cohorts == "train").to_numpy()]
    if len(train) == 0:
        raise CtithError(f"split '{args.split}' puts no patient with features in the train cohort")
    event = pd.to_numeric(clinical.loc[train, "dm_event"])
    time_ = pd.to_numeric(clinical.loc[train, "dm_time_months"])
    model = selection.RadScore(args.variance_threshold, args.correlation_cutoff, args.cv_folds, args.n_alphas,
                               args.alpha_min_ratio, args.alpha_rule, args.seed)
    folds = None
    if args.folds:
        from .crossfit import read_folds

        folds = read_folds(args.folds)
    model.fit(features.loc[train], event, time_, folds=folds)
    mode = read_json(args.harmonization)["mode"] if args.harmonization else "none"
    refit = model.predict(features)
    scores = pd.DataFrame({"patient_id": features.index, "cohort": cohorts.to_numpy(),
                           "rad_score": refit.to_numpy(), "fit": "refit", "rad_score_refit": refit.to_numpy(),
                           "combat_mode": mode})
    if folds is not None:  # training patients: the fold LASSO that did not see them
        is_train = scores["patient_id"].isin(train).to_numpy()
        scores.loc[is_train, "rad_score"] = model.oof_.reindex(scores.loc[is_train, "patient_id"]).to_numpy()
        scores.loc[is_train, "fit"] = "oof"
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


# --------------------------------------------------------------------------- deep learning


def cmd_dl_input(args) -> None:
    import numpy as np
    import SimpleITK as sitk

    from . import dl_input
    from .ingest import axial_axis
    from .io import atomic_path, write_json

    params = dl_input.DLInputParams(**(args.params or {}))
    image = sitk.ReadImage(str(args.image))
    mask = sitk.ReadImage(str(args.mask))
    tensor, qc = dl_input.build_input(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask),
                                      axial_axis(image), params, args.patient_id)
    out = Path(args.out_dir)
    with atomic_path(out / "input.npy") as tmp:
        np.save(tmp, tensor)
    write_json(qc, out / "qc.json")
    save_figure(dl_input.preview_figure(tensor, f"{args.patient_id}: 2.5D input", qc["channel_slices"]),
                out / "preview.png")
    print(f"{args.patient_id}: slices {qc['channel_slices']}, crop {qc['crop_shape']} -> {tensor.shape} in {out}")
    if qc["clamped"]:
        print(f"warning: {args.patient_id}: {qc['warning']}", file=sys.stderr)


def _dl_inputs(paths) -> tuple[list[str], object]:
    """Patient IDs (from each input's qc.json) and the stacked (N, 3, H, W) inputs."""
    import numpy as np

    from .io import read_json

    ids = [read_json(Path(p).with_name("qc.json"))["patient_id"] for p in paths]
    return ids, np.stack([np.load(p) for p in paths]) if paths else np.zeros((0, 3, 1, 1), np.float32)


def _dl_params(args):
    from .dl import TrainParams

    return TrainParams(**{**(args.params or {}), "seed": args.seed, "device": args.device})


def cmd_dl_train(args) -> None:
    import pandas as pd
    import torch

    from . import dl
    from .io import write_json, write_tsv

    torch.set_num_threads(args.threads)
    ids, images = _dl_inputs(args.inputs)
    cohorts = _cohorts(args.split)
    clinical = _clinical(args)
    train = [i for i, pid in enumerate(ids) if cohorts.get(pid) == "train"]
    if not train:
        raise CtithError(f"split '{args.split}' puts none of the {len(ids)} patients in the train cohort")
    held_out = []
    if args.fold is not None:  # a cross-fitting net: the training patients of the other folds
        from .crossfit import read_folds

        folds = read_folds(args.folds)
        unknown = [ids[i] for i in train if ids[i] not in folds.index]
        if unknown:
            raise CtithError(f"patient {unknown[0]}: a training patient without a fold in '{args.folds}'")
        if args.fold not in set(folds.tolist()):
            raise CtithError(f"fold {args.fold} is not in '{args.folds}' (folds {sorted(set(folds.tolist()))})")
        held_out = [ids[i] for i in train if folds[ids[i]] == args.fold]
        train = [i for i in train if folds[ids[i]] != args.fold]
    labels = pd.to_numeric(clinical.loc[[ids[i] for i in train], "dm_event"]).to_numpy().astype(int)
    params = _dl_params(args)
    what = "DL training" if args.fold is None else f"DL training without fold {args.fold}"
    try:
        result = dl.train(images[train], labels, params, log=lambda s: print(s, flush=True))
    except ValueError as exc:
        raise CtithError(f"{what}: {exc}") from None
    out = Path(args.out_dir)
    dl.save_weights(result.model, out / "model.pt")
    write_tsv(pd.DataFrame(result.history), out / "loss.tsv")
    write_json({**result.info, "fold": args.fold, "train_patients": [ids[i] for i in train],
                "held_out_patients": held_out}, out / "training.json")
    i = result.info
    print(f"{what} on {i['device']}: {i['n_fit']} patients ({i['fit_events']} DM), {i['n_inner_val']} for early "
          f"stopping; kept epoch {i['best_epoch']} of {i['epochs_run']} ({i['seconds']} s)")


def cmd_dl_predict(args) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from . import dl
    from .io import atomic_path, read_json, read_table, write_tsv

    torch.set_num_threads(args.threads)
    ids, images = _dl_inputs(args.inputs)
    cohorts = _cohorts(args.split)
    model_dir = Path(args.model).parent
    params = dl.TrainParams(**read_json(model_dir / "training.json")["params"])
    model = dl.load_model(args.model, params)
    prob, feats = dl.predict(model, images)
    cohort = [cohorts.get(pid, "") for pid in ids]
    names = [f"dlf_{j:03d}" for j in range(feats.shape[1])]
    # DL_E as a signature: each training patient's probability from the fold net that never
    # saw them, everyone else's from the refit (crossfit.py).
    dl_e = pd.DataFrame({"patient_id": ids, "cohort": cohort, "dl_e": prob, "fit": "refit", "dl_e_refit": prob})
    row = {pid: i for i, pid in enumerate(ids)}
    fold_rows = []
    for path in args.fold_models or []:
        info = read_json(Path(path).parent / "training.json")
        net = dl.load_model(path, dl.TrainParams(**info["params"]))
        train = [row[p] for p in info["train_patients"] + info["held_out_patients"] if p in row]
        p_fold, f_fold = dl.predict(net, images[train])
        held = np.isin([ids[i] for i in train], info["held_out_patients"])
        dl_e.loc[np.array(train)[held], "dl_e"] = p_fold[held]
        dl_e.loc[np.array(train)[held], "fit"] = "oof"
        fold_rows.append(pd.DataFrame(f_fold, columns=names).assign(
            fold=info["fold"], patient_id=[ids[i] for i in train])[["fold", "patient_id", *names]])
    if args.fold_models:
        unseen = dl_e.loc[(dl_e["cohort"] == "train") & (dl_e["fit"] != "oof"), "patient_id"].tolist()
        if unseen:
            raise CtithError(f"patient {unseen[0]}: a training patient that no fold net held out; were the "
                             "fold nets trained with other cross-fitting folds?")
        write_tsv(pd.concat(fold_rows, ignore_index=True), args.out_fold_features)
    # The survival models take DL_E on the logit scale (a probability is bounded; its log-odds is not).
    p = np.clip(dl_e["dl_e"].to_numpy(float), 1e-6, 1 - 1e-6)
    dl_e.insert(3, "dl_e_logit", np.log(p / (1 - p)))
    write_tsv(dl_e, args.out_dl_e)
    dlf = pd.DataFrame(feats, columns=names)
    dlf.insert(0, "cohort", cohort)
    dlf.insert(0, "patient_id", ids)
    write_tsv(dlf, args.out_dl_f)
    loss = read_table(model_dir / "loss.tsv")
    save_figure(dl.loss_figure(loss.to_dict("records"), read_json(model_dir / "training.json")["best_epoch"]),
                args.loss_figure)

    clinical = _clinical(args)
    val = [i for i, c in enumerate(cohort) if c in ("internal_validation", "external_validation")]
    maps = dl.gradcam(model, images[val])
    with atomic_path(args.out_gradcam) as tmp:
        np.savez_compressed(tmp, patient_id=np.array([ids[i] for i in val]), gradcam=maps.astype(np.float32))
    if not val:
        raise CtithError("no validation patient to show Grad-CAM maps for")
    dm = [str(clinical["dm_event"].get(ids[i], "")) == "1" for i in val]
    # Figure S5 shows DM and non-DM patients alike: alternate between the two groups.
    with_dm = [k for k, d in enumerate(dm) if d]
    without = [k for k, d in enumerate(dm) if not d]
    order = [k for pair in zip(with_dm, without) for k in pair]
    order += [k for k in with_dm + without if k not in order]
    shown = sorted(order[: args.gradcam_patients])
    labels = [f"{ids[val[k]]} ({'DM' if dm[k] else 'no DM'})\nDL_E {prob[val[k]]:.2f}" for k in shown]
    save_figure(dl.gradcam_figure(images[[val[k] for k in shown]], maps[shown], labels), args.figure)
    print(f"DL_E and DL_F ({feats.shape[1]} features) of {len(ids)} patients; Grad-CAM of {len(val)} "
          f"validation patients, {len(shown)} in {args.figure}")


def cmd_dl_signature(args) -> None:
    import pandas as pd

    from . import selection
    from .crossfit import read_folds, two_stage_scores
    from .io import read_table, write_json, write_tsv

    refit = read_table(args.dl_f).set_index("patient_id")
    cohorts = refit.pop("cohort") if "cohort" in refit else None
    refit = refit.apply(pd.to_numeric)
    folds = read_folds(args.folds)
    fold_table = read_table(args.fold_features)
    fold_features = {int(k): g.drop(columns="fold").set_index("patient_id").apply(pd.to_numeric)
                     for k, g in fold_table.groupby("fold")}
    clinical = _clinical(args).reindex(folds.index)
    event = pd.to_numeric(clinical["dm_event"], errors="coerce")
    time_ = pd.to_numeric(clinical["dm_time_months"], errors="coerce")
    bad = folds.index[(event.isna() | time_.isna()).to_numpy()]
    if len(bad):
        raise CtithError(f"patient {bad[0]}: dm_event / dm_time_months missing in '{args.clinical}'")
    fit = selection.radscore_fitter(event, time_, variance_threshold=args.variance_threshold,
                                    correlation_cutoff=args.correlation_cutoff, n_alphas=args.n_alphas,
                                    alpha_min_ratio=args.alpha_min_ratio, alpha_rule=args.alpha_rule, seed=args.seed)
    try:
        table, model, fold_models = two_stage_scores(refit, fold_features, folds, fit, name="dl_f_score")
    except selection.SelectionError as exc:
        raise CtithError(f"DL_F signature: {exc}") from None
    if cohorts is not None:
        table.insert(1, "cohort", cohorts.reindex(table["patient_id"]).to_numpy())
    write_tsv(table, args.out_scores)
    write_tsv(model.signature(), args.out_signature)
    report = {**model.report(), "n_train": int(len(folds)), "train_events": int(event.sum()),
              "folds": {str(k): {"selected": int(len(m.coef_)), "alpha": m.alpha_} for k, m in fold_models.items()}}
    write_json(report, args.out_report)
    print(f"DL_F signature: {report['features_in']} deep features -> LASSO-Cox {report['selected']} "
          f"(alpha {report['alpha']:.4g}); fold LASSOs keep "
          + ", ".join(str(v["selected"]) for v in report["folds"].values()))


# --------------------------------------------------------------------------- ITH model


def cmd_ith_model(args) -> None:
    import joblib
    import numpy as np
    import pandas as pd

    from . import models
    from .io import atomic_path, read_table, write_json, write_tsv

    scores = read_table(args.scores).set_index("patient_id")
    columns = [f"ith_k{k}" for k in args.clusters]
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise CtithError(f"ITH score table '{args.scores}' has no column {missing[0]}")
    X = scores[columns].apply(pd.to_numeric, errors="coerce")
    cohorts = _cohorts(args.split).reindex(X.index)
    clinical = _clinical(args).reindex(X.index)
    y = pd.to_numeric(clinical["dm_event"], errors="coerce")
    train = X.index[(cohorts == "train").to_numpy()]
    if len(train) == 0:
        raise CtithError(f"split '{args.split}' puts no patient with ITH scores in the train cohort")
    space = models.SearchSpace(**{k: tuple(v) for k, v in (args.space or {}).items()})
    model = models.TunedClassifier(args.n_trials, args.cv_folds, args.smote_k, args.seed, space)
    folds = None
    if args.folds:
        from .crossfit import read_folds

        folds = read_folds(args.folds)
    model.fit(X.loc[train], y.loc[train], folds=folds)

    out = Path(args.out_dir)
    prob = model.predict_proba(X)
    pred = pd.DataFrame({"patient_id": X.index, "cohort": cohorts.to_numpy(), "probability": prob,
                         "predicted": (prob >= model.threshold_).astype(int)})
    # The signature a survival model takes: out-of-fold for training patients (the search's
    # best trial, whose fold forests never saw them), the refitted forest for the others.
    is_train = X.index.isin(train)
    pred["signature"] = np.where(is_train, model.oof_.reindex(X.index).to_numpy(), prob)
    pred["fit"] = np.where(is_train, "oof", "refit")
    write_tsv(pred, out / "predictions.tsv")
    write_json({"name": args.name, **model.fitted()}, out / "fitted.json")
    write_tsv(model.trials_, out / "trials.tsv")
    with atomic_path(out / "model.joblib") as tmp:
        joblib.dump(model.pipeline_, tmp)
    metrics = {"name": args.name, "clusters": args.clusters}
    for cohort in ("train", "internal_validation", "external_validation"):
        rows = (cohorts == cohort).to_numpy() & y.notna().to_numpy()
        metrics[cohort] = models.classification_metrics(y[rows], prob[rows], model.threshold_)
    write_json(metrics, out / "metrics.json")
    values = models.shap_values(model, X.loc[train])
    write_tsv(pd.DataFrame(values, index=train, columns=columns), out / "shap_values.tsv", index=True)
    for fig, name in zip(models.shap_figures(values, X.loc[train], f"ITH model ({args.name})", args.seed),
                         ("shap_summary.png", "shap_beeswarm.png")):
        save_figure(fig, out / name)
    m = metrics
    print(f"{args.name}: {model.best_params_}, CV AUC {model.cv_auc_:.3f}, threshold {model.threshold_:.3f}; "
          f"AUC internal {m['internal_validation']['auc']:.3f}, external {m['external_validation']['auc']:.3f}")


def cmd_table_s2(args) -> None:
    import pandas as pd

    from .io import markdown_table, read_json, read_table, write_markdown, write_tsv

    def num(x):
        return "-" if x is None or pd.isna(x) else f"{x:.3f}"

    rows, params = [], []
    for mpath, fpath in zip(args.metrics, args.fitted):
        m, f = read_json(mpath), read_json(fpath)
        ks = m["clusters"]
        label = str(ks[0]) if len(ks) == 1 else (f"{ks[0]}-{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1))
                                                 else ",".join(map(str, ks)))
        iv, ev = m["internal_validation"], m["external_validation"]
        rows.append({"Cluster numbers": label, "Internal validation accuracy": num(iv["accuracy"]),
                     "Internal validation AUC": num(iv["auc"]), "External validation accuracy": num(ev["accuracy"]),
                     "External validation AUC": num(ev["auc"])})
        params.append({"Cluster numbers": label, "CV AUC (train)": num(f["cv_auc"]), "threshold": num(f["threshold"]),
                       "SMOTE k": f["smote_k"], **f["best_params"]})
    table = pd.DataFrame(rows)
    hyper = pd.DataFrame(params)
    write_tsv(table, args.out_table)
    write_tsv(hyper, args.out_params)
    write_markdown(table, args.out_md, "\nChosen hyper-parameters (optuna TPE on stratified CV AUC, training "
                                       "cohort):\n\n" + markdown_table(hyper))
    main = read_table(args.main_predictions)
    signature = main.rename(columns={"signature": "ith_signature"})[["patient_id", "cohort", "ith_signature", "fit"]]
    write_tsv(signature, args.out_signature)
    print(table.to_string(index=False))


def cmd_crossfit_folds(args) -> None:
    import pandas as pd

    from .crossfit import assign_folds
    from .io import write_tsv

    cohorts = _cohorts(args.split)
    train = cohorts.index[(cohorts == "train").to_numpy()]
    clinical = _clinical(args)
    missing = [p for p in train if p not in clinical.index]
    if missing:
        raise CtithError(f"patient {missing[0]}: in the training cohort of '{args.split}' but not in the "
                         f"clinical table '{args.clinical}'")
    event = pd.to_numeric(clinical.loc[train, "dm_event"], errors="coerce")
    if event.isna().any():
        raise CtithError(f"patient {event.index[event.isna()][0]}: dm_event is not 0/1 in '{args.clinical}'")
    folds = assign_folds(train, event.astype(int), args.folds, args.seed)
    out = pd.DataFrame({"patient_id": folds.index, "fold": folds.to_numpy(),
                        "dm_event": event.reindex(folds.index).astype(int).to_numpy()})
    write_tsv(out, args.out)
    per = out.groupby("fold")["dm_event"].agg(["size", "sum"])
    print(f"{len(out)} training patients in {args.folds} folds (seed {args.seed}); patients / DM per fold: "
          + ", ".join(f"{n}/{e}" for n, e in per.itertuples(index=False)))


# --------------------------------------------------------------------------- survival

SIGNATURE_COLUMNS = {"ith": "ith_signature", "radscore": "rad_score", "dl_e": "dl_e_logit", "dl_f": "dl_f_score"}


def cmd_survival_model(args) -> None:
    import pandas as pd

    from . import survival
    from .io import read_table, write_json, write_tsv

    cohorts = _cohorts(args.split)
    clinical = _clinical(args)
    ids = cohorts.index[cohorts.index.isin(clinical.index)]
    outcome = pd.DataFrame({"dm_time_months": pd.to_numeric(clinical.loc[ids, "dm_time_months"], errors="coerce"),
                            "dm_event": pd.to_numeric(clinical.loc[ids, "dm_event"], errors="coerce")}, index=ids)
    bad = outcome.index[outcome.isna().any(axis=1).to_numpy()]
    if len(bad):
        raise CtithError(f"patient {bad[0]}: dm_time_months / dm_event missing or not numbers in "
                         f"'{args.clinical}'")
    train = ids[(cohorts.reindex(ids) == survival.TRAIN).to_numpy()]
    parts, fits, decided = [], [], {}
    for source in args.covariates:
        if source == "clinical":
            Xc, decided["clinical"] = survival.clinical_covariates(
                clinical.loc[ids], args.clinical_spec, train, outcome.loc[train, "dm_time_months"],
                outcome.loc[train, "dm_event"], args.p_enter, args.penalizer)
            parts.append(Xc)
            continue
        path = dict(args.signatures or {}).get(source)
        if path is None:
            raise CtithError(f"model {args.name}: covariate source '{source}' needs --signatures {source}=FILE")
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
    fitted, predictions, rows = survival.fit_and_evaluate(
        args.label, X, covariates, outcome, cohorts.reindex(ids), args.penalizer, args.horizons, args.n_bootstrap,
        args.seed)
    fitted.update({"model": args.name, "covariate_sources": args.covariates, **decided})
    out = Path(args.out_dir)
    write_json(fitted, out / "model.json")
    write_tsv(predictions, out / "predictions.tsv")
    write_tsv(pd.DataFrame(rows), out / "metrics.tsv")
    write_tsv(X.rename_axis("patient_id").reset_index(), out / "covariates.tsv")
    m = pd.DataFrame(rows).set_index(["cohort", "metric"])
    cindex = {c: m.loc[(c, "c_index"), "value"] for c in dict.fromkeys(m.index.get_level_values(0))}
    print(f"{args.label}: coefficients {dict(zip(fitted['features'], [round(c, 4) for c in fitted['coef']]))}; "
          "C-index " + ", ".join(f"{c} {v:.3f}" if pd.notna(v) else f"{c} -" for c, v in cindex.items()))


def cmd_survival_report(args) -> None:
    import numpy as np
    import pandas as pd

    from . import survival
    from .io import markdown_table, read_json, read_table, write_markdown, write_tsv
    from .models import shap_figures

    cohorts = _cohorts(args.split)
    clinical = _clinical(args)
    outcome = pd.DataFrame({"dm_time_months": pd.to_numeric(clinical["dm_time_months"], errors="coerce"),
                            "dm_event": pd.to_numeric(clinical["dm_event"], errors="coerce")})
    models = {}
    for name, folder in args.models:
        folder = Path(folder)
        models[name] = {"fitted": read_json(folder / "model.json"), "pred": read_table(folder / "predictions.tsv"),
                        "metrics": read_table(folder / "metrics.tsv"), "X": read_table(folder / "covariates.tsv")}
    metrics = pd.concat([m["metrics"] for m in models.values()], ignore_index=True)
    for col in ("horizon_months", "value", "ci_low", "ci_high"):
        metrics[col] = pd.to_numeric(metrics[col].replace("", np.nan))
    write_tsv(metrics, args.out_metrics)
    labels = [m["fitted"]["name"] for m in models.values()]
    validation = [c for c in ("internal_validation", "external_validation") if (cohorts == c).any()]
    validation += sorted(set(cohorts) - {"train", *validation})
    note = ("\nC-index: Harrell's; AUC: the risk score's ROC AUC for DM status (as Table S2); IBS: integrated "
            "Brier score over the horizons the cohort's follow-up supports. 95% CIs: percentile bootstrap of the "
            f"validation patients ({args.n_bootstrap} resamples), every model frozen, the same resamples for every model. "
            "'-': cannot be computed (see metrics.tsv).\n")
    s4 = survival.table_s4(metrics, labels, validation)
    write_tsv(s4, args.out_s4)
    write_markdown(s4, args.out_s4_md, note)
    s5 = survival.table_s5(metrics, labels, validation, args.horizons)
    write_tsv(s5, args.out_s5)
    write_markdown(s5, args.out_s5_md, "\nCumulative/dynamic AUC (IPCW, scikit-survival) at each horizon, 95% "
                                       "percentile bootstrap CI. '-': the cohort's follow-up cannot support "
                                       "the horizon.\n")

    # Figures of the headline model, per validation cohort.
    head = models[args.figure_model]
    label = head["fitted"]["name"]
    pred = head["pred"].set_index("patient_id")
    pred["risk"] = pd.to_numeric(pred["risk"])
    train = pred.index[(pred["cohort"] == "train").to_numpy()]
    t_tr, e_tr = outcome.loc[train, "dm_time_months"].to_numpy(), outcome.loc[train, "dm_event"].to_numpy()
    km, rocs, cal, dcs = [], [], [], []
    for c in validation:
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


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctith", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="generate the synthetic demo cohort")
    d.add_argument("--preset", default="demo", choices=["tiny", "demo", "paper"])
    d.add_argument("--seed", type=int, default=20240601)
    d.add_argument("--out", required=True, help="output folder (replaced)")
    d.add_argument("--n-a", type=int, help="patients of institution A (overrides the preset)")
    d.add_argument("--n-b", type=int, help="patients of institution B (overrides the preset)")
    d.add_argument("--jobs", type=int, default=1, help="worker processes (same files for any number)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("ingest", help="check and canonicalise one patient's CT and mask")
    i.add_argument("--image", required=True, help="CT file or DICOM series folder")
    i.add_argument("--mask", required=True, help="tumour mask (label image)")
    i.add_argument("--out", required=True, help="folder for image.nii.gz, mask.nii.gz, qc.json")
    i.add_argument("--patient-id", help="patient ID for messages (default: the --out folder name)")
    i.add_argument("--series-uid", help="SeriesInstanceUID when the folder holds several series")
    i.add_argument("--mask-label", type=int, help="label of the tumour in a multi-label mask")
    i.add_argument("--orientation", default="LPS", help="canonical orientation code, or 'none'")
    i.add_argument("--tolerance-mm", type=float, default=0.01, help="origin/spacing tolerance (mm)")
    i.add_argument("--direction-tolerance", type=float, default=1e-4)
    i.set_defaults(func=cmd_ingest)

    q = sub.add_parser("qc-table", help="cohort QC table from per-patient qc.json files")
    q.add_argument("--qc", nargs="+", required=True)
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_qc_table)

    v = sub.add_parser("validate", help="check a config's sample sheet and clinical table")
    v.add_argument("--config", default="config.yaml")
    v.set_defaults(func=cmd_validate)

    def sheet_args(sp):
        sp.add_argument("--samples", required=True)
        sp.add_argument("--clinical", required=True)
        sp.add_argument("--clinical-columns", type=_json_arg, help="JSON: canonical -> your column")
        sp.add_argument("--criteria", type=_json_arg, default=[], help="JSON list of criteria")

    e = sub.add_parser("eligibility", help="Appendix 1 criteria: eligible list, flow, exclusions")
    sheet_args(e)
    e.add_argument("--out-dir", required=True)
    e.set_defaults(func=cmd_eligibility)

    s = sub.add_parser("split", help="assign train / internal / external validation cohorts")
    sheet_args(s)
    s.add_argument("--eligible", required=True)
    s.add_argument("--internal", nargs="*", default=[], help="institutions split into train/internal")
    s.add_argument("--external", nargs="*", default=[], help="institutions forming external validation")
    s.add_argument("--train-fraction", type=float, default=0.7)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_split)

    def ith_args(sp):
        from .names import FEATURE_CLASSES

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

    t = sub.add_parser("ith", help="habitats and ITH scores of one patient's largest tumour slice")
    t.add_argument("--image", required=True, help="ingested image.nii.gz")
    t.add_argument("--mask", required=True, help="ingested mask.nii.gz")
    t.add_argument("--out-dir", required=True, help="folder for label_maps.npz, scores.json, habitats.png")
    t.add_argument("--patient-id", help="patient ID (default: the parent folder of --out-dir)")
    t.add_argument("--clusters", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    ith_args(t)
    t.set_defaults(func=cmd_ith)

    tc = sub.add_parser("ith-cohort", help="cohort ITH table and the Figure S6 comparison")
    tc.add_argument("--scores", nargs="+", required=True, help="per-patient scores.json files")
    tc.add_argument("--clinical", help="clinical table (DM events pick the Figure S6 patients)")
    tc.add_argument("--id-column", default="patient_id")
    tc.add_argument("--event-column", default="dm_event")
    tc.add_argument("--clusters", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    tc.add_argument("--figure-clusters", type=int, nargs="+", default=[2, 3, 4, 5],
                    help="K whose mean ITH ranks patients for Figure S6")
    tc.add_argument("--out-table", required=True)
    tc.add_argument("--out-figure", required=True)
    tc.set_defaults(func=cmd_ith_cohort)

    def selection_args(sp):  # the Rad-score's settings (config `selection`), for C-radiomics and DL_F
        sp.add_argument("--variance-threshold", type=float, default=1e-3)
        sp.add_argument("--correlation-cutoff", type=float, default=0.9)
        sp.add_argument("--n-alphas", type=int, default=50)
        sp.add_argument("--alpha-min-ratio", type=float, default=0.05)
        sp.add_argument("--alpha-rule", default="max", choices=["max", "1se"])
        sp.add_argument("--seed", type=int, default=42)

    def clinical_args(sp):
        sp.add_argument("--clinical", required=True, help="clinical table")
        sp.add_argument("--clinical-columns", type=_json_arg, help="JSON: canonical -> your column")

    r = sub.add_parser("radiomics", help="pyradiomics features of one patient and reader")
    r.add_argument("--image", required=True, help="ingested image.nii.gz")
    r.add_argument("--mask", required=True, help="ingested mask.nii.gz, or the raw reader-2 mask with --reader 2")
    r.add_argument("--reader", type=int, default=1, choices=[1, 2])
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
    se.add_argument("--params", type=_json_arg, help="JSON: SemanticParams fields")
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
    rp.add_argument("--reader1", required=True, help="reader-1 cohort feature table")
    rp.add_argument("--reader2", required=True, help="reader-2 cohort feature table")
    rp.add_argument("--split", required=True)
    rp.add_argument("--eligible", required=True)
    clinical_args(rp)
    rp.add_argument("--cohorts", nargs="+", default=["train"], help="cohorts whose re-segmentations give the ICC")
    rp.add_argument("--icc-form", default="ICC(A,1)", choices=["ICC(1,1)", "ICC(A,1)", "ICC(C,1)"])
    rp.add_argument("--icc-threshold", type=lambda s: None if s == "none" else float(s), default=0.75,
                    help="features below it are dropped; 'none' switches the filter off")
    rp.add_argument("--min-patients", type=int, default=5)
    rp.add_argument("--table-s3-items", type=_json_arg, required=True,
                    help="JSON list of {label, reader1, reader2, levels}")
    rp.add_argument("--out-icc", required=True)
    rp.add_argument("--out-table-s3", required=True)
    rp.add_argument("--out-table-s3-md", required=True)
    rp.add_argument("--out-table-s3-values", required=True, help="unrounded ICC, CI, n, exact agreement")
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
    h.add_argument("--out-features", required=True)
    h.add_argument("--out-smd", required=True)
    h.add_argument("--out-report", required=True)
    h.set_defaults(func=cmd_harmonize)

    sl = sub.add_parser("select", help="variance, correlation and LASSO-Cox selection; the Rad-score")
    sl.add_argument("--features", required=True, help="harmonised feature table")
    sl.add_argument("--harmonization", help="harmonize report (JSON): its mode is carried to the outputs")
    sl.add_argument("--split", required=True)
    clinical_args(sl)
    selection_args(sl)
    sl.add_argument("--cv-folds", type=int, default=5, help="without --folds: seeded stratified CV folds")
    sl.add_argument("--folds", help="cross-fitting folds (TSV): the LASSO's CV folds, and out-of-fold "
                                    "Rad-scores for training patients")
    sl.add_argument("--out-scores", required=True)
    sl.add_argument("--out-signature", required=True)
    sl.add_argument("--out-cv", required=True)
    sl.add_argument("--out-report", required=True)
    sl.set_defaults(func=cmd_select)

    di = sub.add_parser("dl-input", help="2.5D deep-learning input of one patient (Appendix 4)")
    di.add_argument("--image", required=True, help="ingested image.nii.gz")
    di.add_argument("--mask", required=True, help="ingested mask.nii.gz")
    di.add_argument("--params", type=_json_arg, help="JSON: DLInputParams fields")
    di.add_argument("--patient-id", required=True)
    di.add_argument("--out-dir", required=True, help="folder for input.npy, qc.json, preview.png")
    di.set_defaults(func=cmd_dl_input)

    def dl_args(sp):
        sp.add_argument("--inputs", nargs="+", required=True, help="per-patient input.npy files")
        sp.add_argument("--split", required=True)
        clinical_args(sp)
        sp.add_argument("--threads", type=int, default=2)

    dt = sub.add_parser("dl-train", help="train the CBAM-ResNet on the training cohort")
    dl_args(dt)
    dt.add_argument("--params", type=_json_arg, help="JSON: TrainParams fields")
    dt.add_argument("--seed", type=int, default=42)
    dt.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    dt.add_argument("--folds", help="cross-fitting folds (TSV), with --fold")
    dt.add_argument("--fold", type=int, help="train without this fold's training patients (a cross-fitting net)")
    dt.add_argument("--out-dir", required=True, help="folder for model.pt, loss.tsv, training.json")
    dt.set_defaults(func=cmd_dl_train)

    dp = sub.add_parser("dl-predict", help="DL_E, DL_F for every patient; Grad-CAM for validation patients")
    dl_args(dp)
    dp.add_argument("--model", required=True, help="the refit's model.pt (training.json and loss.tsv beside it)")
    dp.add_argument("--fold-models", nargs="*", help="the cross-fitting nets' model.pt (training.json beside each)")
    dp.add_argument("--out-fold-features", help="DL_F of the training patients from each fold net (with --fold-models)")
    dp.add_argument("--loss-figure", required=True, help="Figure S3 (the refit's loss curves)")
    dp.add_argument("--gradcam-patients", type=int, default=8, help="validation patients in the figure")
    dp.add_argument("--out-dl-e", required=True)
    dp.add_argument("--out-dl-f", required=True)
    dp.add_argument("--out-gradcam", required=True)
    dp.add_argument("--figure", required=True, help="Figure S5 (Grad-CAM)")
    dp.set_defaults(func=cmd_dl_predict)

    ds = sub.add_parser("dl-signature", help="DL_F signature: LASSO-Cox on the deep features, cross-fitted")
    ds.add_argument("--dl-f", required=True, help="dl_f.tsv: every patient's deep features from the refit net")
    ds.add_argument("--fold-features", required=True, help="the training patients' deep features per fold net")
    ds.add_argument("--folds", required=True, help="cross-fitting folds (TSV)")
    clinical_args(ds)
    selection_args(ds)
    ds.add_argument("--out-scores", required=True)
    ds.add_argument("--out-signature", required=True)
    ds.add_argument("--out-report", required=True)
    ds.set_defaults(func=cmd_dl_signature)

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
    im.add_argument("--space", type=_json_arg, help="JSON: search space (SearchSpace fields)")
    im.add_argument("--seed", type=int, default=42)
    im.add_argument("--out-dir", required=True)
    im.set_defaults(func=cmd_ith_model)

    cf = sub.add_parser("crossfit-folds", help="cross-fitting folds of the training cohort (stratified on DM)")
    cf.add_argument("--split", required=True)
    clinical_args(cf)
    cf.add_argument("--folds", type=int, default=10)
    cf.add_argument("--seed", type=int, default=42)
    cf.add_argument("--out", required=True)
    cf.set_defaults(func=cmd_crossfit_folds)

    sm = sub.add_parser("survival-model", help="fit one Cox model of time to DM on training, evaluate it frozen")
    sm.add_argument("--name", required=True, help="model key (file names)")
    sm.add_argument("--label", required=True, help="model name in tables and figures")
    sm.add_argument("--covariates", nargs="+", required=True, choices=["clinical", *SIGNATURE_COLUMNS])
    sm.add_argument("--signatures", nargs="*", type=lambda a: tuple(a.split("=", 1)), default=[],
                    help="SOURCE=FILE: signature tables (patient_id, value, fit)")
    sm.add_argument("--split", required=True)
    clinical_args(sm)
    sm.add_argument("--clinical-spec", type=_json_arg, default={}, help="JSON: clinical variable -> encoding")
    sm.add_argument("--p-enter", type=float, default=0.1, help="univariable p of the clinical selection")
    sm.add_argument("--penalizer", type=float, default=0.0, help="ridge penalty of the Cox model")
    sm.add_argument("--horizons", type=float, nargs="+", default=[12, 24, 36, 48, 60])
    sm.add_argument("--n-bootstrap", type=int, default=1000)
    sm.add_argument("--seed", type=int, default=42)
    sm.add_argument("--out-dir", required=True)
    sm.set_defaults(func=cmd_survival_model)

    sr = sub.add_parser("survival-report", help="Tables S4 and S5, survival figures and Figure S4")
    sr.add_argument("--models", nargs="+", required=True, type=lambda a: tuple(a.split("=", 1)),
                    help="NAME=DIR: survival_model output folders")
    sr.add_argument("--split", required=True)
    clinical_args(sr)
    sr.add_argument("--figure-model", required=True, help="model of the KM, ROC and calibration figures")
    sr.add_argument("--clinical-model", required=True, help="model of Figure S4 (SHAP)")
    sr.add_argument("--horizons", type=float, nargs="+", default=[12, 24, 36, 48, 60])
    sr.add_argument("--n-bootstrap", type=int, default=1000, help="resamples behind the CIs (for the table note)")
    sr.add_argument("--seed", type=int, default=42)
    sr.add_argument("--out-metrics", required=True)
    sr.add_argument("--out-s4", required=True)
    sr.add_argument("--out-s4-md", required=True)
    sr.add_argument("--out-s5", required=True)
    sr.add_argument("--out-s5-md", required=True)
    sr.add_argument("--figures-dir", required=True)
    sr.set_defaults(func=cmd_survival_report)

    s2 = sub.add_parser("table-s2", help="Table S2 and the ITH signature")
    s2.add_argument("--metrics", nargs="+", required=True)
    s2.add_argument("--fitted", nargs="+", required=True)
    s2.add_argument("--main-predictions", required=True, help="predictions.tsv of the ITH model")
    s2.add_argument("--out-table", required=True)
    s2.add_argument("--out-md", required=True)
    s2.add_argument("--out-params", required=True)
    s2.add_argument("--out-signature", required=True)
    s2.set_defaults(func=cmd_table_s2)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CtithError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
