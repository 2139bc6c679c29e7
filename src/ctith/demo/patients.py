"""Every demo patient drawn without images: a ``PatientSpec`` per patient (anatomy,
tumour, habitats, scanner) and the clinical table (eligibility columns, both readers'
semantic ratings of Appendix 2, and a distant-metastasis outcome from a
proportional-hazards model whose hazard rises with the tumour's true heterogeneity and
with clinical risk; follow-up of 36 to 84 months without DM).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .presets import (ADMINISTRATIVE_CENSORING_MONTHS, FRAGMENT_SCALE_MM, HISTOLOGIES, INELIGIBILITY_REASONS, INSTITUTIONS,
                      MIN_FOLLOW_UP_MONTHS, PRESETS, SCANNERS, SEMANTIC_FEATURES, SLICE_THICKNESS_MM, T_STAGE_LIMITS_MM,
                      TISSUES, Preset)
from .truth import WEIBULL_SCALE_MONTHS, WEIBULL_SHAPE


@dataclass
class PatientSpec:
    patient_id: str
    institution: str
    scanner: str
    seed: int
    spacing_xy: float
    matrix: int
    n_slices: int
    body_axes_mm: tuple[float, float]
    fov_centre_mm: tuple[float, float]
    tumour_centre_mm: tuple[float, float, float]
    tumour_radii_mm: tuple[float, float, float]
    lobulation: float
    true_heterogeneity: float
    habitats: list[str]
    habitat_weights: list[float]
    fragment_scale_mm: float
    habitat_hu: list[float]
    enhancement_hu: float  # venous minus plain-CT HU of the solid habitat
    histology: str
    has_plain_ct: bool
    has_reader2: bool
    image_format: str  # nifti | dicom | nrrd | mha
    mask_storage: str  # as_image | flipped | permuted (same grid, other storage)
    ineligible_reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def tumour_diameter_mm(self) -> float:
        return 2.0 * max(self.tumour_radii_mm[:2])


def _patient_seed(seed: int, patient_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _t_stage(diameter_mm: float) -> str:
    return "T" + str(1 + int(np.searchsorted(T_STAGE_LIMITS_MM, diameter_mm)))


def _draw_spec(rng: np.random.Generator, preset: Preset, patient_id: str,
               institution: str, seed: int) -> PatientSpec:
    prof = SCANNERS[institution]
    # Body size sets the reconstruction field of view of a full 512 matrix, and so
    # the pixel spacing, as on a real scanner; the institution bounds the spacing.
    a = rng.uniform(125.0, 170.0)
    b = a * rng.uniform(0.68, 0.80)
    spacing = float(np.clip((2 * a + rng.uniform(30.0, 120.0)) / 512.0, *prof.spacing_mm))
    spacing = round(spacing, 4)
    fov = preset.matrix * spacing

    h = float(rng.uniform(0.0, 1.0))
    histology = HISTOLOGIES[int(rng.random() < 0.4)]
    lo, hi = preset.tumour_diameter_mm
    hi = min(hi, 0.85 * fov, 1.3 * a)
    diameter = float(rng.uniform(lo, hi))
    r_xy = diameter / 2.0
    radii = (r_xy, r_xy * rng.uniform(0.75, 0.95), r_xy * rng.uniform(0.8, 1.1))
    side = 1.0 if rng.random() < 0.5 else -1.0
    # Retroperitoneal: beside the spine, posterior half; big tumours reach the midline.
    cx = side * float(np.clip(a * 0.45 - 0.3 * r_xy, 25.0, max(25.0, a - r_xy - 15.0)))
    cy = float(np.clip(b * 0.25, -b + radii[1] + 10.0, b - radii[1] - 10.0))
    if preset.matrix < 512:
        # Targeted reconstruction: a smaller matrix centred near the tumour.
        fov_centre = (cx + rng.uniform(-0.05, 0.05) * fov, cy + rng.uniform(-0.05, 0.05) * fov)
    else:
        fov_centre = (0.0, 0.0)
    n_slices = int(np.ceil(2 * radii[2] * 1.3 / SLICE_THICKNESS_MM)) + 2 * preset.margin_slices

    # Heterogeneity: more habitats, in finer fragments, as h rises.
    n_hab = int(np.clip(np.round(1.0 + 4.0 * h + rng.normal(0.0, 0.6)), 1, 5))
    others = ["necrotic", "myxoid", "fat", "calcification"]
    p = np.array([0.35, 0.25, 0.25, 0.15])
    if histology == "RLPS":  # liposarcoma: fat and myxoid components are common
        p = np.array([0.2, 0.3, 0.4, 0.1])
    else:  # leiomyosarcoma: necrosis is common, fat is rare
        p = np.array([0.55, 0.2, 0.05, 0.2])
    chosen = list(rng.choice(others, size=n_hab - 1, replace=False, p=p)) if n_hab > 1 else []
    habitats = ["solid"] + [str(c) for c in chosen]
    weights = [1.0] + [float(rng.uniform(0.35, 0.9)) for _ in chosen]
    coarse, finest = np.log(FRAGMENT_SCALE_MM[0]), np.log(FRAGMENT_SCALE_MM[1])
    frag = float(np.exp(coarse + (finest - coarse) * h) * rng.uniform(0.85, 1.15))
    hab_hu = [float(rng.uniform(*TISSUES[t]["hu"])) for t in habitats]
    enhancement = float(rng.uniform(8.0, 65.0))

    fmt = "nifti"
    u = rng.random()
    if u < preset.dicom_fraction:
        fmt = "dicom"
    mask_storage = "as_image"
    v = rng.random()
    if v < 0.05:
        mask_storage = "flipped"
    elif v < 0.10:
        mask_storage = "permuted"
    return PatientSpec(
        patient_id=patient_id, institution=institution,
        scanner=str(rng.choice(prof.scanners)), seed=_patient_seed(seed, patient_id),
        spacing_xy=spacing, matrix=preset.matrix, n_slices=n_slices,
        body_axes_mm=(a, b), fov_centre_mm=fov_centre,
        tumour_centre_mm=(cx, cy, 0.0), tumour_radii_mm=radii,
        lobulation=float(rng.uniform(0.05, 0.25)), true_heterogeneity=h,
        habitats=habitats, habitat_weights=weights, fragment_scale_mm=frag,
        habitat_hu=hab_hu, enhancement_hu=enhancement, histology=histology,
        has_plain_ct=bool(rng.random() < preset.plain_ct_fraction),
        has_reader2=bool(rng.random() < preset.reader2_fraction),
        image_format=fmt, mask_storage=mask_storage,
    )


def _rate(rng: np.random.Generator, value, choices, p_error: float):
    """A reader's rating: the true category, or with p_error a neighbouring one."""
    if rng.random() >= p_error:
        return value
    i = choices.index(value)
    j = i + (1 if (rng.random() < 0.5 and i + 1 < len(choices)) or i == 0 else -1)
    return choices[min(max(j, 0), len(choices) - 1)]


