"""Whole-tumour habitats (``ith.slices: all``) against the published largest slice, on a
finished demo run.

For every eligible demo patient, from the workflow's ingested image and mask
(``results/patients/{id}/``) and the config's ``ith:`` section, both modes run here in one
process pool: the largest slice (the paper; 8-connected regions) and every tumour slice
(one k-means per K over all voxels; the score over 26- and over 6-connected regions, from
the same habitats). Prints, per K, Spearman rho of each score with the generator's true
heterogeneity (``results/demo/truth.tsv``) and with the tumour's diameter, and the seconds
per patient of each mode (features and k-means apart for the whole tumour).

    python tests/benchmarks/bench_ith_volume.py --results results [--jobs 2] [--out ith_volume.tsv]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
import SimpleITK as sitk
import yaml
from scipy import stats

from ctith.ith import habitats as ith
from ctith.ith.score import ith_score
from ctith.cohort.geometry import axial_axis

REPO = Path(__file__).resolve().parents[2]


def one_patient(args) -> dict:
    pid, folder, params = args
    image = sitk.ReadImage(str(folder / "image.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask.nii.gz"))
    axis = axial_axis(image)
    spacing = [s for i, s in enumerate(image.GetSpacing()[::-1]) if i != axis]
    img, msk = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask)
    row = {"patient_id": pid}
    t = time.perf_counter()
    flat = ith.run_ith(img, msk, axis, replace(params, slices="largest"), pid, spacing=spacing)
    row["largest_s"] = time.perf_counter() - t
    t = time.perf_counter()
    vol, vmask, info = ith.tumour_volume(img, msk, axis, params.padding, params.border)
    ith.volume_features(vol, vmask, params.window, params.bin_width, params.feature_classes, params.border)
    row["all_features_s"] = time.perf_counter() - t
    t = time.perf_counter()
    whole = ith.run_ith(img, msk, axis, replace(params, slices="all", connectivity_3d=26), pid, spacing=spacing)
    row["all_s"] = time.perf_counter() - t
    row.update(tumour_pixels=flat.info["tumour_pixels"], tumour_voxels=whole.info["tumour_voxels"],
               tumour_slices=whole.info["tumour_slices"])
    for k in params.clusters:
        row[f"largest_k{k}"] = flat.scores[k]
        row[f"all26_k{k}"] = whole.scores[k]
        row[f"all6_k{k}"] = (ith_score(whole.volumes[k], params.min_region_pixels, 6)
                             if k in whole.volumes else float("nan"))
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="the demo run's results/ folder")
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, help="the first N eligible patients only (a quick look)")
    ap.add_argument("--out", help="per-patient scores and times (TSV)")
    args = ap.parse_args(argv)
    results = Path(args.results)
    config = yaml.safe_load(Path(args.config).read_text())
    params = ith.ITHParams.from_config(config["ith"], config["seed"], on_small_tumour="nan")
    truth = pd.read_csv(results / "demo" / "truth.tsv", sep="\t").set_index("patient_id")
    ids = pd.read_csv(results / "cohort" / "eligible.tsv", sep="\t")["patient_id"].tolist()[:args.limit]
    todo = [(pid, results / "patients" / pid, params) for pid in ids]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        table = pd.DataFrame(list(pool.map(one_patient, todo))).set_index("patient_id")
    wall = time.perf_counter() - t0
    if args.out:
        table.to_csv(args.out, sep="\t")
    h = truth.loc[table.index, "true_heterogeneity"]
    d = truth.loc[table.index, "tumour_diameter_mm"]
    print(f"{len(table)} demo patients, {args.jobs} processes, {wall / 60:.1f} min; "
          f"params as config.yaml's ith: section (n_init {params.n_init}, K {list(params.clusters)})")
    width = 7 * len(params.clusters) + 2
    print(f"{'mode':<30}{'rho with true heterogeneity, K = ' + ' / '.join(map(str, params.clusters)):<{width}}"
          "rho with diameter")
    for mode, name in (("largest", "largest slice (paper, 8-conn)"), ("all26", "all slices, 26-connected"),
                       ("all6", "all slices, 6-connected")):
        rh = [stats.spearmanr(table[f"{mode}_k{k}"], h, nan_policy="omit")[0] for k in params.clusters]
        rd = [stats.spearmanr(table[f"{mode}_k{k}"], d, nan_policy="omit")[0] for k in params.clusters]
        print(f"{name:<30}{' / '.join(f'{r:.2f}' for r in rh):<{width}}{' / '.join(f'{r:.2f}' for r in rd)}")
    for col, name in (("largest_s", "largest slice"), ("all_s", "whole tumour"),
                      ("all_features_s", "whole tumour, features only")):
        q = table[col].quantile([0.5, 1.0])
        print(f"seconds per patient, {name:<28} median {q[0.5]:6.1f}  max {q[1.0]:6.1f}")
    print(f"tumour voxels median {table['tumour_voxels'].median():.0f} on {table['tumour_slices'].median():.0f} "
          f"slices (largest slice {table['tumour_pixels'].median():.0f} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
