"""One scan filed under two patients: a repeated path in the sample sheet, or the same pixels
under another path or format (a copied or re-exported file).

Such a pair inflates validation when the two copies sit in different cohorts: the model has
seen the validation patient's scan in training. It is caught before any model is fitted:
the sheet's paths when the sheets are read, the pixel digests that ingest records in the
cohort QC step (an error across cohorts, a warning within one).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

SCAN_COLUMNS = (("image", "image_series_uid"), ("plain_ct", "plain_ct_series_uid"))


def pixel_digest(array: np.ndarray, spacing) -> str:
    """sha256 of a scan's voxels (rounded to whole HU, so a lossless re-export in another
    format or integer type gives the same digest) with its shape and spacing (0.01 mm).
    ``array``: the canonically oriented volume as ingest writes it."""
    values = np.ascontiguousarray(np.rint(np.asarray(array, dtype=np.float64)).astype(np.int32))
    h = hashlib.sha256()
    h.update(repr((values.shape, tuple(round(float(s), 2) for s in spacing))).encode())
    h.update(values.tobytes())
    return h.hexdigest()


def repeated_files(rows: list[dict], resolve) -> list[str]:
    """Problems of a sample sheet's typed rows where one file (and DICOM series) is the CT of
    two patients. ``resolve(path)``: the path as the sheet means it. A patient's venous and
    plain CT may share a DICOM folder (different series)."""
    seen: dict[tuple, tuple[str, str]] = {}
    problems = []
    for row in rows:
        pid = row.get("patient_id", "?")
        for col, uid_col in SCAN_COLUMNS:
            if not row.get(col):
                continue
            key = (os.path.realpath(resolve(row[col])), str(row.get(uid_col) or ""))
            first = seen.setdefault(key, (pid, col))
            if first[0] != pid:
                series = f" (series {key[1]})" if key[1] else ""
                problems.append(f"patients {first[0]} and {pid}: one scan filed under two patients: '{key[0]}'"
                                f"{series} is the {first[1]} of {first[0]} and the {col} of {pid}")
    return problems


def same_scans(records: list[dict], cohorts: dict) -> tuple[list[str], list[str]]:
    """Pairs of patients whose ingested CTs have the same pixel digest (``qc.json``'s
    ``pixel_sha256``). Returns (errors: the two in different cohorts, warnings: in one
    cohort); each message names both patients and their source files."""
    by_digest: dict[str, list[dict]] = {}
    for r in records:
        if r.get("pixel_sha256"):
            by_digest.setdefault(r["pixel_sha256"], []).append(r)
    errors, warnings = [], []
    for group in by_digest.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                ca, cb = cohorts.get(a["patient_id"], "?"), cohorts.get(b["patient_id"], "?")
                message = (f"patients {a['patient_id']} ({ca}) and {b['patient_id']} ({cb}) have the same CT "
                           f"pixels: '{a.get('image_source')}' and '{b.get('image_source')}' are one scan")
                # A patient to predict is never validated on: the pair is a warning.
                (errors if ca != cb and "predict" not in (ca, cb) else warnings).append(message)
    return errors, warnings


def same_scans_error(errors: list[str]) -> str:
    """The one message that stops the workflow on pairs from ``same_scans``."""
    return "one scan in two cohorts would validate a model on an image it trained on:\n  " + "\n  ".join(errors)
