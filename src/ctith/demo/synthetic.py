"""Synthetic demo cohort: CT phantoms of retroperitoneal sarcoma with habitats.

The cohort is built in two seeded steps so that tests can check the clinical side
without rendering images:

1. ``simulate_cohort(preset, seed)`` draws one ``PatientSpec`` per patient (anatomy,
   tumour, habitats, scanner) and the clinical table (eligibility columns, semantic
   features of Appendix 2 for reader 1 and reader 2, and a distant-metastasis outcome
   from a proportional-hazards model whose hazard rises with the tumour's true
   heterogeneity and with clinical risk; follow-up of 36 to 84 months without DM).
2. ``render_patient(spec)`` draws the venous-phase CT in HU, the optional plain CT and
   the reader-1 / reader-2 masks; ``write_cohort`` writes everything with a sample
   sheet and a clinical table. Same seed, byte-identical files.

Units: HU for intensities, mm for geometry. Arrays are (z, y, x); the image grid is
LPS with identity direction (x to the patient's left, y posterior, z superior).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from .truth import WEIBULL_SCALE_MONTHS, WEIBULL_SHAPE
from ..io import write_tsv

SLICE_THICKNESS_MM = 5.0
# Follow-up as in the paper: every patient without DM is followed for at least 36 months;
# some are lost to follow-up after that, the rest are censored when the study closes.
MIN_FOLLOW_UP_MONTHS = 36.0
ADMINISTRATIVE_CENSORING_MONTHS = 84.0
# Habitat arrangement (Gaussian field sigma, mm): compartments of a coherent tumour, and
# the finest patches of a heterogeneous one (h = 0 -> 1 goes from the first to the second).
COMPARTMENT_SCALE_MM = 14.0
FRAGMENT_SCALE_MM = (10.0, 2.5)
INSTITUTIONS = ("A", "B")


@dataclass(frozen=True)
class ScannerProfile:
    """How an institution's protocol changes the image (Table S1: 120 kV vs 100 kV)."""

    spacing_mm: tuple[float, float]  # in-plane pixel spacing range
    hu_offset: float  # calibration offset
    iodine_gain: float  # lower kV raises the HU of enhancing tissue
    noise_sd: float  # HU, quantum noise before the median-residual measure
    noise_corr_px: float  # reconstruction-kernel grain (Gaussian sigma, pixels)
    psf_px: float  # in-plane blur of the anatomy (Gaussian sigma, pixels)
    scanners: tuple[str, ...]


# Noise as measured on real CT: the residual after a 3 x 3 in-plane median, in
# homogeneous soft tissue, is 9-17 HU (tests/test_demo.py); 100 kV (B) is the noisier.
# Iodine's CT number rises by about a fifth from 120 to 100 kV, hence B's gain of 1.20.
SCANNERS = {
    "A": ScannerProfile((0.60, 0.80), 0.0, 1.00, 14.5, 0.6, 0.6,
                        ("GE Revolution CT", "GE LightSpeed CT750 HD", "Siemens SOMATOM Force")),
    "B": ScannerProfile((0.70, 0.90), 14.0, 1.20, 17.0, 0.5, 0.6,
                        ("United Imaging uCT960", "United Imaging uCT710", "GE Revolution CT")),
}


# Table S1's protocols, written into the DICOM patients' headers: the institution's tube
# voltage, pitches and contrast agent; each scanner's maker, model, detector collimation
# (single and total) and soft-tissue kernel. Automatic tube current modulation everywhere.
PROTOCOLS = {
    "A": dict(KVP=120, pitches=(1.0, 1.375), ContrastBolusAgent="Iopromide 370 (Bayer)"),
    "B": dict(KVP=100, pitches=(0.6, 0.8), ContrastBolusAgent="Iopamidol 350 (Hengrui)"),
}
SCANNER_HEADERS = {
    "GE Revolution CT": ("GE MEDICAL SYSTEMS", "Revolution CT", 0.625, 80.0, "STANDARD"),
    "GE LightSpeed CT750 HD": ("GE MEDICAL SYSTEMS", "LightSpeed CT750 HD", 0.625, 40.0, "STANDARD"),
    "Siemens SOMATOM Force": ("SIEMENS", "SOMATOM Force", 0.6, 57.6, "Br40d"),
    "United Imaging uCT960": ("UIH", "uCT960", 0.6, 48.0, "B_SOFT_B"),
    "United Imaging uCT710": ("UIH", "uCT710", 0.6, 38.4, "B_SOFT_B"),
}


