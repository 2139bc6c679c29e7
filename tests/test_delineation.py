import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from ctith.report import delineation


def _mesh_volume(verts, faces) -> float:
    """Volume enclosed by a closed triangle mesh (divergence theorem)."""
    a, b, c = (verts[faces[:, i]] for i in range(3))
    return abs(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)


@pytest.mark.parametrize("organ", ["kidney_left", "spleen"])
def test_surface_is_in_physical_mm_on_real_ct(real_ct, organ):
    """The marching-cubes surface of a real organ mask (anisotropic voxels) encloses the
    mask's own volume in mm3, and spans its extent along each axis in mm."""
    mask_img = sitk.ReadImage(str(real_ct.masks[organ]))
    mask = sitk.GetArrayFromImage(mask_img) > 0
    spacing = mask_img.GetSpacing()
    verts, faces = delineation.surface_mm(mask, spacing)
    voxel_mm3 = float(np.prod(spacing)) * int(mask.sum())
    assert _mesh_volume(verts, faces) == pytest.approx(voxel_mm3, rel=0.08)
    zyx = np.argwhere(mask)
    for axis, s in zip((2, 1, 0), spacing):  # x, y, z
        span_vox = (zyx[:, axis].max() - zyx[:, axis].min()) * s
        assert np.ptp(verts[:, (2, 1, 0).index(axis)]) == pytest.approx(span_vox + s, abs=s)


def test_pair_is_one_histology_with_and_without_dm_validation_first():
    patients = pd.DataFrame({
        "cohort": ["train", "train", "external_validation", "external_validation", "internal_validation",
                   "internal_validation"],
        "histology": ["RLPS", "RLPS", "RLPS", "RLMS", "RLPS", "RLMS"],
        "dm_event": [1, 0, 1, 0, 0, 1],
        "tumour_volume_ml": [100, 100, 400, 390, 150, 80],
    }, index=pd.Index(["T1", "T2", "V1", "V2", "V3", "V4"], name="patient_id"))
    pick = delineation.pick_pair(patients)
    # V1 (RLPS, DM) with V3 (RLPS, no DM): the validation pair of one histology; the
    # closer volumes of V1 and V2 do not count across histologies.
    assert pick == {"dm": "V1", "no_dm": "V3", "histology": "RLPS", "pool": "validation cohorts"}
    # Without validation patients: every cohort, and the closest volumes (T1 and T2, equal).
    pick = delineation.pick_pair(patients.assign(cohort="train"))
    assert (pick["dm"], pick["no_dm"], pick["pool"]) == ("T1", "T2", "all cohorts")
    with pytest.raises(ValueError, match="one with DM and one without"):
        delineation.pick_pair(patients.assign(dm_event=0))
