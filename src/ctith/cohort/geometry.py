"""Grids and orientation: both volumes are brought to one canonical orientation (LPS by
default) by axis permutations and flips only, so a mask stored with another axis order or
flipped axes lands on the image grid losslessly; a mask on a genuinely different grid is an
error. The axial axis and the largest tumour slice every stage measures on.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import IngestError


LARGEST_SLICE_RULE = "axial slice with the most tumour voxels; ties go to the lowest index"


def orientation_code(image: sitk.Image) -> str:
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def reorient(image: sitk.Image, code: str) -> sitk.Image:
    """Permute/flip axes to the orientation code (lossless: no resampling)."""
    if orientation_code(image) == code:
        return image
    return sitk.DICOMOrient(image, code)


def match_mask_to_image(mask: sitk.Image, image: sitk.Image, tolerance_mm: float = 0.01,
                        direction_tolerance: float = 1e-4, patient: str | None = None,
                        mask_path: str | None = None, image_path: str | None = None) -> tuple[sitk.Image, dict]:
    """Bring a mask onto the image grid by axis permutations/flips, or fail naming what differs."""
    info = {"mask_reoriented": False, "mask_geometry_snapped": False}
    code = orientation_code(image)
    if orientation_code(mask) != code:
        mask = reorient(mask, code)
        info["mask_reoriented"] = True

    def fmt(v):
        return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"

    def differs(what, m, i, tol):
        return (f"mask '{mask_path}' has {what} {fmt(m)} but image '{image_path}' has {fmt(i)}"
                if np.max(np.abs(np.subtract(m, i))) > tol else None)

    if mask.GetSize() != image.GetSize():
        raise IngestError(f"mask '{mask_path}' has size {mask.GetSize()} but image '{image_path}' "
                          f"has {image.GetSize()}", patient, mask_path)
    spacing_tol = max(1e-6, min(tolerance_mm, 1e-3 * min(image.GetSpacing())))
    for problem in (differs("spacing", mask.GetSpacing(), image.GetSpacing(), spacing_tol),
                    differs("origin", mask.GetOrigin(), image.GetOrigin(), tolerance_mm),
                    differs("direction", mask.GetDirection(), image.GetDirection(), direction_tolerance)):
        if problem:
            raise IngestError(problem, patient, mask_path)
    exact = (mask.GetSpacing() == image.GetSpacing() and mask.GetOrigin() == image.GetOrigin()
             and mask.GetDirection() == image.GetDirection())
    if not exact:  # within tolerance (e.g. float32 rounding in a NIfTI header)
        mask = sitk.Image(mask)
        mask.CopyInformation(image)
        info["mask_geometry_snapped"] = True
    return mask, info


def axial_axis(image: sitk.Image) -> int:
    """The numpy axis (of the (z, y, x) array) that runs head-to-foot."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    itk_axis = int(np.argmax(np.abs(d[2, :])))  # image axis most aligned with patient S-I
    return 2 - itk_axis


def largest_slice(mask_arr: np.ndarray, axis: int = 0) -> tuple[int, int]:
    """(index, area in voxels) of the slice with the most tumour voxels; ties -> lowest index."""
    other = tuple(a for a in range(mask_arr.ndim) if a != axis)
    areas = mask_arr.astype(bool).sum(axis=other)
    k = int(np.argmax(areas))  # argmax returns the first maximum
    return k, int(areas[k])
