"""Figure S1: reader 1's tumour delineation in 3D, for two tumours of one histology.

The paper's Figure S1 shows the three-dimensional tumour region drawn on the venous phase
(Appendix 3). Here two eligible patients of the same histology, one with distant
metastasis (DM) and one without, are drawn side by side: the venous slice with the
largest tumour area and the mask's outline, and the mask's surface (marching cubes,
scikit-image) in physical millimetres, so that size and shape compare truly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ith.figures import VALIDATION

if TYPE_CHECKING:
    import pandas as pd


def pick_pair(patients: pd.DataFrame) -> dict:
    """Two patients of one histology, one with DM and one without.

    ``patients``: by patient_id, with ``cohort``, ``histology``, ``dm_event`` and
    ``tumour_volume_ml``. Validation patients first (then every cohort); within the pool,
    the histology and pair whose tumour volumes are closest (their shapes then compare at
    one scale), ties by ID. Returns ``dm``, ``no_dm``, ``histology`` and ``pool``."""
    import pandas as pd

    data = patients.copy()
    data["dm_event"] = pd.to_numeric(data["dm_event"], errors="coerce")
    data["tumour_volume_ml"] = pd.to_numeric(data["tumour_volume_ml"], errors="coerce")
    data = data[data["dm_event"].isin([0, 1]) & data["histology"].notna() & data["tumour_volume_ml"].notna()]
    for pool, where in ((VALIDATION, "validation cohorts"), (None, "all cohorts")):
        d = data if pool is None else data[data["cohort"].isin(pool)]
        dm = d[d["dm_event"] == 1].reset_index()
        no = d[d["dm_event"] == 0].reset_index()
        pairs = dm.merge(no, on="histology", suffixes=("_dm", "_no"))
        if len(pairs):
            pairs["gap"] = (np.log(pairs["tumour_volume_ml_dm"]) - np.log(pairs["tumour_volume_ml_no"])).abs()
            best = pairs.sort_values(["gap", "patient_id_dm", "patient_id_no"]).iloc[0]
            return {"dm": str(best["patient_id_dm"]), "no_dm": str(best["patient_id_no"]),
                    "histology": str(best["histology"]), "pool": where}
    raise ValueError("Figure S1 needs two eligible patients of one histology, one with DM and one without")


def surface_mm(mask, spacing_xyz) -> tuple[np.ndarray, np.ndarray]:
    """The mask's surface by marching cubes: vertices (x, y, z in mm from the mask's first
    voxel) and triangles. ``mask``: a (z, y, x) array; ``spacing_xyz``: SimpleITK order."""
    from skimage.measure import marching_cubes

    padded = np.pad(np.asarray(mask, dtype=np.uint8), 1)  # closes surfaces at the volume's edge
    verts, faces, _, _ = marching_cubes(padded.astype(np.float32), level=0.5,
                                        spacing=tuple(float(s) for s in spacing_xyz[::-1]))
    verts -= np.asarray(spacing_xyz[::-1], dtype=float)  # undo the padding's offset
    return verts[:, ::-1], faces


def figure(patients: list[dict], note: str = ""):
    """One row per patient: the venous slice with the outline, and the 3D surface.

    ``patients``: dicts with ``image`` and ``mask`` ((z, y, x) arrays on one grid),
    ``spacing`` (x, y, z mm) and ``label``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from ..cohort.geometry import largest_slice
    from ..ith.figures import _show_ct

    fig = plt.figure(figsize=(8.0, 3.9 * len(patients) + 0.4 * bool(note)))
    surfaces = [surface_mm(p["mask"], p["spacing"]) for p in patients]
    # One scale for both surfaces: the larger tumour's extent.
    extent = max(float(np.ptp(v, axis=0).max()) for v, _ in surfaces)
    for row, (p, (verts, faces)) in enumerate(zip(patients, surfaces)):
        z, _ = largest_slice(p["mask"])
        ax = fig.add_subplot(len(patients), 2, 2 * row + 1)
        ys, xs = np.nonzero(p["mask"][z])
        pad = 15
        box = (slice(max(ys.min() - pad, 0), ys.max() + pad + 1), slice(max(xs.min() - pad, 0), xs.max() + pad + 1))
        _show_ct(ax, p["image"][z][box], p["mask"][z][box])
        ax.set_title(f"{p['label']}\nvenous phase, largest tumour slice (outline: reader 1)", fontsize=8)
        ax = fig.add_subplot(len(patients), 2, 2 * row + 2, projection="3d")
        mesh = Poly3DCollection(verts[faces], linewidths=0.0, alpha=1.0, antialiased=False)
        # Shade by the triangles' facing (a fixed light), so the shape reads without a renderer.
        normals = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        # Eight shades: the shape reads as well, and the PNG stays small (a report to mail).
        light = np.round(np.clip(normals @ np.array([0.4, -0.5, 0.77]), 0, 1) * 7) / 7
        mesh.set_facecolor(plt.get_cmap("YlOrRd")(0.35 + 0.5 * light))
        ax.add_collection3d(mesh)
        centre = (verts.max(axis=0) + verts.min(axis=0)) / 2
        for set_lim, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
            set_lim(c - extent / 2, c + extent / 2)
        ax.set_box_aspect((1, 1, 1))
        ax.set_xlabel("x (mm)", fontsize=7, labelpad=-2)
        ax.set_ylabel("y (mm)", fontsize=7, labelpad=-2)
        ax.set_zlabel("z (mm)", fontsize=7, labelpad=-2)
        ax.tick_params(labelsize=6, pad=0)
        ax.view_init(elev=20, azim=-60)
        ax.set_title(f"3D delineation: {p['volume_ml']:.0f} ml", fontsize=8)
    fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, va="bottom", ha="left", wrap=True)
    return fig
