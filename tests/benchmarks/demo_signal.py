"""How much of the demo's planted heterogeneity the ITH score carries, per variant.

For the published method (the default) and each noise-robust variant of the `ith:`
config section, on the eligible patients of the demo cohort (rendered in memory from the
config's preset and seed, the largest tumour slice of each):

- per K: Spearman rho of the ITH score with the true heterogeneity and with the tumour
  diameter, and the score's univariate AUC for distant metastasis;
- the scores of the homogeneous organs of the real CT in tests/data/real_ct, where a
  low score is expected;
- the pixel-scale noise (residual SD after a 3 x 3 in-plane median) and the overall HU
  SD of the rendered soft-tissue organs, per institution.

It also draws results/figures/demo_heterogeneity.png: four demo tumours from low to high
true heterogeneity, each with its true habitats and its K = 2-5 maps and scores under
the default and the best variant.

    python tests/benchmarks/demo_signal.py [--jobs 2] [--variants default,edge_0.06d_30hu]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import SimpleITK as sitk
import yaml
from scipy import stats
from sklearn.metrics import roc_auc_score

from ctith.demo import figure as demo_figure
from ctith.demo.patients import PatientSpec, simulate_cohort
from ctith.demo.render import organ_noise, render_patient, SOFT_TISSUE
from ctith.demo.synthetic import truth_table
from ctith.cohort import ingest
from ctith.ith import habitats as ith
from ctith.demo.figure import largest_slice_input, pick_patients

REPO = Path(__file__).resolve().parents[2]
REAL_CT = REPO / "tests" / "data" / "real_ct"
CLUSTERS = (2, 3, 4, 5)
ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "iliopsoas_left")
# name -> the `ith:` keys it sets (every other key as in config.yaml)
VARIANTS = {
    "default": {},
    "gauss_5mm": {"feature_smoothing_mm": 5.0},
    "gauss_0.08d": {"feature_smoothing_fraction": 0.08},
    "edge_0.06d_30hu": {"feature_smoothing_fraction": 0.06, "feature_smoothing_edge_hu": 30.0},
    "edge_0.08d_30hu": {"feature_smoothing_fraction": 0.08, "feature_smoothing_edge_hu": 30.0},
    "edge_0.06d_30hu+pca_0.95": {"feature_smoothing_fraction": 0.06, "feature_smoothing_edge_hu": 30.0,
                                 "pca_components": 0.95},
}
BEST = "edge_0.06d_30hu"


def params_of(config: dict, variant: dict) -> ith.ITHParams:
    c = {**config["ith"], **variant}
    return ith.ITHParams(window=c["window"], padding=c["padding"], border=c["border"], bin_width=c["bin_width"],
                         feature_classes=tuple(c["feature_classes"]), clusters=CLUSTERS, n_init=c["n_init"],
                         min_region_pixels=c["min_region_pixels"], connectivity=c["connectivity"],
                         on_small_tumour="nan", seed=config["seed"],
                         feature_smoothing_mm=c.get("feature_smoothing_mm"),
                         feature_smoothing_fraction=c.get("feature_smoothing_fraction"),
                         feature_smoothing_edge_hu=c.get("feature_smoothing_edge_hu"),
                         pca_components=c.get("pca_components"))


def score_patient(spec: PatientSpec, config: dict, variants: dict) -> dict:
    images = render_patient(spec)
    venous, mask, spacing = largest_slice_input(images)
    row = {"patient_id": spec.patient_id, "institution": spec.institution}
    for organ, (resid, overall) in organ_noise(images).items():
        row[f"noise:{organ}"], row[f"sd:{organ}"] = resid, overall
    for name, variant in variants.items():
        t = time.perf_counter()
        res = ith.run_ith(venous, mask, 0, params_of(config, variant), spec.patient_id, spacing=spacing)
        row[f"{name}:seconds"] = time.perf_counter() - t
        for k in CLUSTERS:
            row[f"{name}:k{k}"] = res.scores[k]
    return row


def signal_table(scores: pd.DataFrame, truth: pd.DataFrame, clinical: pd.DataFrame, variants) -> pd.DataFrame:
    h = truth.loc[scores.index, "true_heterogeneity"]
    size = truth.loc[scores.index, "tumour_diameter_mm"]
    dm = clinical.loc[scores.index, "dm_event"].astype(int)
    rows = []
    for name in variants:
        for k in CLUSTERS:
            s = scores[f"{name}:k{k}"]
            ok = s.notna()
            rows.append({"variant": name, "K": k, "rho_true_heterogeneity": stats.spearmanr(s[ok], h[ok]).statistic,
                         "rho_tumour_size": stats.spearmanr(s[ok], size[ok]).statistic,
                         "auc_dm": roc_auc_score(dm[ok], s[ok]), "mean_score": s.mean(),
                         "median_seconds": scores[f"{name}:seconds"].median()})
    rows.append({"variant": "(true heterogeneity)", "K": "-", "rho_true_heterogeneity": 1.0,
                 "rho_tumour_size": stats.spearmanr(h, size).statistic, "auc_dm": roc_auc_score(dm, h)})
    return pd.DataFrame(rows)


def real_ct_scores(config: dict, variants: dict) -> pd.DataFrame | None:
    root = REAL_CT
    if not root.is_dir():
        print(f"(real CT not found at {root})")
        return None
    rows = []
    for organ in ORGANS:
        res = ingest.ingest(root / "abdomen_ct.nii.gz", root / "masks" / f"{organ}.nii.gz", organ)
        img, msk = sitk.GetArrayFromImage(res.image), sitk.GetArrayFromImage(res.mask)
        axis = res.qc["axial_axis"]
        spacing = [s for i, s in enumerate(res.image.GetSpacing()[::-1]) if i != axis]
        for name, variant in variants.items():
            out = ith.run_ith(img, msk, axis, params_of(config, variant), organ, spacing=spacing)
            rows.append({"organ": organ, "variant": name, **{f"K{k}": out.scores[k] for k in CLUSTERS}})
    return pd.DataFrame(rows)


def heterogeneity_figure(specs, truth, config, variants, out: Path) -> list[str]:
    """The README's and docs/ith.md's figure: the package's demo figure, the published method beside BEST."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = pick_patients(truth)
    published = params_of(config, variants["default"])
    variant = params_of(config, variants[BEST])
    fig = demo_figure.heterogeneity_figure(specs, picks, published, variant,
                                           demo_figure.variant_label(VARIANTS[BEST]))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return picks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of: " + ", ".join(VARIANTS))
    ap.add_argument("--limit", type=int, help="first N eligible patients only (a quick look)")
    ap.add_argument("--figure", default=str(REPO / "results/figures/demo_heterogeneity.png"))
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    variants = {name: VARIANTS[name] for name in args.variants.split(",")}
    d = config["demo"]
    specs, clinical = simulate_cohort(d["preset"], d["seed"])
    clinical = clinical.set_index("patient_id")
    # The patients the generator made eligible (those config.yaml's criteria keep).
    specs = [s for s in specs if not s.ineligible_reason][: args.limit]
    truth = truth_table(specs).set_index("patient_id")
    print(f"demo preset '{d['preset']}', seed {d['seed']}: {len(specs)} eligible patients, K = {list(CLUSTERS)}")

    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(score_patient, specs, [config] * len(specs), [variants] * len(specs)))
    scores = pd.DataFrame(rows).set_index("patient_id")
    print(f"scored in {time.perf_counter() - t0:.0f} s\n")
    pd.set_option("display.width", 200)
    table = signal_table(scores, truth, clinical, variants)
    print("ITH score against the planted heterogeneity, size and outcome:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    print("\nPixel noise (residual SD after a 3 x 3 in-plane median) and overall SD of the rendered "
          "soft-tissue organs, HU, mean over patients:")
    noise = []
    for inst, grp in scores.groupby("institution"):
        for organ in SOFT_TISSUE:
            if f"noise:{organ}" in grp and grp[f"noise:{organ}"].notna().any():
                noise.append({"institution": inst, "organ": organ, "patients": int(grp[f"noise:{organ}"].notna().sum()),
                              "noise_sd": grp[f"noise:{organ}"].mean(), "overall_sd": grp[f"sd:{organ}"].mean()})
    print(pd.DataFrame(noise).to_string(index=False, float_format=lambda v: f"{v:.1f}"))

    real = real_ct_scores(config, variants)
    if real is not None:
        print("\nHomogeneous organs of the real CT (3 mm pixels), where a low score is expected:")
        print(real.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not args.no_figure and "default" in variants and BEST in variants:
        picks = heterogeneity_figure(specs, truth, config, variants, Path(args.figure))
        print(f"\nfigure: {args.figure} ({', '.join(picks)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
