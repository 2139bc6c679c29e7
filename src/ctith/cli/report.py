"""The Snakemake report's per-patient thumbnails."""

from __future__ import annotations

from pathlib import Path

from ..errors import CtithError


def cmd_thumbnails(args) -> None:
    from ..report.thumbnails import thumbnail

    if len(args.images) != len(args.names):
        raise CtithError(f"{len(args.images)} images but {len(args.names)} names")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for src, name in zip(args.images, args.names):
        thumbnail(src, out / f"{name}.png", args.width)
    print(f"{len(args.images)} thumbnails, {args.width} px wide -> {out}")


def register(sub) -> None:
    """Add this family's subcommands to the ``ctith`` parser."""
    th = sub.add_parser("thumbnails", help="small palette copies of per-patient figures, for the report")
    th.add_argument("--images", nargs="*", default=[], help="PNG figures")
    th.add_argument("--names", nargs="*", default=[], help="one name per image: <name>.png in --out-dir")
    th.add_argument("--width", type=int, default=480, help="thumbnail width, pixels")
    th.add_argument("--out-dir", required=True)
    th.set_defaults(func=cmd_thumbnails)