@dataclass(frozen=True)
class Preset:
    name: str
    n_patients: dict  # institution -> count
    matrix: int  # in-plane matrix of the written image
    tumour_diameter_mm: tuple[float, float]
    margin_slices: int = 3  # slices kept above and below the tumour
    reader2_fraction: float = 0.3
    plain_ct_fraction: float = 0.7
    dicom_fraction: float = 0.15
    ineligible_fraction: float = 0.08
    # True: n_patients counts the eligible patients, and each institution's ineligible
    # ones come on top (the paper reports its cohorts after exclusion).
    eligible_counts: bool = False


PRESETS = {
    # Tests: a handful of small patients, seconds to generate.
    "tiny": Preset("tiny", {"A": 9, "B": 5}, 128, (50.0, 62.0), reader2_fraction=0.5),
    # Default input: validation cohorts that can speak (internal: 16 eligible patients, 7 of
    # them with DM, at the paper's 0.821 training share of institution A; external: 26, 13
    # with DM; with 8 internal patients a true model's C-index ranged 0.41-1.00), and
    # per-patient work kept small (tumours smaller than most RPS: radiomics and ITH cost
    # grow with the tumour's volume and area). Counts are eligible patients; 10% ineligible
    # come on top. docs/benchmarks.md gives the run's time.
    "demo": Preset("demo", {"A": 84, "B": 26}, 224, (40.0, 90.0), ineligible_fraction=0.1, eligible_counts=True),
    # Benchmarks: the paper's cohort sizes after exclusion (173 at the internal institution,
    # 101 external) and its matrix.
    "paper": Preset("paper", {"A": 173, "B": 101}, 512, (50.0, 200.0), reader2_fraction=0.22,
                    eligible_counts=True),
}

# Habitat tissue classes: venous-phase mean HU range, structure SD (HU) and the scale of
# its fine part (mm; a coarser part at 6 mm comes with it). Pixel noise comes on top.
TISSUES = {
    "solid": dict(hu=(60.0, 110.0), sd=10.0, grain=1.5),  # enhancing solid sarcoma
    "necrotic": dict(hu=(0.0, 20.0), sd=4.0, grain=2.0),  # necrosis / cystic change
    "fat": dict(hu=(-110.0, -90.0), sd=7.0, grain=1.5),  # well-differentiated fat
    "myxoid": dict(hu=(20.0, 40.0), sd=6.0, grain=2.5),  # myxoid matrix
    "calcification": dict(hu=(250.0, 700.0), sd=60.0, grain=0.6),
}
HISTOLOGIES = ("RLPS", "RLMS")
T_STAGE_LIMITS_MM = (50.0, 100.0, 150.0)  # AJCC 8th ed. retroperitoneum: T1 <= 5 cm ...
# Appendix 2 semantic features and their categories (reader ratings are drawn from these).
SEMANTIC_FEATURES = {
    "tumor_number": [1, 2, 3],
    "tumor_shape": [0, 1],
    "necrosis": [0, 1],
    "enhancement_pattern": [0, 1],
    "enhancement_degree": [1, 2, 3],
    "adipose_tissue": [0, 1],
    "calcification": [0, 1],
    "adjacent_organ_involvement": [0, 1],
    "adjacent_involvement_type": [0, 1, 2],
}
INELIGIBILITY_REASONS = (
    "histology", "margin", "ct_interval", "image_quality", "incomplete",
    "prior_malignancy", "prior_therapy", "early_death",
)


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


# --------------------------------------------------------------------------- specs


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


# --------------------------------------------------------------------------- rendering


