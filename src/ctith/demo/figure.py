"""The demo's heterogeneity figure: the habitats the ITH stage finds beside the planted ones.

Four demo tumours from low to high true heterogeneity (quantiles 5, 35, 65 and 95% of the
eligible patients' ``true_heterogeneity``), each in two rows: the CT with the published
method's habitats for K = 2-5, then the planted habitats with a noise-robust variant's
(docs/ith.md, "How the ITH score behaves on real CT"). Patients are rendered in memory from the
generator's specs, so the figure needs no workflow output beyond the demo itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ith import habitats as ith
from ..ith.figures import _show_ct, _show_map
from .render import PatientImages, render_patient

QUANTILES = (0.05, 0.35, 0.65, 0.95)
SHORT = {"feature_smoothing_mm": "smoothing {:g} mm", "feature_smoothing_fraction": "smoothing {:g} x diameter",
         "feature_smoothing_edge_hu": "edges {:g} HU", "pca_components": "PCA {:g}"}


def variant_label(variant: dict) -> str:
    """A short name of an ITH variant's settings, e.g. "smoothing 0.06 x diameter, edges 30 HU"."""
    return ", ".join(SHORT.get(k, k + " {:g}").format(v) for k, v in variant.items())


def pick_patients(truth: pd.DataFrame, quantiles=QUANTILES) -> list[str]:
    """Patient IDs at these quantiles of ``true_heterogeneity`` (``truth`` indexed by ID)."""
    h = truth["true_heterogeneity"].sort_values(kind="stable")
    return [h.index[int(round(q * (len(h) - 1)))] for q in quantiles]


def largest_slice_input(images: PatientImages):
    """The venous volume, mask and in-plane spacing as the ITH stage sees them (the
    renderer's grid is already the canonical LPS one, axial axis 0)."""
    import SimpleITK as sitk

    venous = sitk.GetArrayFromImage(images.venous)
    mask = sitk.GetArrayFromImage(images.mask).astype(bool)
    sx, sy, _ = images.venous.GetSpacing()
    return venous, mask, (sy, sx)


def true_map(images: PatientImages, res: ith.ITHResult) -> np.ndarray:
    """The planted habitats on the ITH stage's crop of the slice it scored."""
    k = res.info["slice_index"]
    r0, c0 = res.info["crop_origin"]
    rows, cols = res.image.shape
    out = np.zeros((rows, cols), dtype=int)
    src = images.habitat_map[k]
    rr = slice(max(r0, 0), min(r0 + rows, src.shape[0]))
    cc = slice(max(c0, 0), min(c0 + cols, src.shape[1]))
    out[rr.start - r0:rr.stop - r0, cc.start - c0:cc.stop - c0] = src[rr, cc]
    return out


def heterogeneity_figure(specs: list, picks: list[str], published: ith.ITHParams, variant: ith.ITHParams,
                         label: str):
    """The figure (matplotlib) for the picked patients; ``published`` and ``variant`` give
    the clusters shown (the published method's) and every other ITH setting."""
    import matplotlib.pyplot as plt

    clusters = tuple(published.clusters)
    by_id = {s.patient_id: s for s in specs}
    fig = plt.figure(figsize=(11, 4.6 * len(picks)))
    outer = fig.add_gridspec(len(picks), 1, hspace=0.22)
    for n, pid in enumerate(picks):
        spec = by_id[pid]
        images = render_patient(spec)
        venous, mask, spacing = largest_slice_input(images)
        inner = outer[n].subgridspec(2, 1 + len(clusters), wspace=0.05, hspace=0.32)
        for r, params in enumerate((published, variant)):
            res = ith.run_ith(venous, mask, 0, params, pid, spacing=spacing)
            ax = fig.add_subplot(inner[r, 0])
            if r == 0:
                _show_ct(ax, res.image, res.mask)
                ax.set_title(f"{pid}: true heterogeneity {spec.true_heterogeneity:.2f}\n"
                             f"{spec.tumour_diameter_mm:.0f} mm, institution {spec.institution}",
                             fontsize=8, loc="left")
                ax.set_ylabel("published method", fontsize=8)
            else:
                _show_map(ax, res.image, true_map(images, res), "true", float("nan"))
                ax.set_title("")  # the map's own "K = ..." title: the planted tissues go on the left
                ax.set_title("planted: " + ", ".join(t[:4] for t in spec.habitats), fontsize=8, loc="left")
                ax.set_ylabel("variant", fontsize=8)
            for j, k in enumerate(clusters):
                _show_map(fig.add_subplot(inner[r, 1 + j]), res.image, res.maps[k], k, res.scores[k])
    fig.suptitle("Demo tumours from low to high true heterogeneity. Upper row of each: the CT and the "
                 "published method's habitats;\nlower row: the planted habitats and the habitats of the "
                 f"variant ({label})", fontsize=10, y=0.915 if len(picks) == 4 else 0.98)
    return fig
