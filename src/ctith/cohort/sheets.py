"""Input contracts: the sample sheet and the clinical table, checked all at once.

The JSON schemas under ``workflow/schemas/`` say what each column holds; this module
types the text cells the way the schema asks, runs the schema on every row, and adds
what a schema cannot express (files exist, IDs unique, every patient has clinical
data and an outcome). Every problem is collected and raised together as one
``SheetError``, each line naming the patient, the column or the file.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from ..errors import ConfigError, SheetError
from ..io import read_table

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
PATH_COLUMNS = ("image", "mask", "mask_reader2", "mask_reader1_repeat", "plain_ct")
OUTCOME_COLUMNS = ("dm_event", "dm_time_months")
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "workflow" / "schemas"
# The workflow's own config: the defaults every run's --configfile is merged over.
DEFAULT_CONFIG = SCHEMA_DIR.parents[1] / "config.yaml"


@lru_cache(maxsize=None)
def load_schema(name: str, schema_dir: str | None = None) -> dict:
    return yaml.safe_load((Path(schema_dir) if schema_dir else SCHEMA_DIR).joinpath(name).read_text())


def config_problems(config: dict) -> list[str]:
    """What is wrong with a configuration, one line per problem, named by its key path.
    An unknown key is reported with the nearest known one: a misspelt key would otherwise
    be ignored and its section's default used without a word."""
    import difflib

    problems = []
    schema = load_schema("config.schema.yaml")
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(config),
                      key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            known = list(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(known)):
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {', '.join(known)}"
                prefix = "" if where == "(top level)" else f"{where}."
                problems.append(f"config key '{prefix}{key}' is not a ctith setting{hint}")
        else:
            problems.append(f"config '{where}': {err.message}")
    return problems


