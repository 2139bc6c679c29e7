"""Helpers every subcommand family shares: argument types and groups, the clinical table and
the split read back, figures written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CtithError

if TYPE_CHECKING:  # pandas costs 0.6 s to import: per-patient commands that do not need it skip it
    import pandas as pd


def json_arg(text: str):
    return json.loads(text)


def save_figure(fig, path, **savefig) -> None:
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    if savefig.get("format", Path(path).suffix.lstrip(".")) == "pdf":
        # matplotlib stamps a PDF with the time it was written: two runs would differ.
        savefig["metadata"] = {"CreationDate": None, **savefig.get("metadata", {})}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **{"dpi": 120, **savefig})
    plt.close(fig)


def read_clinical(args) -> pd.DataFrame:
    """The clinical table with canonical column names, indexed by patient_id."""
    from ..io import read_table
    from ..cohort.sheets import rename_clinical

    clinical, missing = rename_clinical(read_table(args.clinical), args.clinical_columns or {})
    if missing:
        raise CtithError(f"clinical table '{args.clinical}' has no {missing[0]}")
    return clinical.set_index("patient_id", drop=False)


def read_cohorts(path) -> pd.Series:
    import pandas as pd

    from ..io import read_table

    split = read_table(path)
    return pd.Series(split["cohort"].to_numpy(), index=split["patient_id"].to_numpy(), name="cohort")


def clinical_args(sp):
    sp.add_argument("--clinical", required=True, help="clinical table")
    sp.add_argument("--clinical-columns", type=json_arg, help="JSON: canonical -> your column")


def selection_args(sp):  # the Rad-score's settings (config `selection`), for C-radiomics and DL_F
    sp.add_argument("--variance-threshold", type=float, default=1e-3)
    sp.add_argument("--correlation-cutoff", type=float, default=0.9)
    sp.add_argument("--n-alphas", type=int, default=50)
    sp.add_argument("--alpha-min-ratio", type=float, default=0.05)
    sp.add_argument("--alpha-rule", default="max", choices=["max", "1se"])
    sp.add_argument("--seed", type=int, default=42)