def _semantic_truth(spec: PatientSpec) -> dict:
    w = np.array(spec.habitat_weights)
    frac = dict(zip(spec.habitats, w / w.sum()))
    degree = 1 if spec.enhancement_hu < 20 else (2 if spec.enhancement_hu <= 40 else 3)
    non_solid = 1.0 - frac["solid"]
    big = spec.tumour_diameter_mm
    involvement = int(big > 100.0 or abs(spec.tumour_centre_mm[0]) < 40.0)
    return {
        "tumor_number": 1,
        "tumor_shape": int(spec.lobulation > 0.15),  # 0 round/oval, 1 lobulated/irregular
        "necrosis": int("necrotic" in frac),
        "enhancement_pattern": int(non_solid > 0.30),  # 1 = heterogeneous (> 30% of volume)
        "enhancement_degree": degree,  # 1 mild < 20 HU, 2 moderate 20-40, 3 marked > 40
        "adipose_tissue": int("fat" in frac),
        "calcification": int("calcification" in frac),
        "adjacent_organ_involvement": involvement,
        "adjacent_involvement_type": (2 if big > 150 else 1) if involvement else 0,  # 0 none, 1 displacement, 2 invasion
    }


def _draw_specs(rng, preset: Preset, counts: dict, seed: int) -> list[PatientSpec]:
    """Every patient's spec, some of each institution ineligible (one reason each), and at
    least one DICOM patient and one mask stored another way."""
    extra = {inst: int(round(preset.ineligible_fraction * n)) if preset.eligible_counts else 0
             for inst, n in counts.items()}
    specs: list[PatientSpec] = []
    for inst in INSTITUTIONS:
        for i in range(counts.get(inst, 0) + extra.get(inst, 0)):
            specs.append(_draw_spec(rng, preset, f"{inst}{i + 1:03d}", inst, seed))

    # Every institution gets some ineligible patients, one reason each, so the
    # eligibility flow table has something to count.
    if preset.eligible_counts:
        idx = np.concatenate([rng.choice([i for i, s in enumerate(specs) if s.institution == inst],
                                         size=k, replace=False) for inst, k in extra.items() if k])
    else:
        n_inel = max(1, int(round(preset.ineligible_fraction * len(specs))))
        idx = rng.choice(len(specs), size=n_inel, replace=False)
    for k, i in enumerate(sorted(idx)):
        specs[i].ineligible_reason = INELIGIBILITY_REASONS[k % len(INELIGIBILITY_REASONS)]
    # At least one DICOM patient and one mask stored another way, whatever the draw.
    if not any(s.image_format == "dicom" for s in specs):
        specs[0].image_format = "dicom"
        specs[0].has_plain_ct = True
    if not any(s.mask_storage != "as_image" for s in specs):
        specs[-1].mask_storage = "permuted"
    # Other readable formats appear once each where the cohort is big enough.
    plain = [s for s in specs if s.image_format == "nifti"]
    if len(plain) > 20:
        plain[3].image_format = "nrrd"
        plain[7].image_format = "mha"
    return specs