def merge_config(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base`` as Snakemake merges a ``--configfile`` over the workflow's
    ``configfile:``: mappings key by key, at every depth; anything else (a list, a number)
    replaced whole."""
    merged = dict(base)
    for key, value in (overlay or {}).items():
        merged[key] = merge_config(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def load_config(paths, defaults: str | os.PathLike | None = DEFAULT_CONFIG) -> dict:
    """The configuration a run with ``--configfile paths...`` sees: ``defaults`` (the
    workflow's own config.yaml, as the Snakefile loads it from any working directory; None:
    none), then each file of ``paths`` merged over it in turn."""
    files = ([Path(defaults)] if defaults else []) + [Path(p) for p in paths]
    problems = [f"config file '{p}' does not exist" for p in files if not p.is_file()]
    if problems:
        raise ConfigError(problems)
    config: dict = {}
    for path in files:
        layer = yaml.safe_load(path.read_text()) or {}
        if not isinstance(layer, dict):
            raise ConfigError([f"config file '{path}' holds no mapping of settings"])
        config = merge_config(config, layer)
    return config


def check_config(config: dict) -> None:
    """Raise ConfigError listing every problem of ``config`` (see ``config_problems``)."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems)


def _coerce(value: str, spec: dict):
    """Type one text cell as the schema asks; leave it as text when it does not fit,
    so that the schema reports it."""
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    text = value.strip()
    if "integer" in types or "number" in types:
        try:
            x = float(text)
        except ValueError:
            return text
        if not math.isfinite(x):
            return text
        if "integer" in types:
            return int(x) if x.is_integer() else x
        return x
    return text


def type_rows(df: pd.DataFrame, schema: dict) -> list[dict]:
    """Rows as dicts, blank cells dropped, schema columns typed."""
    props = schema.get("properties", {})
    out = []
    for rec in df.to_dict("records"):
        row = {}
        for col, val in rec.items():
            if val is None or (isinstance(val, float) and math.isnan(val)) or str(val).strip() == "":
                continue
            row[col] = _coerce(str(val), props[col]) if col in props else str(val).strip()
        out.append(row)
    return out


def _row_problems(rows: list[dict], schema: dict, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for i, row in enumerate(rows):
        pid = row.get("patient_id", "?")
        for err in sorted(validator.iter_errors(row), key=lambda e: list(e.path)):
            col = err.path[0] if err.path else None
            if col == "patient_id" and err.validator == "pattern":
                problems.append(f"{where} row {i + 2}: patient ID {pid!r} is not a safe token "
                                "(letters, digits, '_' and '-', starting with a letter or digit)")
            elif col:
                problems.append(f"{where} row {i + 2} (patient {pid}): column '{col}': {err.message}")
            else:
                problems.append(f"{where} row {i + 2} (patient {pid}): {err.message}")
    return problems


def _duplicates(ids: pd.Series, where: str) -> list[str]:
    problems = []
    for pid, rows in ids.groupby(ids).groups.items():
        if len(rows) > 1 and str(pid).strip():
            lines = ", ".join(str(r + 2) for r in rows)
            problems.append(f"{where}: patient {pid} appears more than once (rows {lines})")
    return problems


def _check_sheet(df: pd.DataFrame, schema: dict, where: str) -> tuple[list[dict] | None, list[str]]:
    """Typed rows of one sheet and its own problems (columns, cells, duplicate IDs)."""
    absent = [c for c in schema["required"] if c not in df.columns]
    problems = [f"{where} has no column '{c}'" for c in absent]
    if "patient_id" not in df.columns:
        return None, problems
    rows = type_rows(df, schema)
    # A missing column is said once, not once per row.
    problems += _row_problems(rows, {**schema, "required": [c for c in schema["required"] if c not in absent]}, where)
    problems += _duplicates(df["patient_id"].str.strip(), where)
    return rows, problems


def _why_missing(path: str) -> str:
    """Why a path that does not exist does not: a symbolic link says where it breaks."""
    import errno

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        if os.path.islink(path):
            return f"is a symbolic link to '{os.readlink(path)}', which does not exist"
    return "does not exist"


def resolve_path(value: str, sheet: str | os.PathLike) -> str:
    """A sheet's relative path is relative to the sheet's own folder."""
    if not value:
        return ""
    if os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(os.path.dirname(str(sheet)), value))


@dataclass
class Inputs:
    samples: pd.DataFrame  # one row per patient, typed, paths resolved
    clinical: pd.DataFrame  # canonical column names, typed, indexed by patient_id
    # Columns only later stages need, missing: said with the split's problems (preflight).
    problems: list = field(default_factory=list)


def study_inputs(inputs: Inputs) -> Inputs:
    """The study's patients: every row but the ``predict`` ones. A patient to predict is
    scored by the frozen models and enters no table, split or fit of the study."""
    keep = inputs.samples["cohort"] != "predict"
    samples = inputs.samples.loc[keep]
    return Inputs(samples, inputs.clinical.loc[inputs.clinical.index.isin(samples.index)], inputs.problems)


def predict_patients(inputs: Inputs) -> list[str]:
    return inputs.samples.index[(inputs.samples["cohort"] == "predict").to_numpy()].tolist()


def rename_clinical(clinical: pd.DataFrame, columns: dict) -> tuple[pd.DataFrame, list[str]]:
    """Map the user's column names onto canonical ones (config ``clinical_columns``)."""
    missing = [f"column '{theirs}' (config clinical_columns.{ours})"
               for ours, theirs in columns.items() if theirs not in clinical.columns]
    renamed = clinical.rename(columns={theirs: ours for ours, theirs in columns.items()
                                       if theirs in clinical.columns and theirs != ours})
    return renamed, missing


def column_needs(config: dict, sample_columns=()) -> dict[str, list[str]]:
    """Clinical-table column (its canonical name) -> what in the config needs it: the
    eligibility criteria, the clinical variables of the survival models that take them,
    Table S3's reader columns and a ComBat batch column not in the sample sheet."""
    needs: dict[str, list[str]] = {}

    def need(col, why):
        if col and why not in needs.setdefault(col, []):
            needs[col].append(why)

    criteria: dict[str, list[str]] = {}
    for crit in config.get("eligibility", {}).get("criteria", []):
        for col in crit.get("columns", [crit.get("column")]):
            if col:
                criteria.setdefault(col, []).append(f"'{crit['name']}'")
    for col, names in criteria.items():
        need(col, f"eligibility criteri{'a' if len(names) > 1 else 'on'} {', '.join(names)}")
    survival = config.get("survival", {})
    users = [key for key, m in survival.get("models", {}).items() if "clinical" in m.get("covariates", [])]
    for col in survival.get("clinical", {}).get("variables", {}) if users else ():
        need(col, f"the survival models' clinical variables (survival.clinical.variables; models {', '.join(users)})")
    for row in config.get("reproducibility", {}).get("table_s3", []):
        for reader in ("reader1", "reader2"):
            need(row.get(reader), f"Table S3 row '{row.get('label')}' ({reader})")
    batch = config.get("harmonize", {}).get("batch_column")
    if batch and batch not in sample_columns:
        need(batch, "ComBat's batches (harmonize.batch_column)")
    return needs


def validate_inputs(samples: pd.DataFrame, clinical: pd.DataFrame, config: dict,
                    samples_path: str, clinical_path: str, check_files: bool = True) -> Inputs:
    """Check sheets against their schemas and each other; raise SheetError listing all problems."""
    problems: list[str] = []
    s_where, c_where = f"sample sheet '{samples_path}'", f"clinical table '{clinical_path}'"
    s_schema, c_schema = load_schema("samples.schema.yaml"), load_schema("clinical.schema.yaml")

    s_rows, found = _check_sheet(samples, s_schema, s_where)
    problems += found

    if s_rows:  # one scan under two patients would put the same images on both sides of the split
        from .scan_identity import repeated_files

        problems += repeated_files(s_rows, lambda v: resolve_path(v, samples_path))
    if check_files:
        for row in s_rows or []:
            pid = row.get("patient_id", "?")
            for col in PATH_COLUMNS:
                if col in row:
                    p = resolve_path(row[col], samples_path)
                    if not os.path.exists(p):
                        problems.append(f"patient {pid}: {col} '{p}' (sample sheet column '{col}') "
                                        f"{_why_missing(p)}")

    columns = config.get("clinical_columns", {})
    absent = {ours: theirs for ours, theirs in columns.items() if theirs not in clinical.columns}
    clinical, _ = rename_clinical(clinical, columns)
    # Each absent column said once, with every configured stage that needs it.
    needed_by = {col: why for col, why in column_needs(config, samples.columns).items() if col not in clinical.columns}

    def _needed(col):
        why = needed_by.pop(col, [])
        return f", needed by {'; '.join(why)}" if why else ""

    # A column only later stages need (not the ID, the outcome or an eligibility criterion's)
    # lets the parse go on to the split: its line is said with the split's problems.
    at_parse = {"patient_id", *OUTCOME_COLUMNS,
                *(c for crit in config.get("eligibility", {}).get("criteria", [])
                  for c in crit.get("columns", [crit.get("column")]) if c)}
    deferred: list[str] = []
    for ours, theirs in absent.items():
        (problems if ours in at_parse else deferred).append(
            f"{c_where} has no column '{theirs}' (config clinical_columns.{ours}){_needed(ours)}")
    for col in list(needed_by):
        (problems if col in at_parse else deferred).append(f"{c_where} has no column '{col}'{_needed(col)}")
    c_rows, found = _check_sheet(clinical, c_schema, c_where)
    problems += [p for p in found if p not in {f"{c_where} has no column '{ours}'" for ours in absent}]
    if s_rows is None or c_rows is None:  # no patient_id column: nothing more to match
        raise SheetError(problems + deferred)

    by_id = {r.get("patient_id"): r for r in c_rows}
    for row in s_rows:
        pid = row.get("patient_id")
        if pid is None or not SAFE_ID.fullmatch(pid):  # already reported as unsafe
            continue
        crow = by_id.get(pid)
        if crow is None:
            problems.append(f"patient {pid}: missing from {c_where}")
            continue
        if row.get("cohort") != "predict":  # new patients to predict have no outcome yet
            for col in OUTCOME_COLUMNS:
                if col in clinical.columns and col not in crow:
                    problems.append(f"patient {pid}: '{col}' is blank in {c_where}")

    if problems:
        raise SheetError(problems + deferred)

    typed_samples = pd.DataFrame(s_rows).astype(object).fillna("")
    for col in s_schema["properties"]:
        if col not in typed_samples.columns:
            typed_samples[col] = ""
    for col in PATH_COLUMNS:
        typed_samples[col] = [resolve_path(v, samples_path) for v in typed_samples[col]]
    typed_clinical = pd.DataFrame(c_rows, columns=list(clinical.columns)).set_index("patient_id", drop=False)
    return Inputs(typed_samples.set_index("patient_id", drop=False), typed_clinical, deferred)


def load_inputs(config: dict, check_files: bool = True) -> Inputs:
    """Read both sheets named in the config and validate them together."""
    problems = []
    for key in ("samples", "clinical"):
        if not os.path.isfile(config[key]):
            problems.append(f"config '{key}': file '{config[key]}' does not exist")
    if problems:
        raise SheetError(problems)
    return validate_inputs(read_table(config["samples"]), read_table(config["clinical"]), config,
                           config["samples"], config["clinical"], check_files=check_files)


def results_owner(config: dict) -> dict:
    """Which sheets a results folder is the run of: the config's ``samples`` and
    ``clinical`` paths, as written (relative to the working directory)."""
    return {key: os.path.normpath(str(config[key])) for key in ("samples", "clinical")}


def results_owner_problem(record: str | os.PathLike, config: dict) -> str | None:
    """Why this run must not write into a results folder whose ``record`` names other
    sheets (None when it names these, or no record exists yet). A `snakemake --report` or
    a rerun without the user's ``--configfile`` would otherwise build the demo and
    overwrite the cohort's sheets under results/cohort/."""
    import json

    record = Path(record)
    if not record.is_file():
        return None
    before, now = json.loads(record.read_text()), results_owner(config)
    if before == now:
        return None
    return (f"the results here are the run of samples '{before['samples']}' and clinical table "
            f"'{before['clinical']}' ({record}); this run's config names '{now['samples']}' and "
            f"'{now['clinical']}'. Pass that run's --configfile (for --report too), or start another cohort in "
            f"another folder (--directory); if the sheets only moved, delete {record}")