def gaussian_field(rng: np.random.Generator, shape, spacing_zyx, sigma_mm: float) -> np.ndarray:
    """Unit-SD stationary Gaussian random field: white noise smoothed by a Gaussian of
    ``sigma_mm``, by spectral synthesis on the full grid (FFT).

    Nothing is interpolated from a coarser grid, so no grid shows in the field. It is
    periodic over the array, which the margin around the tumour hides.
    """
    from scipy import fft

    full = [fft.next_fast_len(int(n), real=True) for n in shape]  # fast FFT sizes, cropped after
    white = rng.standard_normal(full, dtype=np.float32)
    spectrum = fft.rfftn(white)
    sigma_px = [sigma_mm / sp for sp in spacing_zyx]
    spectrum = ndimage.fourier_gaussian(spectrum, sigma=sigma_px, n=full[-1])
    out = fft.irfftn(spectrum, s=full)[tuple(slice(0, n) for n in shape)].astype(np.float32)
    out -= out.mean()
    sd = float(out.std())
    return out / (sd if sd > 0 else 1.0)


def _multiscale_field(rng, shape, spacing_zyx, sigmas_mm, weights) -> np.ndarray:
    """Unit-SD sum of fields at several scales: tissue varies at large scales as much as
    at small ones (real organs do)."""
    w = np.asarray(weights, dtype=np.float64)
    out = sum(float(wi) * gaussian_field(rng, shape, spacing_zyx, s) for s, wi in zip(sigmas_mm, w))
    return out / float(np.sqrt((w ** 2).sum()))


def _ellipse(xx, yy, cx, cy, ax, ay) -> np.ndarray:
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


@dataclass
class PatientImages:
    venous: sitk.Image
    mask: sitk.Image
    plain: sitk.Image | None
    mask_reader2: sitk.Image | None
    habitat_map: np.ndarray  # (z, y, x) habitat index + 1 inside the tumour, 0 outside
    mask_reader1_repeat: sitk.Image | None = None
    organs: dict = field(default_factory=dict)  # name -> (z, y, x) bool, as drawn (for tests)


def _habitat_labels(rng, spec: PatientSpec, shape, spacing_zyx, rn: np.ndarray) -> np.ndarray:
    """Index into ``spec.habitats`` for every voxel of the tumour box.

    Each tissue competes through its own random field (the highest wins), weighted by its
    share. A coherent tumour (low true heterogeneity) holds its tissues in a few large
    compartments, necrosis central; a heterogeneous one mixes them in a disordered
    patchwork at every scale down to ``fragment_scale_mm``.
    """
    h = spec.true_heterogeneity
    fine = np.sqrt(np.clip(h, 0.0, 1.0))  # share of the fine scale in each field
    fields, keys = [], []
    for k, tissue in enumerate(spec.habitats):
        if tissue == "calcification":
            continue
        f = (np.sqrt(1.0 - fine ** 2) * gaussian_field(rng, shape, spacing_zyx, COMPARTMENT_SCALE_MM)
             + fine * gaussian_field(rng, shape, spacing_zyx, spec.fragment_scale_mm))
        if tissue == "necrotic":  # ischaemic core: central in coherent tumours
            f = f + 2.5 * (1.0 - h) * (0.6 - rn)
        fields.append(f + 0.9 * np.log(spec.habitat_weights[k]))
        keys.append(k)
    labels = np.asarray(keys)[np.argmax(np.stack(fields), axis=0)]
    if "calcification" in spec.habitats:  # punctate foci
        spots = gaussian_field(rng, shape, spacing_zyx, 1.0) > 2.6
        labels[spots] = spec.habitats.index("calcification")
    return labels


@dataclass
class _Grid:
    """The patient's voxel grid: (z, y, x) coordinates in mm, the in-plane meshgrid."""
    n: int
    nz: int
    s: float
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    yy: np.ndarray
    xx: np.ndarray

    @property
    def spacing(self):
        return (SLICE_THICKNESS_MM, self.s, self.s)

    @classmethod
    def of(cls, spec: PatientSpec) -> "_Grid":
        n, nz, s = spec.matrix, spec.n_slices, spec.spacing_xy
        x = (np.arange(n) - (n - 1) / 2.0) * s + spec.fov_centre_mm[0]
        y = (np.arange(n) - (n - 1) / 2.0) * s + spec.fov_centre_mm[1]
        z = (np.arange(nz) - (nz - 1) / 2.0) * SLICE_THICKNESS_MM
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return cls(n, nz, s, x, y, z, yy, xx)


