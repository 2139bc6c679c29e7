"""C-radiomics and semantic features: extraction, cohort tables, reader agreement and ICC
(Appendix 3, Table S3). ComBat and the Rad-score are ``cli.harmonize``'s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import CtithError
from ._common import clinical_args, json_arg, read_clinical, read_cohorts


def cmd_radiomics(args) -> None:
    import SimpleITK as sitk

    from ..radiomics import extraction as radiomics
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
    from ..radiomics import extraction as radiomics
    from ..io import read_feature_tables, write_tsv

    rows = read_feature_tables(args.features)
    table = radiomics.cohort_table(rows)
    write_tsv(table, args.out, index=True)
    print(f"{table.shape[0]} patients x {table.shape[1]} features -> {args.out}")


def _same_frame(args) -> None:
    """Refuse a plain CT whose DICOM frame of reference is not the venous phase's: its voxels
    would be read at the venous phase's coordinates as if the two were registered."""
    from ..errors import InputError
    from ..cohort.readers import frame_of_reference

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

    from ..radiomics import semantic
    from ..cohort.readers import read_ct
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
    from ..radiomics import semantic
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
    from ..radiomics import reproducibility
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

    from ..radiomics import reproducibility
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