T_STAGES = ["T1", "T2", "T3", "T4"]


# A row's value that makes it ineligible, per reason (the draw ``r`` is the patient's own).
_INELIGIBLE_VALUES = {
    "histology": lambda r: {"histology": str(r.choice(["UPS", "MPNST"]))},
    "margin": lambda r: {"resection_margin": "R1"},
    "ct_interval": lambda r: {"ct_to_treatment_days": int(r.integers(16, 40))},
    "image_quality": lambda r: {"image_quality": "inadequate"},
    "incomplete": lambda r: {"age": ""},
    "prior_malignancy": lambda r: {"prior_malignancy": 1},
    "prior_therapy": lambda r: {"therapy_before_ct": 1},
    "early_death": lambda r: {"nonmetastatic_death_6m": 1},
}


def _clinical_row(s: PatientSpec) -> tuple[dict, float]:
    """One patient's clinical row (eligibility columns, both readers' semantic ratings) and
    the outcome model's linear predictor, from the patient's own seed."""
    r = np.random.default_rng(s.seed ^ 0x5EED)
    age = int(np.clip(np.round(r.normal(56.0, 11.0)), 19, 85))
    sex = "F" if r.random() < 0.5 else "M"
    t_stage = _t_stage(s.tumour_diameter_mm)
    n_stage = "N1" if r.random() < 0.07 else "N0"
    truth = _semantic_truth(s)
    row = {
        "patient_id": s.patient_id, "age": age, "sex": sex, "histology": s.histology,
        "t_stage": t_stage, "n_stage": n_stage,
        "resection_margin": "R0", "plain_ct_done": 1, "ct_to_treatment_days": int(r.integers(1, 15)),
        "image_quality": "adequate", "prior_malignancy": 0, "therapy_before_ct": 0,
        "nonmetastatic_death_6m": 0,
    }
    if s.ineligible_reason in _INELIGIBLE_VALUES:
        row.update(_INELIGIBLE_VALUES[s.ineligible_reason](r))
    for name, value in truth.items():
        row[name] = _rate(r, value, SEMANTIC_FEATURES[name], 0.03)
    if s.has_reader2:
        row["t_stage_r2"] = _rate(r, t_stage, T_STAGES, 0.04)
        row["n_stage_r2"] = _rate(r, n_stage, ["N0", "N1"], 0.03)
        for name, value in truth.items():
            row[f"{name}_r2"] = _rate(r, value, SEMANTIC_FEATURES[name], 0.06)
    z_h = (s.true_heterogeneity - 0.5) / 0.2887  # standardised U(0, 1)
    lp = (1.15 * z_h + 0.55 * (s.histology == "RLMS") + 0.3 * (T_STAGES.index(t_stage) - 1)
          + 0.7 * (n_stage == "N1") + 0.01 * (age - 56))
    return row, lp


def _dm_outcomes(lp: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """DM event and months: proportional hazards, Weibull baseline. Censoring: loss to
    follow-up between 36 and 84 months, and administrative at 84 months, so no one without
    DM leaves before 36."""
    r = np.random.default_rng(seed ^ 0xD15EA5E)
    u = r.uniform(size=len(lp))
    t_event = WEIBULL_SCALE_MONTHS * (-np.log(u) / np.exp(lp)) ** (1.0 / WEIBULL_SHAPE)
    t_lost = MIN_FOLLOW_UP_MONTHS + r.exponential(60.0, size=len(lp))
    t_cens = np.minimum(ADMINISTRATIVE_CENSORING_MONTHS, t_lost)
    return (t_event <= t_cens).astype(int), np.round(np.minimum(t_event, t_cens), 1)


def simulate_cohort(preset: str | Preset = "demo", seed: int = 20240601,
                    n_patients: dict | None = None) -> tuple[list[PatientSpec], pd.DataFrame]:
    """Draw every patient's spec and the clinical table (no images rendered)."""
    preset = PRESETS[preset] if isinstance(preset, str) else preset
    specs = _draw_specs(np.random.default_rng(seed), preset, dict(n_patients or preset.n_patients), seed)
    rows, lp = zip(*(_clinical_row(s) for s in specs))
    clinical = pd.DataFrame(list(rows))
    for name in SEMANTIC_FEATURES:  # reader-2 ratings exist for a subset: integers with blanks
        if f"{name}_r2" in clinical:
            clinical[f"{name}_r2"] = clinical[f"{name}_r2"].astype("Int64")
    lp = np.asarray(lp)
    clinical["dm_event"], clinical["dm_time_months"] = _dm_outcomes(lp, seed)
    for s, l in zip(specs, lp):
        s.extra["linear_predictor"] = float(l)
    return specs, clinical
