"""The synthetic demo cohort and its heterogeneity figure.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from ..errors import CtithError
from ._common import json_arg, save_figure


def cmd_demo(args) -> None:
    from ..demo.presets import PRESETS
    from ..demo.synthetic import write_cohort

    counts = None
    if args.n_a is not None or args.n_b is not None:
        base = PRESETS[args.preset].n_patients
        counts = {"A": base["A"] if args.n_a is None else args.n_a,
                  "B": base["B"] if args.n_b is None else args.n_b}
    t0 = time.time()

    def progress(i, n, pid):
        if not args.quiet:
            print(f"[{i}/{n}] {pid} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    sheet = write_cohort(args.out, args.preset, args.seed, counts, progress, n_jobs=args.jobs)
    print(f"demo cohort ({args.preset}, seed {args.seed}) written: {sheet}")


def cmd_demo_figure(args) -> None:
    from ..demo.patients import simulate_cohort
    from ..demo.synthetic import truth_table
    from ..ith import habitats as ith
    from ..demo.figure import heterogeneity_figure, pick_patients, variant_label

    specs, _ = simulate_cohort(args.preset, args.demo_seed)
    specs = [s for s in specs if not s.ineligible_reason]  # the patients config.yaml's criteria keep
    if len(specs) < 4:
        raise CtithError(f"demo preset '{args.preset}' (seed {args.demo_seed}) has {len(specs)} eligible "
                         "patients; the figure shows four")
    picks = pick_patients(truth_table(specs).set_index("patient_id"))
    published = ith.ITHParams.from_config(args.ith, args.seed, clusters=tuple(args.clusters), on_small_tumour="nan",
                                          feature_smoothing_mm=None, feature_smoothing_fraction=None,
                                          feature_smoothing_edge_hu=None, pca_components=None)
    variant = replace(published, **(args.variant or {}))
    if variant.is_published:
        raise CtithError(f"--variant {args.variant} sets no noise-robust variant of the ITH stage")
    label = variant_label(args.variant)
    save_figure(heterogeneity_figure(specs, picks, published, variant, label), args.out, dpi=80,
                bbox_inches="tight")
    print(f"demo heterogeneity figure ({', '.join(picks)}) -> {args.out}")


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    d = sub.add_parser("demo", help="generate the synthetic demo cohort")
    d.add_argument("--preset", default="demo", choices=["tiny", "demo", "paper"])
    d.add_argument("--seed", type=int, default=20240601)
    d.add_argument("--out", required=True, help="output folder (replaced)")
    d.add_argument("--n-a", type=int, help="patients of institution A (overrides the preset)")
    d.add_argument("--n-b", type=int, help="patients of institution B (overrides the preset)")
    d.add_argument("--jobs", type=int, default=1, help="worker processes (same files for any number)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    df = sub.add_parser("demo-figure", help="demo tumours from low to high true heterogeneity, their habitats "
                                            "under the published method and a variant")
    df.add_argument("--preset", default="demo", choices=["tiny", "demo", "paper"])
    df.add_argument("--demo-seed", type=int, default=20240601, help="the demo generator's seed")
    df.add_argument("--ith", type=json_arg, default={}, help="JSON: the config's ith: section")
    df.add_argument("--variant", type=json_arg, required=True, help="JSON: the variant's ith: keys")
    df.add_argument("--clusters", type=int, nargs="+", default=[2, 3, 4, 5])
    df.add_argument("--seed", type=int, default=42, help="the run's seed (k-means)")
    df.add_argument("--out", required=True)
    df.set_defaults(func=cmd_demo_figure)
