"""Speed of the ITH local-feature engine against pyradiomics called once per window.

Prints, for the same tumour slice in one run, seconds per tumour pixel of the fast
engine (``ctith.ith.habitats.local_features``) and of the reference path (pyradiomics on each
window), and their ratio: on the spleen of tests/data/real_ct (every pixel through
both paths) and on the largest tumour of a `paper`-preset demo patient (the reference
timed on a random sample of its pixels). Also checks that the sampled features agree.

    python tests/benchmarks/bench_ith.py [--sample 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctith.demo.patients import simulate_cohort
from ctith.demo.render import render_patient
from ctith.cohort import ingest
from ctith.ith import habitats as ith, local_radiomics as lr

REPO = Path(__file__).resolve().parents[2]
REAL_CT = REPO / "tests" / "data" / "real_ct"


def best_of(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def compare(name, crop, mask, sample, repeat, rng):
    rows, cols = np.nonzero(mask)
    n = rows.size
    windows = lr.window_stack(crop, (rows, cols), 2)
    fast_s = best_of(lambda: ith.local_features(crop, mask), repeat) / n
    idx = np.sort(rng.choice(n, size=min(sample, n), replace=False)) if sample and sample < n else np.arange(n)
    extractor = lr.reference_extractor()
    t = time.perf_counter()
    ref = lr.reference_window_features(windows[idx], extractor=extractor)
    ref_s = (time.perf_counter() - t) / idx.size
    fast = lr.window_features(windows[idx])
    agree = np.isclose(fast, ref, rtol=1e-6, atol=1e-9).all()
    print(f"{name:<34} {n:>7} px  reference on {idx.size:>5} px  "
          f"fast {fast_s * 1e6:8.2f} us/px  reference {ref_s * 1e3:7.2f} ms/px  "
          f"ratio {ref_s / fast_s:7.0f}x  features agree: {agree}")
    return ref_s / fast_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=400, help="reference pixels of the demo tumour")
    ap.add_argument("--repeat", type=int, default=3, help="fast-engine repeats (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    t = time.perf_counter()
    lr.window_features(np.zeros((1, 25)))
    print(f"engine load/compile: {time.perf_counter() - t:.2f} s (numba cache: src/ctith/ith/__pycache__)")

    ratios = []
    real = REAL_CT
    if real.is_dir():
        res = ingest.ingest(real / "abdomen_ct.nii.gz", real / "masks" / "spleen.nii.gz", "spleen")
        crop, mask, _ = ith.tumour_slice(sitk.GetArrayFromImage(res.image), sitk.GetArrayFromImage(res.mask),
                                         res.qc["axial_axis"])
        ratios.append(compare("real CT spleen, largest slice", crop, mask, 0, args.repeat, rng))
    else:
        print(f"real CT not found at {real}: skipped", file=sys.stderr)

    specs, _ = simulate_cohort("paper", 20240601)
    spec = max(specs, key=lambda s: s.tumour_radii_mm[0] * s.tumour_radii_mm[1] / s.spacing_xy ** 2)
    images = render_patient(spec)
    crop, mask, _ = ith.tumour_slice(sitk.GetArrayFromImage(images.venous), sitk.GetArrayFromImage(images.mask), 0)
    ratios.append(compare(f"paper demo {spec.patient_id}, largest slice", crop, mask, args.sample, args.repeat, rng))
    print(f"lowest ratio: {min(ratios):.0f}x (target >= 1000x, required >= 100x)")


if __name__ == "__main__":
    main()
