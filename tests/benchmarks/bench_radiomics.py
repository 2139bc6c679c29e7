"""Per-patient C-radiomics extraction time (pyradiomics with the project's parameter file).

Renders `paper`-preset demo patients (512 x 512 matrix, tumours up to 20 cm) and times,
in one run, the extraction as the workflow does it (config.yaml's bin width and
resampling; Original + Wavelet + LoG, every class) against the Original image alone at
the same settings, the baseline that isolates what the filtered images cost; and the
workflow's extraction against pyradiomics' own bin-edge search (element-wise Python
min/max), the baseline of `radiomics._fast_bin_edges`. Also the real CT's left kidney.

With --spacings: what coarse scans cost. The real CT's kidney, acquired at 3 mm slices
(the CT resampled to 3 mm first, as a coarse scan would come), extracted at several
`radiomics.resampled_spacing` values against the native grid: the time follows the voxels
of the resampled region, not the scan's own.

    python tests/benchmarks/bench_radiomics.py [--patients 2] [--spacings]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from ctith.demo.patients import simulate_cohort
from ctith.demo.render import render_patient
from ctith.radiomics import extraction as radiomics

REPO = Path(__file__).resolve().parents[2]
REAL_CT = REPO / "tests" / "data" / "real_ct"


def timed(image, mask, params, library_bin_edges=False):
    t = time.perf_counter()
    if library_bin_edges:
        with radiomics._quiet_pyradiomics():
            features = radiomics.make_extractor(params).execute(image, mask, label=1)
        features = [k for k in features if not k.startswith(radiomics.DIAGNOSTIC_PREFIX)]
    else:
        features, _ = radiomics.extract(image, mask, params)
    return time.perf_counter() - t, len(features)


def bench(name, image, mask, params):
    original = {**params, "imageType": {"Original": {}}}
    t_base, n_base = timed(image, mask, original)
    t_full, n_full = timed(image, mask, params)
    t_lib, _ = timed(image, mask, params, library_bin_edges=True)
    voxels = int(sitk.GetArrayViewFromImage(mask).sum())
    print(f"{name}: {voxels:,} tumour voxels, spacing {tuple(round(s, 3) for s in image.GetSpacing())}")
    print(f"  Original only: {n_base} features in {t_base:.1f} s")
    print(f"  workflow (Original + Wavelet + LoG): {n_full} features in {t_full:.1f} s "
          f"({t_full / t_base:.1f}x the Original-only time)")
    print(f"  same with pyradiomics' own bin-edge search: {t_lib:.1f} s "
          f"(the workflow's extraction takes {t_full / t_lib:.2f}x its time)")


def resample(image, spacing, interpolator):
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), spacing,
                         image.GetDirection(), 0, image.GetPixelID())


def bench_spacings(params) -> None:
    image = sitk.ReadImage(str(REAL_CT / "abdomen_ct.nii.gz"))
    mask = sitk.ReadImage(str(REAL_CT / "masks" / "kidney_left.nii.gz"))
    coarse = (image.GetSpacing()[0], image.GetSpacing()[1], 3.0)
    image, mask = resample(image, coarse, sitk.sitkBSpline), resample(mask, coarse, sitk.sitkNearestNeighbor)
    roi_mm3 = float(sitk.GetArrayViewFromImage(mask).sum()) * np.prod(coarse)
    print(f"real CT kidney_left as a coarse scan: spacing {tuple(round(s, 2) for s in coarse)} mm, "
          f"ROI {roi_mm3 / 1000:.0f} mL")
    timed(image, mask, params)  # warm-up: pyradiomics' first call loads its filters
    rows = []
    for spacing in (None, [2.0, 2.0, 2.0], [1.5, 1.5, 1.5], [1.0, 1.0, 1.0], [0.75, 0.75, 0.75]):
        p = {**params, "setting": {**params["setting"], "resampledPixelSpacing": spacing}}
        seconds, _ = timed(image, mask, p)
        voxels = roi_mm3 / np.prod(spacing if spacing else coarse)
        rows.append((spacing, voxels, seconds))
        print(f"  resampled_spacing {spacing or 'native'}: about {voxels:,.0f} ROI voxels, {seconds:.1f} s "
              f"({1e6 * seconds / voxels:.0f} us per ROI voxel)")
    base = rows[0]
    for spacing, voxels, seconds in rows[1:]:
        print(f"  {spacing} against native: {voxels / base[1]:.1f}x the voxels, {seconds / base[2]:.1f}x the time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=2, help="paper-preset patients: the largest tumour, then median")
    ap.add_argument("--spacings", action="store_true", help="only the cost of resampling a coarse scan")
    args = ap.parse_args()
    config = yaml.safe_load((REPO / "config.yaml").read_text())["radiomics"]
    params = radiomics.load_params(REPO / config["params"], config["bin_width"], config["resampled_spacing"])
    print(f"settings: bin width {config['bin_width']}, resampled to {config['resampled_spacing']} mm")
    if args.spacings:
        bench_spacings(params)
        return

    root = REAL_CT
    if root.is_dir():
        bench("real CT, kidney_left", sitk.ReadImage(str(root / "abdomen_ct.nii.gz")),
              sitk.ReadImage(str(root / "masks" / "kidney_left.nii.gz")), params)

    specs, _ = simulate_cohort("paper", 20240601)
    volume = np.array([np.prod(s.tumour_radii_mm) for s in specs])
    order = np.argsort(volume)
    picks = [order[-1], order[len(order) // 2]][: args.patients]
    for i in picks:
        spec = specs[i]
        t = time.perf_counter()
        images = render_patient(spec)
        print(f"(rendered {spec.patient_id} in {time.perf_counter() - t:.0f} s)")
        bench(f"paper demo {spec.patient_id} ({spec.tumour_diameter_mm:.0f} mm)", images.venous, images.mask, params)


if __name__ == "__main__":
    main()
