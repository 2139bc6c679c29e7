"""Table S1: each institution's acquisition settings, from the allow-listed DICOM header
fields ingest records in every patient's qc.json.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the per-patient ingest does not need pandas (0.6 s to import)
    import pandas as pd


# Table S1's rows, in the paper's order: (row, header field(s), unit). Two fields beside the
# paper's (total collimation, reconstruction kernel) are read as well and shown after them.
TABLE_S1_ROWS = (
    ("CT version", ("Manufacturer", "ManufacturerModelName"), None),
    ("Tube current", ("ExposureModulationType",), None),
    ("Tube voltage", ("KVP",), "kV"),
    ("Detector collimation", ("SingleCollimationWidth",), "mm"),
    ("Slice thickness", ("SliceThickness",), "mm"),
    ("Pitch", ("SpiralPitchFactor",), ""),
    ("Image matrix", ("Rows", "Columns"), None),
    ("Contrast material", ("ContrastBolusAgent",), None),
    ("Total collimation", ("TotalCollimationWidth",), "mm"),
    ("Reconstruction kernel", ("ConvolutionKernel",), None),
)


MAX_LISTED = 3  # more distinct numbers than this are shown as a range


def _number(v: float, unit: str) -> str:
    # The paper writes a pitch of one as "1.0", a voltage as "120kV": keep that.
    return f"{v:.1f}" if (unit == "" and float(v).is_integer()) else f"{v:g}"


def _summarise(values: list, unit: str | None) -> str:
    """Distinct values, "a or b" as the paper lists them; numbers past MAX_LISTED as a range."""
    flat = []
    for v in values:
        flat.extend(v if isinstance(v, list) else [v])
    flat = [v for v in flat if v is not None]
    if not flat:
        return "-"
    if unit is not None and all(isinstance(v, (int, float)) for v in flat):
        distinct = sorted(set(map(float, flat)))
        if len(distinct) > MAX_LISTED:
            span = f"{_number(distinct[0], unit)}-{_number(distinct[-1], unit)} {unit}".strip()
            return f"{span} ({len(distinct)} values)"
        return " or ".join(f"{_number(v, unit)} {unit}".strip() for v in distinct)
    return " or ".join(sorted({str(v) for v in flat}))


def _ct_versions(acq: list[dict]) -> str:
    """Scanner models grouped by manufacturer: "Revolution CT or LightSpeed CT750 HD (GE); ..."."""
    by_maker: dict[str, set] = {}
    for a in acq:
        if a.get("Manufacturer") or a.get("ManufacturerModelName"):
            by_maker.setdefault(a.get("Manufacturer") or "unknown manufacturer", set()).add(
                a.get("ManufacturerModelName") or "model not recorded")
    if not by_maker:
        return "-"
    return "; ".join(f"{' or '.join(sorted(models))} ({maker})" for maker, models in sorted(by_maker.items()))


def _tube_current(acq: list[dict]) -> str:
    kinds = sorted({str(a["ExposureModulationType"]) for a in acq if a.get("ExposureModulationType")})
    if not kinds:
        return "-"
    return " or ".join("Fixed tube current" if k.upper() == "NONE" else f"Automatic tube current modulation ({k})"
                       for k in kinds)


def table_s1(records: list[dict], institution: dict) -> pd.DataFrame:
    """Table S1: each institution's acquisition settings from the DICOM headers in the
    patients' qc.json (``acquisition``), in the paper's rows; a column per institution
    (``institution``: patient ID -> institution). Patients read from NIfTI, NRRD or MHA
    have no header: the last row says how many patients each column rests on."""
    import pandas as pd

    by_inst: dict[str, list[dict]] = {}
    for q in records:
        acq = q.get("acquisition") or {}
        if any(v is not None for v in acq.values()):
            by_inst.setdefault(institution[q["patient_id"]], []).append(acq)
    n_patients = pd.Series([institution[q["patient_id"]] for q in records]).value_counts()
    institutions = sorted(set(institution[q["patient_id"]] for q in records))
    rows = []
    for name, fields, unit in TABLE_S1_ROWS:
        row = {"Parameters": name}
        for inst in institutions:
            acq = by_inst.get(inst, [])
            if name == "CT version":
                row[inst] = _ct_versions(acq)
            elif name == "Tube current":
                row[inst] = _tube_current(acq)
            elif name == "Image matrix":
                row[inst] = _summarise([f"{a['Rows']}×{a['Columns']}" for a in acq
                                        if a.get("Rows") and a.get("Columns")], None)
            else:
                row[inst] = _summarise([a.get(fields[0]) for a in acq], unit)
        rows.append(row)
    rows.append({"Parameters": "Patients with a DICOM header",
                 **{inst: f"{len(by_inst.get(inst, []))} of {int(n_patients[inst])}" for inst in institutions}})
    table = pd.DataFrame(rows, columns=["Parameters", *institutions])
    return table.rename(columns={inst: f"Institution {inst}" for inst in institutions})
