"""The model bundle and scoring new patients with it (``ctith model-bundle``, ``ctith predict``)."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import CtithError
from ._common import json_arg, save_figure

# Packages whose versions the bundle records (what decides its numbers).
BUNDLE_PACKAGES = ("ctith", "numpy", "pandas", "scikit-learn", "imbalanced-learn", "scikit-survival", "torch",
                   "SimpleITK", "pyradiomics-bhklab", "neuroCombat", "scikit-image", "skops")


def _named_dirs(pairs) -> dict:
    return {name: Path(path) for name, path in pairs}


def cmd_model_bundle(args) -> None:
    from ..report.bundle import network_record, package_versions, write_bundle
    from ..io import read_json
    from ..models.ith_model import MODEL_FILE

    files = {"combat_estimates.json": args.combat, "radiomics_signature.tsv": args.radiomics_signature,
             "radiomics_params.yaml": args.radiomics_params, "dl/model.pt": args.dl_model,
             "dl/dl_f_lasso.tsv": args.dl_f_lasso}
    ith_models = _named_dirs(args.ith_models)
    for name, d in ith_models.items():
        files.update({f"ith_model/{name}/{f}": d / f for f in (MODEL_FILE, "fitted.json")})
    survival_models = _named_dirs(args.survival_models)
    for name, d in survival_models.items():
        files[f"survival/{name}/model.json"] = d / "model.json"
    if args.ith_signature_model not in ith_models:
        raise CtithError(f"--ith-signature-model {args.ith_signature_model} is not one of --ith-models")
    for rel, src in files.items():
        if not Path(src).is_file():
            raise CtithError(f"model bundle: '{src}' ({rel}) does not exist")
    info = {"config": args.config, "stages": args.stages, "ith_models": sorted(ith_models),
            "ith_signature_model": args.ith_signature_model, "survival_models": list(survival_models),
            "packages": package_versions(BUNDLE_PACKAGES)}
    training = Path(args.dl_model).with_name("training.json")
    if not training.is_file():
        raise CtithError(f"model bundle: '{training}' (the network's training record) does not exist")
    records = {"dl/network.json": network_record(read_json(training))}
    digest = write_bundle(args.out, files, info, records)
    print(f"model bundle: {len(files)} files -> {args.out}; manifest sha256 {digest}")


def _clinical_row(args) -> dict:
    from ..io import read_table

    if args.clinical_row is not None:
        return dict(args.clinical_row)
    table = read_table(args.clinical)
    if len(table) == 1:
        return table.iloc[0].to_dict()
    id_columns = [c for c in table.columns if (table[c] == args.patient_id).any()]
    if not id_columns:
        raise CtithError(f"patient {args.patient_id}: no row in '{args.clinical}' (give a one-row table, or the "
                         "patient's ID in its patient ID column)")
    return table.loc[table[id_columns[0]] == args.patient_id].iloc[0].to_dict()


def _run_stages(models, args, patient_dir: Path) -> None:
    """The per-patient stages with the bundle's settings: the study's processing, exactly."""
    from . import build_parser

    stages = models.info["stages"]
    img, msk = patient_dir / "image.nii.gz", patient_dir / "mask.nii.gz"
    ingest = ["ingest", "--image", args.image, "--mask", args.mask, "--out", str(patient_dir),
              "--patient-id", args.patient_id, *shlex.split(stages["ingest"])]
    if args.series_uid:
        ingest += ["--series-uid", args.series_uid]
    if args.mask_label is not None:
        ingest += ["--mask-label", str(args.mask_label)]
    commands = [
        ingest,
        ["ith", "--image", str(img), "--mask", str(msk), "--out-dir", str(patient_dir / "ith"),
         "--patient-id", args.patient_id, *shlex.split(stages["ith"])],
        ["radiomics", "--image", str(img), "--mask", str(msk), "--reader", "1",
         "--params", str(models.path("radiomics_params.yaml")), *shlex.split(stages["radiomics"]),
         "--patient-id", args.patient_id, "--out", str(patient_dir / "radiomics" / "features.tsv"),
         "--diagnostics", str(patient_dir / "radiomics" / "diagnostics.json")],
        ["dl-input", "--image", str(img), "--mask", str(msk), *shlex.split(stages["dl_input"]),
         "--patient-id", args.patient_id, "--out-dir", str(patient_dir / "dl")],
    ]
    parser = build_parser()
    for argv in commands:
        parsed = parser.parse_args(argv)
        parsed.func(parsed)


def cmd_predict(args) -> None:
    from ..report import predict
    from ..io import write_json

    if (args.patient_dir is None) == (args.image is None):
        raise CtithError("predict: give --patient-dir (per-patient outputs made already) or --image and --mask")
    if args.image is not None and args.mask is None:
        raise CtithError("predict: --image needs --mask")
    if (args.clinical is None) == (args.clinical_row is None):
        raise CtithError("predict: give --clinical (a table) or --clinical-row (JSON)")
    models = predict.FrozenModels(args.bundle, args.bundle_sha256)  # verified before anything is loaded
    out = Path(args.out_dir)
    patient_dir = Path(args.patient_dir) if args.patient_dir else out / "patient"
    if args.image is not None:
        _run_stages(models, args, patient_dir)
    row = _clinical_row(args)
    scored = predict.score_patient(models, patient_dir, args.patient_id, row, args.batch)
    result = scored.prediction
    write_json(result, out / "prediction.json")
    # A PDF without a creation date: the same prediction gives the same bytes.
    save_figure(predict.report_figure(models, patient_dir, scored), out / "report.pdf",
                format="pdf", metadata={"Creator": "ctith"})
    main = models.info["config"]["survival"]["figure_model"]
    s = result["survival"].get(main) or next(iter(result["survival"].values()))
    print(f"{args.patient_id}: {s['label']} risk {s['risk']:.3f} ({s['risk_group']} risk, cut-off "
          f"{s['risk_cutoff']:.3f}); ITH signature {result['signatures']['ith_signature']:.3f}"
          + "".join(f"\nWARNING: {w}" for w in result["warnings"]))


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    mb = sub.add_parser("model-bundle", help="every fitted file a new patient needs, with a sha256 manifest")
    mb.add_argument("--combat", required=True, help="combat_estimates.json")
    mb.add_argument("--radiomics-signature", required=True)
    mb.add_argument("--radiomics-params", required=True, help="the pyradiomics parameter file")
    mb.add_argument("--ith-models", nargs="+", required=True, type=lambda a: tuple(a.split("=", 1)),
                    help="NAME=DIR: ith-model output folders")
    mb.add_argument("--ith-signature-model", required=True, help="the ITH model whose probability is the signature")
    mb.add_argument("--dl-model", required=True, help="the refit's model.pt (training.json beside it)")
    mb.add_argument("--dl-f-lasso", required=True)
    mb.add_argument("--survival-models", nargs="+", required=True, type=lambda a: tuple(a.split("=", 1)),
                    help="NAME=DIR: survival-model output folders")
    mb.add_argument("--config", type=json_arg, required=True, help="JSON: the run's config")
    mb.add_argument("--stages", type=json_arg, required=True,
                    help="JSON: the per-patient stages' options (ingest, ith, radiomics, dl_input)")
    mb.add_argument("--out", required=True, help="the bundle folder (replaced whole)")
    mb.set_defaults(func=cmd_model_bundle)

    p = sub.add_parser("predict", help="score one patient with a model bundle's frozen models")
    p.add_argument("--bundle", required=True, help="model bundle folder (its manifest is checked first)")
    p.add_argument("--bundle-sha256", help="the manifest's expected sha256 (pins the whole bundle)")
    p.add_argument("--patient-id", required=True)
    p.add_argument("--patient-dir", help="the patient's per-patient outputs (the workflow's results/patients/ID)")
    p.add_argument("--image", help="CT file or DICOM series folder: processed with the bundle's settings")
    p.add_argument("--mask", help="tumour mask")
    p.add_argument("--series-uid", help="SeriesInstanceUID when the folder holds several series")
    p.add_argument("--mask-label", type=int, help="label of the tumour in a multi-label mask")
    p.add_argument("--clinical", help="clinical table: a single row, or the row of --patient-id")
    p.add_argument("--clinical-row", type=json_arg, help="JSON: the clinical row (the sample sheet's columns beside)")
    p.add_argument("--batch", help="the patient's ComBat batch (default: the row's batch column)")
    p.add_argument("--out-dir", required=True, help="folder for prediction.json and report.pdf")
    p.set_defaults(func=cmd_predict)