@dataclass
class _Anatomy:
    """Both phases' HU, each voxel's organ-structure SD and organ, as painted so far."""
    venous: np.ndarray
    plain: np.ndarray
    sd_map: np.ndarray
    organ_id: np.ndarray
    organ_names: list
    inner: np.ndarray  # the abdominal cavity in-plane: the tumour stays inside it

    def paint(self, name, mask2d, zsel, v_hu, p_hu, sd=0.0):
        m = np.zeros(self.venous.shape, dtype=bool)
        m[zsel] = mask2d
        self.venous[m] = v_hu
        self.plain[m] = p_hu
        self.sd_map[m] = sd
        if name not in self.organ_names:
            self.organ_names.append(name)
        self.organ_id[m] = self.organ_names.index(name) + 1


def _paint_anatomy(rng, spec: PatientSpec, g: _Grid) -> _Anatomy:
    """Slice-invariant in-plane layout, organs spanning z ranges."""
    shape = (g.nz, g.n, g.n)
    xx, yy, z = g.xx, g.yy, g.z
    a, b = spec.body_axes_mm
    anat = _Anatomy(np.full(shape, -1000.0, dtype=np.float32), np.full(shape, -1000.0, dtype=np.float32),
                    np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.uint8), [], None)
    paint = anat.paint
    allz = slice(0, g.nz)
    subq = rng.uniform(12.0, 30.0)
    body = _ellipse(xx, yy, 0, 0, a, b)
    paint("subcutaneous_fat", body, allz, -100.0, -100.0, 10.0)
    paint("muscle_wall", _ellipse(xx, yy, 0, 0, a - subq, b - subq), allz, 55.0, 50.0, 12.0)
    inner = _ellipse(xx, yy, 0, 0, a - subq - 10.0, b - subq - 10.0)
    anat.inner = inner
    paint("visceral_fat", inner, allz, -95.0, -95.0, 10.0)
    spine_y = b * 0.55
    paint("bone", _ellipse(xx, yy, 0, spine_y, 20, 18), allz, 650.0, 650.0, 40.0)  # vertebral cortex
    paint("bone", _ellipse(xx, yy, 0, spine_y, 16, 14), allz, 230.0, 230.0, 35.0)  # cancellous bone
    for side in (-1, 1):
        paint("psoas", _ellipse(xx, yy, side * 38, spine_y - 2, 17, 14), allz, 55.0, 50.0, 12.0)
        kz = rng.uniform(-30, 30)
        ksel = (np.abs(z - kz) < 55)
        paint("kidney", _ellipse(xx, yy, side * 72, spine_y - 15, 30, 22), ksel, 165.0, 32.0, 14.0)
        paint("renal_pelvis", _ellipse(xx, yy, side * 70, spine_y - 15, 12, 9), ksel, 10.0, 8.0, 4.0)
    paint("aorta", _ellipse(xx, yy, 12, spine_y - 30, 11, 11), allz, 155.0, 42.0, 6.0)
    paint("ivc", _ellipse(xx, yy, -24, spine_y - 28, 14, 10), allz, 140.0, 40.0, 6.0)
    upper = z > rng.uniform(-10, 40)
    paint("liver", inner & (xx < -a * 0.2) & (yy < b * 0.3), upper, 110.0, 55.0, 13.0)
    paint("spleen", _ellipse(xx, yy, a * 0.55, b * 0.3, 30, 45) & inner, upper, 120.0, 48.0, 12.0)
    for _ in range(int(rng.integers(6, 12))):  # bowel loops in the anterior abdomen
        bx, by = rng.uniform(-0.6 * a, 0.6 * a), rng.uniform(-0.7 * b, 0.0)
        r = rng.uniform(10, 22)
        z0 = rng.uniform(z.min(), z.max())
        zsel = np.abs(z - z0) < rng.uniform(15, 60)
        paint("bowel_wall", _ellipse(xx, yy, bx, by, r, r * 0.8) & inner, zsel, 60.0, 40.0, 8.0)
        content = rng.choice([-900.0, 10.0, 25.0])
        paint("bowel_content", _ellipse(xx, yy, bx, by, r - 3, r * 0.8 - 3) & inner, zsel, content, content, 5.0)
    return anat


