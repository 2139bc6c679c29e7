"""The demo's fixed choices: cohort presets (tiny, demo, paper), each institution's scanner
profile and protocol (Table S1), the habitat tissues, the semantic features' categories,
the outcome's follow-up and the reasons a patient is ineligible.
"""

from __future__ import annotations

from dataclasses import dataclass


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
