"""2.5D deep learning (Appendices 4 and 7): the input, the refit and fold nets, DL_E, DL_F, Grad-
CAM, the DL_F signature.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts, save_figure, selection_args


def dl_args(sp):
    sp.add_argument("--inputs", nargs="+", required=True, help="per-patient input.npy files")
    sp.add_argument("--split", required=True)
    clinical_args(sp)
    sp.add_argument("--threads", type=int, default=2)


def cmd_dl_input(args) -> None:
    import numpy as np
    import SimpleITK as sitk

    from ..dl import inputs as dl_input
    from ..cohort.geometry import axial_axis
    from ..io import atomic_path, write_json

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

    from ..io import read_json

    ids = [read_json(Path(p).with_name("qc.json"))["patient_id"] for p in paths]
    return ids, np.stack([np.load(p) for p in paths]) if paths else np.zeros((0, 3, 1, 1), np.float32)


def _net_folds(args):
    """The cross-fitting folds of the nets: the shared folds, merged into --crossfit-folds."""
    from ..cohort.crossfit import merge_folds, read_folds

    folds = read_folds(args.folds)
    return folds if args.crossfit_folds is None else merge_folds(folds, args.crossfit_folds)


def cmd_dl_train_features(args) -> None:
    from ..dl.tables import train_tables
    from ..io import write_tsv

    dl_e, dl_f, fold_features = train_tables(args.refit, args.fold_nets)
    for table, path in ((dl_e, args.out_dl_e), (dl_f, args.out_dl_f), (fold_features, args.out_fold_features)):
        write_tsv(table, path)
    print(f"DL_E and DL_F ({dl_f.shape[1] - 2} features) of {len(dl_e)} training patients from "
          f"{len(args.fold_nets)} fold nets and the refit, as each scored them when trained")


def _fold_kept_epochs(paths) -> list[int]:
    """The kept epoch of each fold net (their training.json)."""
    from ..io import read_json

    kept = []
    for path in paths or []:
        info = read_json(path)
        if info.get("fold") is None:
            raise CtithError(f"'{path}' is not a fold net's training record")
        kept.append(int(info["best_epoch"]))
    return kept


def _dl_params(args):
    from ..dl.training import TrainParams

    return TrainParams(**{**(args.params or {}), "seed": args.seed, "device": args.device})


def cmd_dl_train(args) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from ..dl import training as dl
    from ..dl.tables import net_scores
    from ..io import write_json, write_tsv

    if (args.folds is None) != (args.fold is None):
        raise CtithError("a cross-fitting net needs both --folds (the folds table) and --fold (the fold it holds out)")
    if args.stop_epoch_from and args.fold is not None:
        raise CtithError("--stop-epoch-from is the refit's: a fold net stops early on its own inner split")
    torch.set_num_threads(args.threads)
    ids, images = _dl_inputs(args.inputs)
    cohorts = read_cohorts(args.split)
    clinical = read_clinical(args)
    train = [i for i, pid in enumerate(ids) if cohorts.get(pid) == "train"]
    if not train:
        raise CtithError(f"split '{args.split}' puts none of the {len(ids)} patients in the train cohort")
    held_out = []
    if args.fold is not None:  # a cross-fitting net: the training patients of the other folds
        folds = _net_folds(args)
        unknown = [ids[i] for i in train if ids[i] not in folds.index]
        if unknown:
            raise CtithError(f"patient {unknown[0]}: a training patient without a fold in '{args.folds}'")
        if args.fold not in set(folds.tolist()):
            raise CtithError(f"fold {args.fold} is not in '{args.folds}' (folds {sorted(set(folds.tolist()))})")
        held_out = [ids[i] for i in train if folds[ids[i]] == args.fold]
        train = [i for i in train if folds[ids[i]] != args.fold]
    labels = pd.to_numeric(clinical.loc[[ids[i] for i in train], "dm_event"]).to_numpy().astype(int)
    params = _dl_params(args)
    fold_kept = _fold_kept_epochs(args.stop_epoch_from)
    if fold_kept:  # the refit stops where the fold nets did (the middle of their kept epochs)
        params = replace(params, stop_epoch=math.ceil(statistics.median(fold_kept)))
    what = "DL training" if args.fold is None else f"DL training without fold {args.fold}"
    try:
        result = dl.train(images[train], labels, params, log=lambda s: print(s, flush=True))
    except ValueError as exc:
        raise CtithError(f"{what}: {exc}") from None
    out = Path(args.out_dir)
    dl.save_weights(result.model, out / "model.pt")
    # Timings go to the log (and Snakemake's benchmark file), not into the outputs: two runs
    # with one seed write identical bytes.
    write_tsv(pd.DataFrame(result.history).drop(columns=list(dl.TIMING_FIELDS), errors="ignore"), out / "loss.tsv")
    i = {k: v for k, v in result.info.items() if k not in dl.TIMING_FIELDS}
    # The net scores its training patients (their DL_E sets its scale, dl.logit_scale) and, a
    # fold net, the patients it held out (their out-of-fold DL_E): scored once, here, and
    # assembled by dl-train-features.
    prob, feats = dl.predict(result.model, images[train])
    i["dl_e_scale"] = dl.scale_of(prob)
    held = [ids.index(pid) for pid in held_out]
    held_prob, held_feats = (dl.predict(result.model, images[held]) if held else
                             (prob[:0], feats[:0]))  # the refit holds out nobody
    write_tsv(net_scores([ids[j] for j in train] + held_out, ["train"] * len(train) + ["held_out"] * len(held),
                          np.concatenate([prob, held_prob]), np.concatenate([feats, held_feats])), out / "scores.tsv")
    write_json({**i, "fold": args.fold, **({"fold_kept_epochs": fold_kept} if fold_kept else {}),
                "train_patients": [ids[j] for j in train],
                "held_out_patients": held_out}, out / "training.json")
    print(f"{what} on {i['device']}: {i['n_fit']} patients ({i['fit_events']} DM), {i['n_inner_val']} for early "
          f"stopping; kept epoch {i['best_epoch']} of {i['epochs_run']} ({result.info['seconds']} s)")


def cmd_dl_predict(args) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from ..dl import training as dl
    from ..dl.tables import dl_e_scale, read_known, with_known
    from ..io import read_json, write_tsv

    figures = (args.figure, args.loss_figure, args.out_gradcam)
    if any(figures) and not all(figures):
        raise CtithError("dl-predict: --figure, --loss-figure and --out-gradcam go together")
    if bool(args.train_dl_e) != bool(args.train_dl_f) or (args.train_dl_e and args.fold_models):
        raise CtithError("dl-predict: --train-dl-e and --train-dl-f go together, without --fold-models")
    torch.set_num_threads(args.threads)
    all_ids, all_images = _dl_inputs(args.inputs)
    cohorts = read_cohorts(args.split)
    # The training patients' rows as dl_train_features wrote them: not scored again.
    known = read_known((args.train_dl_e, args.train_dl_f), all_ids, cohorts) if args.train_dl_e else None
    keep = [i for i, pid in enumerate(all_ids) if pid not in known[0].index] if known else list(range(len(all_ids)))
    ids, images = [all_ids[i] for i in keep], all_images[keep]
    refit_info = read_json(Path(args.model).parent / "training.json")
    params = dl.TrainParams(**refit_info["params"])
    model = dl.load_model(args.model, params)
    prob, feats = dl.predict(model, images)
    cohort = [cohorts.get(pid, "") for pid in ids]
    names = [f"dlf_{j:03d}" for j in range(feats.shape[1])]
    # DL_E as a signature: each training patient's probability from the fold net that never
    # saw them, everyone else's from the refit (crossfit.py); its score standardised by the
    # scale of the net that gave it (one scale for all, dl.logit_scale).
    dl_e = pd.DataFrame({"patient_id": ids, "cohort": cohort, "dl_e": prob, "fit": "refit", "dl_e_refit": prob})
    score = dl.dl_e_score(prob, dl_e_scale(refit_info, args.model))
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
        score[np.array(train)[held]] = dl.dl_e_score(p_fold[held], dl_e_scale(info, path))
        fold_rows.append(pd.DataFrame(f_fold, columns=names).assign(
            fold=info["fold"], patient_id=[ids[i] for i in train])[["fold", "patient_id", *names]])
    if args.fold_models:
        unseen = dl_e.loc[(dl_e["cohort"] == "train") & (dl_e["fit"] != "oof"), "patient_id"].tolist()
        if unseen:
            raise CtithError(f"patient {unseen[0]}: a training patient that no fold net held out; were the "
                             "fold nets trained with other cross-fitting folds?")
        if args.out_fold_features:
            write_tsv(pd.concat(fold_rows, ignore_index=True), args.out_fold_features)
    # The survival models take DL_E's score: its log-odds (a probability is bounded; its
    # log-odds is not), standardised per net.
    dl_e.insert(3, "dl_e_logit", dl.logit(dl_e["dl_e"].to_numpy(float)))
    dl_e.insert(4, "dl_e_score", score)
    dlf = pd.DataFrame(feats, columns=names)
    dlf.insert(0, "cohort", cohort)
    dlf.insert(0, "patient_id", ids)
    if known:
        dl_e, dlf = with_known(dl_e, known[0], all_ids), with_known(dlf, known[1], all_ids)
    write_tsv(dl_e, args.out_dl_e)
    write_tsv(dlf, args.out_dl_f)
    if not args.figure:
        print(f"DL_E and DL_F ({feats.shape[1]} features) of {len(ids)} patients")
        return
    print(f"DL_E and DL_F ({feats.shape[1]} features) of {len(ids)} patients scored")
    _figures(args, model, refit_info, ids, cohort, images, prob)


def _figures(args, model, refit_info, ids, cohort, images, prob) -> None:
    """Figure S3 (the refit's loss curves), the validation patients' Grad-CAM maps and Figure S5."""
    import numpy as np

    from ..dl import training as dl, figures as dl_figures
    from ..io import atomic_path, read_table

    loss = read_table(Path(args.model).parent / "loss.tsv")
    save_figure(dl_figures.loss_figure(loss.to_dict("records"), refit_info["best_epoch"]), args.loss_figure)
    clinical = read_clinical(args)
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
    # 100 dpi draws each 224-pixel input at about its own resolution (and keeps the report small).
    save_figure(dl_figures.gradcam_figure(images[[val[k] for k in shown]], maps[shown], labels), args.figure, dpi=100)
    print(f"Grad-CAM of {len(val)} validation patients, {len(shown)} in {args.figure}")


def cmd_dl_signature(args) -> None:
    import pandas as pd

    from ..radiomics import selection
    from ..cohort.crossfit import read_folds, two_stage_scores
    from ..io import read_table, write_json, write_tsv

    refit = read_table(args.dl_f).set_index("patient_id")
    cohorts = refit.pop("cohort") if "cohort" in refit else None
    refit = refit.apply(pd.to_numeric)
    folds = read_folds(args.folds)
    groups = _net_folds(args)  # whom each fold net held out; the LASSOs tune on the shared folds
    fold_table = read_table(args.fold_features)
    fold_features = {int(k): g.drop(columns="fold").set_index("patient_id").apply(pd.to_numeric)
                     for k, g in fold_table.groupby("fold")}
    clinical = read_clinical(args).reindex(folds.index)
    event = pd.to_numeric(clinical["dm_event"], errors="coerce")
    time_ = pd.to_numeric(clinical["dm_time_months"], errors="coerce")
    bad = folds.index[(event.isna() | time_.isna()).to_numpy()]
    if len(bad):
        raise CtithError(f"patient {bad[0]}: dm_event / dm_time_months missing in '{args.clinical}'")
    fit = selection.radscore_fitter(event, time_, variance_threshold=args.variance_threshold,
                                    correlation_cutoff=args.correlation_cutoff, n_alphas=args.n_alphas,
                                    alpha_min_ratio=args.alpha_min_ratio, alpha_rule=args.alpha_rule, seed=args.seed)
    try:
        table, model, fold_models = two_stage_scores(refit, fold_features, folds, fit, name="dl_f_score",
                                                     groups=groups)
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


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    di = sub.add_parser("dl-input", help="2.5D deep-learning input of one patient (Appendix 4)")
    di.add_argument("--image", required=True, help="ingested image.nii.gz")
    di.add_argument("--mask", required=True, help="ingested mask.nii.gz")
    di.add_argument("--params", type=json_arg, help="JSON: DLInputParams fields")
    di.add_argument("--patient-id", required=True)
    di.add_argument("--out-dir", required=True, help="folder for input.npy, qc.json, preview.png")
    di.set_defaults(func=cmd_dl_input)

    dt = sub.add_parser("dl-train", help="train the CBAM-ResNet on the training cohort")
    dl_args(dt)
    dt.add_argument("--params", type=json_arg, help="JSON: TrainParams fields")
    dt.add_argument("--seed", type=int, default=42)
    dt.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    dt.add_argument("--folds", help="cross-fitting folds (TSV); with --fold only")
    dt.add_argument("--fold", type=int, help="train without this fold's training patients (a cross-fitting net)")
    dt.add_argument("--stop-epoch-from", nargs="+",
                    help="the fold nets' training.json: train to the middle of their kept epochs, no early stopping")
    dt.add_argument("--crossfit-folds", type=int,
                    help="merge the folds into this many (fold k -> k mod N) before --fold picks one")
    dt.add_argument("--out-dir", required=True, help="folder for model.pt, loss.tsv, training.json")
    dt.set_defaults(func=cmd_dl_train)

    dtf = sub.add_parser("dl-train-features", help="the training patients' DL_E and DL_F from the nets' scores.tsv")
    dtf.add_argument("--refit", required=True, help="the refit's folder (training.json, scores.tsv)")
    dtf.add_argument("--fold-nets", nargs="+", required=True, help="the fold nets' folders")
    dtf.add_argument("--out-dl-e", required=True)
    dtf.add_argument("--out-dl-f", required=True)
    dtf.add_argument("--out-fold-features", required=True)
    dtf.set_defaults(func=cmd_dl_train_features)

    dp = sub.add_parser("dl-predict", help="DL_E, DL_F of the given patients; Grad-CAM for validation patients")
    dl_args(dp)
    dp.add_argument("--model", required=True, help="the refit's model.pt (training.json and loss.tsv beside it)")
    dp.add_argument("--fold-models", nargs="*", help="the cross-fitting nets' model.pt (training.json beside each)")
    dp.add_argument("--out-fold-features", help="DL_F of the training patients from each fold net (with --fold-models)")
    dp.add_argument("--train-dl-e", help="the training patients' DL_E as dl_train_features wrote it: taken, "
                    "not scored again (with --train-dl-f, instead of --fold-models)")
    dp.add_argument("--train-dl-f", help="the training patients' DL_F as dl_train_features wrote it")
    dp.add_argument("--loss-figure", help="Figure S3 (the refit's loss curves); with --figure")
    dp.add_argument("--gradcam-patients", type=int, default=8, help="validation patients in the figure")
    dp.add_argument("--out-dl-e", required=True)
    dp.add_argument("--out-dl-f", required=True)
    dp.add_argument("--out-gradcam", help="validation patients' Grad-CAM maps; with --figure")
    dp.add_argument("--figure", help="Figure S5 (Grad-CAM); none: DL_E and DL_F only")
    dp.set_defaults(func=cmd_dl_predict)

    ds = sub.add_parser("dl-signature", help="DL_F signature: LASSO-Cox on the deep features, cross-fitted")
    ds.add_argument("--dl-f", required=True, help="dl_f.tsv: every patient's deep features from the refit net")
    ds.add_argument("--fold-features", required=True, help="the training patients' deep features per fold net")
    ds.add_argument("--folds", required=True, help="cross-fitting folds (TSV)")
    ds.add_argument("--crossfit-folds", type=int, help="the fold nets' merged folds (as dl-train's)")
    clinical_args(ds)
    selection_args(ds)
    ds.add_argument("--out-scores", required=True)
    ds.add_argument("--out-signature", required=True)
    ds.add_argument("--out-report", required=True)
    ds.set_defaults(func=cmd_dl_signature)