def _tumour_shape(rng, spec: PatientSpec, g: _Grid, inner: np.ndarray):
    """A lobulated ellipsoid inside the abdomen: its bounding box (slices), the tumour in
    the box, and each box voxel's normalised radius."""
    s = g.s
    cx, cy, cz = spec.tumour_centre_mm
    rx, ry, rz = spec.tumour_radii_mm
    zsel = np.abs(g.z - cz) <= rz * 1.3 + SLICE_THICKNESS_MM
    ysel = np.abs(g.y - cy) <= ry * 1.3 + 2 * s
    xsel = np.abs(g.x - cx) <= rx * 1.3 + 2 * s
    zi, yi, xi = np.flatnonzero(zsel), np.flatnonzero(ysel), np.flatnonzero(xsel)
    box = (slice(zi[0], zi[-1] + 1), slice(yi[0], yi[-1] + 1), slice(xi[0], xi[-1] + 1))
    Z, Y, X = np.meshgrid(g.z[box[0]], g.y[box[1]], g.x[box[2]], indexing="ij")
    dz, dy, dx = (Z - cz) / rz, (Y - cy) / ry, (X - cx) / rx
    rn = np.sqrt(dx ** 2 + dy ** 2 + dz ** 2) + 1e-9
    lob = np.zeros_like(rn)
    for _ in range(6):  # smooth radial modulation: lobules
        w = rng.normal(size=3)
        w *= rng.uniform(2.0, 4.5) / np.linalg.norm(w)
        lob += np.cos((w[0] * dx + w[1] * dy + w[2] * dz) / rn + rng.uniform(0, 2 * np.pi))
    lob /= np.sqrt(6 / 2)
    tum_box = (rn <= 1.0 + spec.lobulation * lob * 0.5) & inner[box[1], box[2]][None]
    return box, tum_box, rn


def _paint_habitats(rng, spec: PatientSpec, g: _Grid, anat: _Anatomy, box, tum_box, rn) -> np.ndarray:
    """Distinct tissues arranged as the true heterogeneity says, each with its own HU (both
    phases) and texture; returns the habitat map (habitat index + 1, 0 outside)."""
    shape = tum_box.shape
    lab_box = _habitat_labels(rng, spec, shape, g.spacing, rn)
    hab = np.zeros((g.nz, g.n, g.n), dtype=np.int16)
    hab[box] = np.where(tum_box, lab_box + 1, 0)
    anat.organ_id[hab > 0] = 0
    for k, t in enumerate(spec.habitats):
        m = hab == k + 1
        if not m.any():
            continue
        hu = spec.habitat_hu[k]
        anat.venous[m] = hu
        if t == "solid":
            p = max(hu - spec.enhancement_hu, 25.0)
        elif t == "myxoid":
            p = hu - 0.3 * spec.enhancement_hu
        elif t == "necrotic":
            p = hu - 2.0
        else:
            p = hu
        anat.plain[m] = p
        anat.sd_map[m] = 0.0
    # Habitat texture: each tissue its own structure at large and fine scales, so local
    # texture features differ between habitats as well as their mean HU.
    tex = np.zeros(shape, dtype=np.float32)
    for k, t in enumerate(spec.habitats):
        mk = (lab_box == k) & tum_box
        if mk.any():
            tissue = TISSUES[t]
            field_k = _multiscale_field(rng, shape, g.spacing, (tissue["grain"], 6.0), (1.0, 1.0))
            tex[mk] = field_k[mk] * tissue["sd"]
    anat.venous[box] += tex
    anat.plain[box] += tex
    return hab


