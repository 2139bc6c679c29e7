"""Cohort set-up: ingest and QC, Table S1, Figure S1, sheet validation and the template,
eligibility, the split, cross-fitting folds.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts, save_figure


def sheet_args(sp):
    sp.add_argument("--samples", required=True)
    sp.add_argument("--clinical", required=True)
    sp.add_argument("--clinical-columns", type=json_arg, help="JSON: canonical -> your column")
    sp.add_argument("--criteria", type=json_arg, default=[], help="JSON list of criteria")


def cmd_ingest(args) -> None:
    from ..cohort import ingest

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
    """The QC table, after the check that no scan is filed under two patients (an error when
    the two are in different cohorts, a warning within one)."""
    from ..cohort.ingest import qc_table
    from ..io import read_json, read_table, write_tsv
    from ..cohort.scan_identity import same_scans, same_scans_error

    records = [read_json(p) for p in args.qc]
    cohorts = dict(zip(*(read_table(args.split)[c] for c in ("patient_id", "cohort")))) if args.split else {}
    errors, warnings = same_scans(records, cohorts)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if errors:
        raise CtithError(same_scans_error(errors))
    unchecked = [r["patient_id"] for r in records if not r.get("pixel_sha256")]
    if unchecked:
        print(f"warning: {len(unchecked)} patients ingested before pixel digests were recorded (e.g. "
              f"{unchecked[0]}): re-ingest them to check for repeated scans", file=sys.stderr)
    table = qc_table(records)
    write_tsv(table, args.out)
    print(f"QC table of {len(table)} patients -> {args.out}")


def cmd_table_s1(args) -> None:
    from ..cohort.table_s1 import table_s1
    from ..io import read_json, read_table, write_markdown, write_tsv

    split = read_table(args.split)
    table = table_s1([read_json(p) for p in args.qc], dict(zip(split["patient_id"], split["institution"])))
    write_tsv(table, args.out_table)
    write_markdown(table, args.out_md, "\nFrom the DICOM headers of the venous series (an allow-list of acquisition "
                                       "fields); NIfTI, NRRD and MHA inputs carry none.\n")
    print(f"Table S1 of {len(args.qc)} patients -> {args.out_table}")


def cmd_figure_s1(args) -> None:
    import pandas as pd
    import SimpleITK as sitk

    from ..report import delineation
    from ..io import read_json, write_json

    qc = {q["patient_id"]: (q, Path(p).parent) for q, p in ((read_json(p), p) for p in args.qc)}
    cohorts = read_cohorts(args.split)
    clinical = read_clinical(args)
    patients = pd.DataFrame({"cohort": cohorts.reindex(list(qc)).to_numpy(),
                             "tumour_volume_ml": [q["tumour_volume_ml"] for q, _ in qc.values()]},
                            index=pd.Index(list(qc), name="patient_id"))
    patients = patients.join(clinical[["histology", "dm_event", "dm_time_months"]])
    pick = delineation.pick_pair(patients)
    rows = []
    for pid, what in ((pick["no_dm"], "no DM, follow-up"), (pick["dm"], "DM at")):
        q, folder = qc[pid]
        image, mask = (sitk.ReadImage(str(folder / f)) for f in ("image.nii.gz", "mask.nii.gz"))
        c = clinical.loc[pid]
        rows.append({"image": sitk.GetArrayFromImage(image), "mask": sitk.GetArrayFromImage(mask),
                     "spacing": image.GetSpacing(), "volume_ml": float(q["tumour_volume_ml"]),
                     "label": f"{pid} ({cohorts[pid].replace('_', ' ')}): {c['histology']}, {what} "
                              f"{float(c['dm_time_months']):g} months"})
    note = (f"Two {pick['histology']} tumours from the {pick['pool']}, one with DM and one without: the pair of "
            "closest tumour volumes. Surfaces by marching cubes in physical mm, on one scale.")
    save_figure(delineation.figure(rows, note), args.out_figure)
    write_json(pick, args.out_pair)
    print(f"Figure S1: {pick['no_dm']} (no DM) and {pick['dm']} (DM), {pick['histology']}, {pick['pool']}")


def _inputs(args, check_files=False):
    """The study's rows of both sheets, validated (``predict`` patients left out)."""
    from ..io import read_table
    from ..cohort.sheets import study_inputs, validate_inputs

    config = {"clinical_columns": args.clinical_columns or {}, "eligibility": {"criteria": args.criteria or []}}
    return study_inputs(validate_inputs(read_table(args.samples), read_table(args.clinical), config,
                                        args.samples, args.clinical, check_files=check_files))


def cmd_validate(args) -> None:
    from ..errors import SheetError
    from ..cohort.preflight import preflight
    from ..cohort.sheets import DEFAULT_CONFIG, check_config, load_config

    config = load_config(args.config, defaults=args.defaults or DEFAULT_CONFIG)
    check_config(config)
    # The config's relative paths read from the run's folder, as snakemake --directory
    # reads them (its --configfile paths from where it was started).
    with contextlib.chdir(args.directory or "."):
        pre = preflight(config)
        if not args.no_images:  # the one check that reads files: every mask, for its label
            from ..cohort.mask_labels import mask_label_problems

            pre.check.problems += mask_label_problems(pre.inputs.samples, config["ingest"]["mask_label"])
    if pre.problems:
        raise SheetError(pre.problems)
    for line in pre.check.warnings:
        print(f"warning: {line}", file=sys.stderr)
    counts = ", ".join(f"{c} {n}" for c, n in pre.check.split["cohort"].value_counts().sort_index().items())
    print(f"OK: {len(pre.inputs.samples)} patients in '{config['samples']}', clinical table '{config['clinical']}' "
          f"complete; {len(pre.eligible)} eligible: {counts}")


