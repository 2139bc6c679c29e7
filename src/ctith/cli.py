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

import pandas as pd

from .errors import CtithError


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

    sheet = demo.write_cohort(args.out, args.preset, args.seed, counts, progress)
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
                     connectivity=args.connectivity, on_small_tumour=args.on_small_tumour, seed=args.seed)


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
        result = ith.run_ith(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask), axial_axis(image),
                             params, patient, str(args.mask))
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
        from .local_radiomics import FEATURE_CLASSES

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