def _scan(rng, spec: PatientSpec, g: _Grid, anat: _Anatomy) -> list:
    """Organ structure and scanner physics, independent noise for the two phases: both
    phases as int16 HU."""
    prof = SCANNERS[spec.institution]
    scanner_offset = (prof.scanners.index(spec.scanner) - 1) * 3.0
    org_tex = _multiscale_field(rng, anat.venous.shape, g.spacing, (1.5, 5.0, 15.0), (0.5, 0.8, 1.0)) * anat.sd_map
    out = []
    for img in (anat.venous, anat.plain):
        img = img + org_tex
        img = ndimage.gaussian_filter(img, sigma=(0.0, prof.psf_px, prof.psf_px))  # scanner PSF
        img = img + (prof.iodine_gain - 1.0) * np.clip(img, -150.0, 400.0) + prof.hu_offset + scanner_offset
        noise = ndimage.gaussian_filter(rng.standard_normal(img.shape, dtype=np.float32),
                                        sigma=(0.0, prof.noise_corr_px, prof.noise_corr_px))
        img = img + noise / noise.std() * prof.noise_sd
        out.append(np.clip(np.round(img), -1024, 3071).astype(np.int16))
    return out


def _redelineations(rng, spec: PatientSpec, g: _Grid, box, tum_box, inner):
    """Reader 2's mask, the boundary moved by up to ~1.5 mm, smoothly, as a second reader
    draws it; and reader 1's again weeks later (Appendix 3), the same hand moving it less
    (~0.6 mm), from its own seed so no other draw of the patient moves."""
    sp, shape, full = g.spacing, tum_box.shape, (g.nz, g.n, g.n)
    inside = ndimage.distance_transform_edt(tum_box, sampling=sp)
    outside = ndimage.distance_transform_edt(~tum_box, sampling=sp)
    sdist = inside - outside
    m2 = (sdist + 1.5 * gaussian_field(rng, shape, sp, 6.0)) > 0
    mask2 = np.zeros(full, dtype=np.uint8)
    mask2[box] = m2 & inner[box[1], box[2]][None]
    m1r = (sdist + 0.6 * gaussian_field(np.random.default_rng(spec.seed ^ 0x4E9EA7), shape, sp, 8.0)) > 0
    mask1r = np.zeros(full, dtype=np.uint8)
    mask1r[box] = m1r & inner[box[1], box[2]][None]
    return mask2, mask1r


def render_patient(spec: PatientSpec) -> PatientImages:
    """Render the venous-phase CT, plain CT, masks and the true habitat map."""
    rng = np.random.default_rng(spec.seed)
    g = _Grid.of(spec)
    anat = _paint_anatomy(rng, spec, g)
    box, tum_box, rn = _tumour_shape(rng, spec, g, anat.inner)
    tumour = np.zeros((g.nz, g.n, g.n), dtype=bool)
    tumour[box] = tum_box
    hab = _paint_habitats(rng, spec, g, anat, box, tum_box, rn)
    venous_a, plain_a = _scan(rng, spec, g, anat)
    mask2 = mask1r = None
    if spec.has_reader2:
        mask2, mask1r = _redelineations(rng, spec, g, box, tum_box, anat.inner)

    def to_image(arr):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((g.s, g.s, SLICE_THICKNESS_MM))
        img.SetOrigin((float(g.x[0]), float(g.y[0]), float(g.z[0]) + 100.0))
        return img

    return PatientImages(
        venous=to_image(venous_a),
        mask=to_image(tumour.astype(np.uint8)),
        plain=to_image(plain_a) if spec.has_plain_ct else None,
        mask_reader2=to_image(mask2) if mask2 is not None else None,
        mask_reader1_repeat=to_image(mask1r) if mask1r is not None else None,
        habitat_map=hab,
        organs={name: anat.organ_id == i + 1 for i, name in enumerate(anat.organ_names)},
    )


SOFT_TISSUE = ("liver", "spleen", "psoas", "muscle_wall", "kidney")


def organ_noise(images: PatientImages, organs=SOFT_TISSUE, min_voxels: int = 500) -> dict:
    """Noise of the rendered venous phase in homogeneous soft tissue, as measured on real CT.

    Per organ drawn (eroded by 3 in-plane pixels, so no edge counts; at least
    ``min_voxels`` left): the SD of the residual after a 3 x 3 in-plane median (the
    pixel-scale noise) and the overall HU SD (noise plus the organ's large-scale
    structure). Returns {organ: (residual SD, overall SD)} in HU.
    """
    v = sitk.GetArrayFromImage(images.venous).astype(np.float64)
    resid = v - ndimage.median_filter(v, size=(1, 3, 3))
    out = {}
    for name in organs:
        if name not in images.organs:
            continue
        core = ndimage.binary_erosion(images.organs[name], structure=np.ones((1, 3, 3)), iterations=3)
        if core.sum() >= min_voxels:
            out[name] = (float(resid[core].std()), float(v[core].std()))
    return out