def cmd_template(args) -> None:
    from ..cohort.sheets import DEFAULT_CONFIG, check_config, load_config
    from ..cohort.template import write_template

    config = load_config(args.config or [], defaults=args.defaults or DEFAULT_CONFIG)
    check_config(config)
    for path in write_template(args.out_dir, config):
        print(path)
    out = Path(args.out_dir)
    print(f"Fill the two sheets (column meanings: {out / 'README.md'}), set the institutions in "
          f"{out / 'my_cohort.yaml'}, then: ctith validate --config {out / 'my_cohort.yaml'}")


def cmd_eligibility(args) -> None:
    from ..cohort.eligibility import apply_criteria
    from ..io import write_markdown, write_tsv

    inputs = _inputs(args)
    res = apply_criteria(inputs.clinical, inputs.samples["institution"], args.criteria)
    out = Path(args.out_dir)
    write_tsv(res.eligible, out / "eligible.tsv")
    write_tsv(res.flow, out / "eligibility_flow.tsv")
    write_markdown(res.flow, out / "eligibility_flow.md")
    write_tsv(res.excluded, out / "excluded.tsv")
    print(f"{len(res.eligible)} of {len(inputs.samples)} patients eligible -> {out}")


def cmd_split(args) -> None:
    from ..io import read_table, write_tsv
    from ..cohort.split import TRAIN_FRACTION, split_cohorts

    inputs = _inputs(args)
    fraction = TRAIN_FRACTION if args.train_fraction is None else args.train_fraction
    out = split_cohorts(inputs.samples, inputs.clinical, read_table(args.eligible)["patient_id"], args.internal,
                        args.external, fraction, args.seed)
    write_tsv(out, args.out)
    counts = out.groupby("cohort").size().to_dict()
    print(f"cohorts: {counts} -> {args.out}")


def cmd_crossfit_folds(args) -> None:
    import pandas as pd

    from ..cohort.crossfit import assign_folds
    from ..io import write_tsv

    cohorts = read_cohorts(args.split)
    train = cohorts.index[(cohorts == "train").to_numpy()]
    clinical = read_clinical(args)
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


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
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
    q.add_argument("--split", help="split.tsv: the same scan in two cohorts is an error, in one a warning")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_qc_table)

    f1 = sub.add_parser("figure-s1", help="Figure S1: reader 1's delineation in 3D, two tumours of one histology")
    f1.add_argument("--qc", nargs="+", required=True, help="per-patient qc.json (image.nii.gz and mask.nii.gz beside)")
    f1.add_argument("--split", required=True)
    clinical_args(f1)
    f1.add_argument("--out-figure", required=True)
    f1.add_argument("--out-pair", required=True, help="JSON: the two patients and how they were chosen")
    f1.set_defaults(func=cmd_figure_s1)

    t1 = sub.add_parser("table-s1", help="Table S1: acquisition settings per institution from the DICOM headers")
    t1.add_argument("--qc", nargs="+", required=True, help="per-patient qc.json files")
    t1.add_argument("--split", required=True, help="split.tsv (each patient's institution)")
    t1.add_argument("--out-table", required=True)
    t1.add_argument("--out-md", required=True)
    t1.set_defaults(func=cmd_table_s1)

    v = sub.add_parser("validate", help="check a config, its sample sheet and clinical table before a run")
    v.add_argument("--config", nargs="*", default=[],
                   help="file(s) of overrides, each merged over the one before, as snakemake's --configfile")
    v.add_argument("--defaults", help="the workflow's own config, under the files of --config "
                   "(default: the repository's config.yaml)")
    v.add_argument("--directory", metavar="DIR",
                   help="the run's folder, as snakemake --directory: the config's relative paths read from it")
    v.add_argument("--no-images", action="store_true",
                   help="skip reading every mask for its label (the one check that reads images)")
    v.set_defaults(func=cmd_validate)

    t = sub.add_parser("template", help="an empty sample sheet, clinical table, overlay config and column guide")
    t.add_argument("out_dir", help="folder to write into (created; existing files are never overwritten)")
    t.add_argument("--config", nargs="*", help="overlay(s) whose stages decide the columns (default: config.yaml's)")
    t.add_argument("--defaults", help="the workflow's own config, under the files of --config "
                   "(default: the repository's config.yaml)")
    t.set_defaults(func=cmd_template)

    e = sub.add_parser("eligibility", help="Appendix 1 criteria: eligible list, flow, exclusions")
    sheet_args(e)
    e.add_argument("--out-dir", required=True)
    e.set_defaults(func=cmd_eligibility)

    s = sub.add_parser("split", help="assign train / internal / external validation cohorts")
    sheet_args(s)
    s.add_argument("--eligible", required=True)
    s.add_argument("--internal", nargs="*", default=[], help="institutions split into train/internal")
    s.add_argument("--external", nargs="*", default=[], help="institutions forming external validation")
    s.add_argument("--train-fraction", type=float, default=None,
                   help="share of the internal institutions' patients in training (default: the paper's 142 of 173)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_split)

    cf = sub.add_parser("crossfit-folds", help="cross-fitting folds of the training cohort (stratified on DM)")
    cf.add_argument("--split", required=True)
    clinical_args(cf)
    cf.add_argument("--folds", type=int, default=10)
    cf.add_argument("--seed", type=int, default=42)
    cf.add_argument("--out", required=True)
    cf.set_defaults(func=cmd_crossfit_folds)
