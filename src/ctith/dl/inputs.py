"""2.5D deep-learning input of one patient, Appendix 4 step by step.

1. window the venous phase to 8 bits (abdominal window by default: level 40, width 400);
2. contrast-limited adaptive histogram equalisation (CLAHE, scikit-image), per slice;
3. scale [0, 255] to [0, 1];
4. dilate the ROI with a 4 x 4 kernel, per slice;
5. crop to the bounding box of the dilated ROI (the union over the three slices, so the
   channels stay aligned);
6. set everything outside each slice's dilated ROI to 0;
7. take the largest-area slice n and slices n - 2, n, n + 2 as three channels (clamped
   at the volume's ends; the QC record says so);
8. resize to 224 x 224, bilinear.

Arrays are (z, y, x); the slice axis is the ingested image's axial axis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..cohort.geometry import largest_slice


@dataclass(frozen=True)
class DLInputParams:
    window_level: float = 40.0
    window_width: float = 400.0
    clahe_kernel: int | None = None  # pixels; None: 1/8 of the slice, scikit-image's default
    clahe_clip: float = 0.01
    dilation: int = 4  # square kernel side, pixels
    offset: int = 2  # channels are slices n - offset, n, n + offset
    size: int = 224


def window_to_uint8(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """HU -> 0..255: level - width/2 maps to 0, level + width/2 to 255, clipped."""
    lo = level - width / 2.0
    scaled = (hu.astype(np.float64) - lo) / width * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def clahe(slice_u8: np.ndarray, kernel: int | None, clip: float) -> np.ndarray:
    """CLAHE of one 8-bit slice, back to 8 bits."""
    from skimage.exposure import equalize_adapthist

    out = equalize_adapthist(slice_u8, kernel_size=kernel, clip_limit=clip, nbins=256)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def dilate(mask2d: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation with a size x size square. For even sizes scipy puts the kernel's
    centre at index size // 2: a 4 x 4 kernel grows a pixel 2 up/left and 1 down/right."""
    if size <= 1:
        return mask2d.astype(bool)
    return ndimage.binary_dilation(mask2d.astype(bool), structure=np.ones((size, size), dtype=bool))


def channel_slices(n: int, n_slices: int, offset: int) -> tuple[list[int], bool]:
    """Slices n - offset, n, n + offset clamped to the volume; True when any was clamped."""
    wanted = [n - offset, n, n + offset]
    got = [min(max(i, 0), n_slices - 1) for i in wanted]
    return got, got != wanted


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) -> (C, size, size), bilinear, no anti-aliasing (as the paper says)."""
    from skimage.transform import resize

    return np.stack([resize(c, (size, size), order=1, mode="edge", anti_aliasing=False, preserve_range=True)
                     for c in image]).astype(np.float32)


def crop_channels(hu: np.ndarray, mask: np.ndarray, axis: int = 0, params: DLInputParams = DLInputParams(),
                  patient: str | None = None) -> tuple[np.ndarray, dict]:
    """Steps 1-7: the (3, h, w) crop in [0, 1], zero outside each slice's dilated ROI, and its QC record."""
    hu = np.moveaxis(hu, axis, 0)
    mask = np.moveaxis(mask, axis, 0).astype(bool)
    if not mask.any():
        raise InputError("mask is empty", patient)
    n, area = largest_slice(mask, 0)
    idx, clamped = channel_slices(n, mask.shape[0], params.offset)

    u8 = window_to_uint8(hu[idx], params.window_level, params.window_width)
    eq = np.stack([clahe(s, params.clahe_kernel, params.clahe_clip) for s in u8])
    unit = eq.astype(np.float32) / 255.0
    rois = np.stack([dilate(mask[i], params.dilation) for i in idx])
    union = rois.any(axis=0)
    rows, cols = np.nonzero(union)
    box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    crop = unit[:, box[0]:box[1], box[2]:box[3]]
    crop = np.where(rois[:, box[0]:box[1], box[2]:box[3]], crop, 0.0).astype(np.float32)
    qc = {
        "patient_id": patient,
        "largest_slice": n,
        "largest_slice_area_px": area,
        "channel_slices": idx,
        "clamped": clamped,
        "crop_box_rows_cols": box,
        "crop_shape": list(crop.shape[1:]),
        "roi_pixels_per_channel": [int(mask[i].sum()) for i in idx],
        "dilated_roi_pixels_per_channel": [int(r.sum()) for r in rois],
        "params": asdict(params),
    }
    if clamped:
        qc["warning"] = (f"slices {[n - params.offset, n, n + params.offset]} run past the volume's "
                         f"{mask.shape[0]} slices; clamped to {idx}")
    return crop, qc


def build_input(hu: np.ndarray, mask: np.ndarray, axis: int = 0, params: DLInputParams = DLInputParams(),
                patient: str | None = None) -> tuple[np.ndarray, dict]:
    """The (3, size, size) float32 tensor in [0, 1] (step 8 on ``crop_channels``) and its QC record."""
    crop, qc = crop_channels(hu, mask, axis, params, patient)
    return resize_bilinear(crop, params.size), qc


def preview_figure(tensor: np.ndarray, title: str, slices: list[int]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, c, z in zip(axes, tensor, slices):
        ax.imshow(c, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"slice {z}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