# --------------------------------------------------------------------------- writing


def _uid(*parts) -> str:
    """A deterministic DICOM UID under the 2.25 (UUID-derived) root."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def acquisition_header(spec: PatientSpec, contrast: bool = True) -> dict:
    """The Table S1 fields of the patient's series (DICOM keywords); ``contrast=False``
    for the plain phase. Pitch is drawn from the patient's own seed, so no other draw of
    the cohort moves."""
    protocol = PROTOCOLS[spec.institution]
    maker, model, single, total, kernel = SCANNER_HEADERS[spec.scanner]
    pitch = protocol["pitches"][int(np.random.default_rng(spec.seed ^ 0xAC0).integers(len(protocol["pitches"])))]
    header = {"Manufacturer": maker, "ManufacturerModelName": model, "KVP": protocol["KVP"],
              "ExposureModulationType": "XYZ_EC", "SingleCollimationWidth": single, "TotalCollimationWidth": total,
              "SpiralPitchFactor": pitch, "ConvolutionKernel": kernel}
    if contrast:
        header["ContrastBolusAgent"] = protocol["ContrastBolusAgent"]
    return header


def write_dicom_series(image: sitk.Image, folder: str | Path, series_uid: str, study_uid: str,
                       patient_id: str, description: str, series_number: int = 1,
                       header: dict | None = None) -> None:
    """Write an int16 HU volume as a CT DICOM series, one file per slice; ``header``: more
    elements by keyword (the acquisition settings).

    Stored as unsigned values with RescaleIntercept -1024, as many scanners do. pydicom
    rather than GDCM writes it, since GDCM stamps the current time into every file.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayFromImage(image)
    sx, sy, sz = image.GetSpacing()
    d = image.GetDirection()  # row-major; column j is index axis j in patient space
    orientation = [f"{v:g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])]
    for k in range(arr.shape[0]):
        sop_uid = f"{series_uid}.{k + 1}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = "2.25.1"
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = study_uid + ".1"
        ds.PatientID = patient_id
        ds.PatientName = patient_id
        ds.Modality = "CT"
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]
        ds.SliceThickness = f"{sz:.3f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.PixelData = (arr[k].astype(np.int32) + 1024).clip(0, 65535).astype("<u2").tobytes()
        for keyword, value in (header or {}).items():
            setattr(ds, keyword, value)
        ds.save_as(folder / f"{description}_{k + 1:04d}.dcm", enforce_file_format=True)


