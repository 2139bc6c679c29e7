"""Before any job: does every mask file of the sample sheet hold the label its column asks
for? The one check of ``ctith validate`` that reads images (each mask once), so the
workflow's parse, which every cluster job repeats, leaves it to ingest and to
``ctith validate``.
"""

from __future__ import annotations

import pandas as pd

from ..errors import CtithError
from .readers import read_mask

# Mask column -> its label column; each falls back to reader 1's mask_label.
MASK_LABEL_COLUMNS = {"mask": "mask_label", "mask_reader2": "mask_reader2_label",
                      "mask_reader1_repeat": "mask_reader1_repeat_label"}


def chosen_label(row: pd.Series, column: str, default: int | None = None) -> int | None:
    """The label a mask column's file is read with: its own label column, else
    ``mask_label``, else the config's ``ingest.mask_label`` (``default``)."""
    for key in (MASK_LABEL_COLUMNS[column], "mask_label"):
        value = row.get(key, "")
        if value not in ("", None) and not pd.isna(value):
            return int(value)
    return default


def mask_label_problems(samples: pd.DataFrame, default: int | None = None) -> list[str]:
    """One line per mask file that is unreadable, empty, holds several labels with none
    chosen, or lacks the chosen one (``samples``: the validated sheet, paths resolved)."""
    problems = []
    for _, row in samples.iterrows():
        for column in MASK_LABEL_COLUMNS:
            path = row.get(column, "")
            if not path:
                continue
            label = chosen_label(row, column, default)
            try:
                read_mask(path, column, label, row["patient_id"], MASK_LABEL_COLUMNS[column])
            except CtithError as exc:
                hint = ("" if column == "mask" or label is None
                        else f" (label {label}: column {MASK_LABEL_COLUMNS[column]}, else mask_label)")
                problems.append(f"{exc} [sample sheet column '{column}']{hint}")
    return problems
