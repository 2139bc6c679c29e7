"""Eligibility (Appendix 1): inclusion and exclusion criteria from clinical columns.

Criteria come from the config, in order; each keeps the patients whose value passes
one test (``in``, ``not_in``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, or
``complete`` over several columns). A blank value fails the test: eligibility cannot be
confirmed. The flow table counts, CONSORT-style, the patients each criterion removes
from those still eligible; the excluded table lists every criterion each patient
fails, the first being the reason counted in the flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (series.astype(str).str.strip() == "")


def _as_number(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def _normalise(value) -> str:
    """'1', 1, 1.0 and '1.0' compare equal; text compares as stripped text."""
    try:
        x = float(value)
        return repr(int(x)) if x.is_integer() else repr(x)
    except (TypeError, ValueError):
        return str(value).strip()


def passes(clinical: pd.DataFrame, criterion: dict) -> pd.Series:
    """Boolean Series: which patients pass one criterion."""
    (op, value), = criterion["keep_if"].items()
    if op == "complete":
        cols = criterion.get("columns") or [criterion["column"]]
        return ~pd.concat([_blank(clinical[c]) for c in cols], axis=1).any(axis=1)
    col = clinical[criterion["column"]]
    known = ~_blank(col)
    if op in ("lt", "le", "gt", "ge"):
        x = _as_number(col)
        ok = {"lt": x < value, "le": x <= value, "gt": x > value, "ge": x >= value}[op]
        return known & ok.fillna(False).astype(bool)
    norm = col.map(_normalise)
    if op in ("in", "not_in"):
        allowed = {_normalise(v) for v in value}
        hit = norm.isin(allowed)
        return known & (hit if op == "in" else ~hit)
    if op in ("eq", "ne"):
        hit = norm == _normalise(value)
        return known & (hit if op == "eq" else ~hit)
    raise ValueError(f"unknown eligibility test '{op}' in criterion '{criterion['name']}'")


@dataclass
class EligibilityResult:
    eligible: pd.DataFrame  # patient_id, institution
    flow: pd.DataFrame  # step, criterion, n_before, n_removed, n_after, removed_<institution>...
    excluded: pd.DataFrame  # patient_id, institution, reason, all_failed


def apply_criteria(clinical: pd.DataFrame, institutions: pd.Series, criteria: list[dict]) -> EligibilityResult:
    """Apply criteria to the patients of the sample sheet (``institutions`` indexed by patient)."""
    ids = list(institutions.index)
    clin = clinical.reindex(ids)
    insts = sorted(institutions.unique())
    checks = pd.DataFrame({c["name"]: passes(clin, c).to_numpy() for c in criteria}, index=ids)
    still = pd.Series(True, index=ids)
    flow = [{"step": 0, "criterion": "patients in the sample sheet", "n_before": len(ids),
             "n_removed": 0, "n_after": len(ids), **{f"removed_{i}": 0 for i in insts}}]
    first_reason = pd.Series("", index=ids, dtype=object)
    for k, crit in enumerate(criteria, start=1):
        fail = still & ~checks[crit["name"]]
        first_reason[fail] = crit["name"]
        flow.append({"step": k, "criterion": crit["name"], "n_before": int(still.sum()),
                     "n_removed": int(fail.sum()), "n_after": int((still & ~fail).sum()),
                     **{f"removed_{i}": int((fail & (institutions == i)).sum()) for i in insts}})
        still &= ~fail
    eligible = pd.DataFrame({"patient_id": [p for p in ids if still[p]],
                             "institution": [institutions[p] for p in ids if still[p]]})
    out = [p for p in ids if not still[p]]
    excluded = pd.DataFrame({
        "patient_id": out,
        "institution": [institutions[p] for p in out],
        "reason": [first_reason[p] for p in out],
        "all_failed": ["; ".join(checks.columns[~checks.loc[p].to_numpy()]) for p in out],
    })
    return EligibilityResult(eligible, pd.DataFrame(flow), excluded)


def eligible_ids(clinical: pd.DataFrame, institutions: pd.Series, criteria: list[dict]) -> list[str]:
    """Just the eligible patient IDs, in sheet order (cheap enough for parse time)."""
    ok = np.ones(len(institutions), dtype=bool)
    clin = clinical.reindex(list(institutions.index))
    for c in criteria:
        ok &= passes(clin, c).to_numpy()
    return [p for p, keep in zip(institutions.index, ok) if keep]