_EXT = {"nifti": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha"}


def _write_volume(image: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _stored_mask(mask: sitk.Image, storage: str) -> sitk.Image:
    """The same physical grid stored another way, as other tools write masks."""
    if storage == "flipped":
        return sitk.Flip(mask, [True, False, False])
    if storage == "permuted":
        return sitk.PermuteAxes(mask, [1, 0, 2])
    return mask


def write_patient(spec: PatientSpec, images: PatientImages, root: str | Path,
                  image_format: str | None = None) -> dict:
    """Write one patient's files under root/<patient_id>/; return its sample-sheet row."""
    root = Path(root)
    fmt = image_format or spec.image_format
    pdir = root / spec.patient_id
    row = {"patient_id": spec.patient_id, "institution": spec.institution, "scanner": spec.scanner,
           "cohort": "", "image": "", "image_series_uid": "", "mask": "", "mask_reader2": "",
           "mask_reader1_repeat": "",
           "plain_ct": "", "plain_ct_series_uid": ""}
    if fmt == "dicom":
        study = _uid("study", spec.seed)
        venous_uid = _uid("venous", spec.seed)
        folder = pdir / "dicom"
        write_dicom_series(images.venous, folder, venous_uid, study, spec.patient_id, "venous", 3,
                           acquisition_header(spec))
        row["image"] = str(folder.relative_to(root))
        row["image_series_uid"] = venous_uid
        if images.plain is not None:  # both phases in one folder, as exported from PACS
            plain_uid = _uid("plain", spec.seed)
            write_dicom_series(images.plain, folder, plain_uid, study, spec.patient_id, "plain", 2,
                               acquisition_header(spec, contrast=False))
            row["plain_ct"] = row["image"]
            row["plain_ct_series_uid"] = plain_uid
    else:
        ext = _EXT[fmt]
        _write_volume(images.venous, pdir / f"venous{ext}")
        row["image"] = f"{spec.patient_id}/venous{ext}"
        if images.plain is not None:
            _write_volume(images.plain, pdir / f"plain{ext}")
            row["plain_ct"] = f"{spec.patient_id}/plain{ext}"
    _write_volume(_stored_mask(images.mask, spec.mask_storage), pdir / "seg_reader1.nii.gz")
    row["mask"] = f"{spec.patient_id}/seg_reader1.nii.gz"
    if images.mask_reader2 is not None:
        _write_volume(images.mask_reader2, pdir / "seg_reader2.nii.gz")
        row["mask_reader2"] = f"{spec.patient_id}/seg_reader2.nii.gz"
    if images.mask_reader1_repeat is not None:
        _write_volume(images.mask_reader1_repeat, pdir / "seg_reader1_repeat.nii.gz")
        row["mask_reader1_repeat"] = f"{spec.patient_id}/seg_reader1_repeat.nii.gz"
    return row


def truth_table(specs: list[PatientSpec]) -> pd.DataFrame:
    """Ground truth for tests and sanity checks; no pipeline stage reads it."""
    rows = []
    for s in specs:
        rows.append({
            "patient_id": s.patient_id, "true_heterogeneity": round(s.true_heterogeneity, 6),
            "n_habitats": len(s.habitats), "habitats": ",".join(s.habitats),
            "fragment_scale_mm": round(s.fragment_scale_mm, 4),
            "tumour_diameter_mm": round(s.tumour_diameter_mm, 3),
            "enhancement_hu": round(s.enhancement_hu, 3), "spacing_xy": s.spacing_xy,
            "image_format": s.image_format, "mask_storage": s.mask_storage,
            "ineligible_reason": s.ineligible_reason,
            "linear_predictor": round(s.extra["linear_predictor"], 6),
        })
    return pd.DataFrame(rows)


def _render_and_write(spec: PatientSpec, root: Path) -> dict:
    return write_patient(spec, render_patient(spec), root)


def write_cohort(out_dir: str | Path, preset: str = "demo", seed: int = 20240601,
                 n_patients: dict | None = None, progress=None, n_jobs: int = 1) -> Path:
    """Generate the cohort into out_dir; return the sample sheet path.

    Written into a temporary sibling folder and renamed at the end, so an interrupted
    run never leaves a half-written cohort that looks complete. Each patient is drawn
    from its own seed, so ``n_jobs`` worker processes write the same bytes as one.
    """
    out_dir = Path(out_dir)
    specs, clinical = simulate_cohort(preset, seed, n_patients)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if n_jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the caller may be a threaded process (Snakemake parses the workflow in one).
        with ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_render_and_write, spec, tmp) for spec in specs]
            rows = []
            for i, (spec, fut) in enumerate(zip(specs, futures)):
                rows.append(fut.result())
                if progress:
                    progress(i + 1, len(specs), spec.patient_id)
    else:
        rows = []
        for i, spec in enumerate(specs):
            rows.append(_render_and_write(spec, tmp))
            if progress:
                progress(i + 1, len(specs), spec.patient_id)
    write_tsv(pd.DataFrame(rows), tmp / "samples.tsv")
    write_tsv(clinical, tmp / "clinical.tsv")
    write_tsv(truth_table(specs), tmp / "truth.tsv")
    (tmp / "README.md").write_text(
        f"# Synthetic ctith demo cohort\n\nPreset `{preset}`, seed {seed}; made by `ctith demo`.\n"
        "Synthetic phantoms, not patient data. `truth.tsv` holds the generator's ground truth\n"
        "(true heterogeneity, habitats); no pipeline stage reads it.\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir / "samples.tsv"
