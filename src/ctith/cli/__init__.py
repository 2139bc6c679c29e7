"""``ctith <stage>``: one subcommand per stage, explicit paths in, files out.

Each subcommand reads its inputs, calls one stage module, and writes outputs
atomically. Errors a user can act on print as one line naming the patient and the
file, with exit status 1 and no traceback. One module per stage family holds its
subcommands' arguments beside their handlers; stage modules know no command line.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CtithError
from . import cohort, demo, dl, harmonize, ith, predict, radiomics, report, survival, survival_report

FAMILIES = (demo, cohort, ith, radiomics, harmonize, dl, survival, survival_report, predict, report)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctith", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        family.register(sub)
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
