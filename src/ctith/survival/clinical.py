"""The clinical model's covariates: encoding of the clinical table's variables (levels
learnt on training patients) and their selection, both fitted on the training cohort only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cox import CoxModel, SurvivalError

if TYPE_CHECKING:
    import pandas as pd


class ClinicalEncoder:
    """Clinical variables as a clinician reads them, frozen on the training cohort.

    ``spec`` maps each variable to ``"numeric"`` (as is, e.g. age per year), ``{"ordinal":
    [levels, low to high]}`` (1, 2, ...: T1-T4 as one step per stage) or ``{"reference":
    level}`` (one 0/1 column per other level seen in training, named ``variable_level``).
    A level unseen in training, or a blank, is an error naming the patient and column.
    """

    def __init__(self, spec: dict):
        self.spec = dict(spec)

    def fit(self, frame: pd.DataFrame) -> ClinicalEncoder:
        self.levels_ = {}
        for var, how in self.spec.items():
            if isinstance(how, dict) and "reference" in how:
                seen = sorted({str(v) for v in frame[var].dropna()} - {str(how["reference"])})
                self.levels_[var] = seen
        self.columns_ = {var: self._names(var) for var in self.spec}
        return self

    def _names(self, var) -> list[str]:
        how = self.spec[var]
        if isinstance(how, dict) and "reference" in how:
            return [f"{var}_{lvl}" for lvl in self.levels_[var]]
        return [var]

    def transform(self, frame: pd.DataFrame, variables=None) -> pd.DataFrame:
        """Encoded columns of ``variables`` (default: every variable of the spec); only
        those are checked, so a variable the model does not use cannot stop it."""
        import pandas as pd

        out = {}
        for var in self.spec if variables is None else variables:
            how = self.spec[var]
            if var not in frame.columns:
                raise SurvivalError(f"clinical column '{var}' is missing")
            col = frame[var]
            blank = col.isna() | (col.astype(str).str.strip() == "")
            if blank.any():
                raise SurvivalError(f"patient {col.index[blank][0]}: clinical column '{var}' is blank")
            if how == "numeric":
                vals = pd.to_numeric(col, errors="coerce")
                if vals.isna().any():
                    raise SurvivalError(f"patient {vals.index[vals.isna()][0]}: clinical column '{var}' "
                                        f"is not a number ({col[vals.isna()].iloc[0]!r})")
                out[var] = vals.astype(float)
            elif isinstance(how, dict) and "ordinal" in how:
                order = [str(v) for v in how["ordinal"]]
                bad = ~col.astype(str).isin(order)
                if bad.any():
                    raise SurvivalError(f"patient {col.index[bad][0]}: clinical column '{var}' has "
                                        f"{col[bad].iloc[0]!r}, not one of {order}")
                out[var] = col.astype(str).map({v: i + 1.0 for i, v in enumerate(order)})
            elif isinstance(how, dict) and "reference" in how:
                known = set(self.levels_[var]) | {str(how["reference"])}
                bad = ~col.astype(str).isin(known)
                if bad.any():
                    raise SurvivalError(f"patient {col.index[bad][0]}: clinical column '{var}' has "
                                        f"{col[bad].iloc[0]!r}, a level the training cohort does not have "
                                        f"({sorted(known)})")
                for lvl in self.levels_[var]:
                    out[f"{var}_{lvl}"] = (col.astype(str) == lvl).astype(float)
            else:
                raise SurvivalError(f"clinical variable '{var}': encoding {how!r} is not 'numeric', "
                                    "{ordinal: [...]} or {reference: level}")
        return pd.DataFrame(out, index=frame.index)

    def describe(self) -> dict:
        """Column -> what 1 unit of it means, for tables and the model file."""
        d = {}
        for var, how in self.spec.items():
            if how == "numeric":
                d[var] = f"{var}, per unit"
            elif "ordinal" in how:
                d[var] = f"{var}, per step of {' < '.join(map(str, how['ordinal']))}"
            else:
                for lvl in self.levels_[var]:
                    d[f"{var}_{lvl}"] = f"{var} {lvl} (reference {how['reference']})"
        return d

    def to_dict(self) -> dict:
        return {"spec": self.spec, "levels": self.levels_}

    @classmethod
    def from_dict(cls, d: dict) -> ClinicalEncoder:
        enc = cls(d["spec"])
        enc.levels_ = {k: list(v) for k, v in d["levels"].items()}
        enc.columns_ = {var: enc._names(var) for var in enc.spec}
        return enc


def select_clinical(X: pd.DataFrame, groups: dict[str, list[str]], time, event, p_enter: float = 0.1,
                    penalizer: float = 0.0) -> tuple[list[str], pd.DataFrame]:
    """Variables of the clinical model, chosen on training data only: each variable (all its
    columns together) by a univariable Cox likelihood-ratio test at ``p_enter``, then
    backward elimination on AIC from the multivariable model of those that passed.

    If no variable passes, the one with the smallest p is kept, so the model is never
    empty; the returned table says so. Returns the chosen variables and one row per
    variable (univariable p, whether it passed, the step it was removed at, kept)."""
    import pandas as pd

    rows = {}
    for var, cols in groups.items():
        if not cols or X[cols].nunique().max() < 2:
            rows[var] = {"univariable_p": float("nan"), "note": "one value only in training"}
            continue
        try:
            m = CoxModel(penalizer=penalizer).fit(X[cols], time, event)
        except (ValueError, ArithmeticError) as exc:  # e.g. a level that separates events exactly
            rows[var] = {"univariable_p": float("nan"), "note": f"Cox fit failed: {exc}"}
            continue
        rows[var] = {"univariable_p": m.likelihood_ratio_p(),
                     "note": "" if m.converged_ else "did not converge (a level may separate DM exactly)"}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variable"
    passed = [v for v in groups if table.loc[v, "univariable_p"] < p_enter]
    table["passed_univariable"] = table.index.isin(passed)
    table["removed_at_step"] = pd.NA
    if not passed:
        tested = table["univariable_p"].dropna()
        if tested.empty:
            raise SurvivalError("every clinical variable is constant in the training cohort")
        passed = [str(tested.idxmin())]
        table.loc[passed[0], "note"] = f"no variable reached p < {p_enter}: the strongest is kept"

    def aic(vars_):
        cols = [c for v in vars_ for c in groups[v]]
        return CoxModel(penalizer=penalizer).fit(X[cols], time, event).aic_

    current, step = list(passed), 0
    while len(current) > 1:
        best_aic = aic(current)
        trial = {v: aic([w for w in current if w != v]) for v in current}
        drop = min(trial, key=lambda v: (trial[v], current.index(v)))
        if trial[drop] >= best_aic:
            break
        step += 1
        current.remove(drop)
        table.loc[drop, "removed_at_step"] = step
    table["kept"] = table.index.isin(current)
    return current, table.reset_index()


def clinical_covariates(clinical: pd.DataFrame, spec: dict, train, time, event, p_enter: float = 0.1,
                        penalizer: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """The clinical model's covariates for every patient: the encoder's levels and the
    variable selection come from the training patients (``train``: their IDs) only.
    Returns the encoded columns of the chosen variables, and what was decided (the
    encoder, the chosen variables, the selection table) for the model file."""
    enc = ClinicalEncoder(spec).fit(clinical.loc[train])
    chosen, table = select_clinical(enc.transform(clinical.loc[train]), enc.columns_, time, event, p_enter,
                                    penalizer)
    # Validation patients need only the chosen variables, at levels training has seen.
    X = enc.transform(clinical, chosen)
    return X, {"encoder": enc.to_dict(), "chosen": chosen, "columns": enc.describe(), "encoder_columns": enc.columns_,
                     "selection": table.astype(object).where(table.notna(), None).to_dict(orient="records")}
