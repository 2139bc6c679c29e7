"""The ITH score of a habitat label map (Li et al., ITHscore): 1 - sum over clusters of
(largest connected region / number of regions) / tumour area, regions 8-connected in a slice
(or 6/26-connected in a volume) and those of at most ``min_region_pixels`` ignored.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


# Connected regions: 4/8 in a slice, 6/26 in a volume (faces / faces, edges and corners).
_STRUCTURE = {4: ndimage.generate_binary_structure(2, 1), 8: np.ones((3, 3), dtype=bool),
              6: ndimage.generate_binary_structure(3, 1), 26: np.ones((3, 3, 3), dtype=bool)}


def label_map(mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Map (2D or 3D): cluster + 1 on the tumour's pixels (C order), 0 outside."""
    out = np.zeros(mask.shape, dtype=np.int8)
    out[np.asarray(mask, dtype=bool)] = np.asarray(labels) + 1
    return out


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    structure = _STRUCTURE.get(connectivity)
    if structure is None or structure.ndim != ndim:
        raise ValueError(f"connectivity {connectivity} does not apply to a {ndim}D label map "
                         "(4 or 8 in 2D, 6 or 26 in 3D)")
    return structure


def cluster_regions(label_map: np.ndarray, connectivity: int = 8) -> dict[int, np.ndarray]:
    """Sizes of the connected regions of each cluster (label > 0), largest first."""
    structure = _structure(np.ndim(label_map), connectivity)
    out = {}
    for c in np.unique(label_map[label_map > 0]):
        regions, _ = ndimage.label(label_map == c, structure=structure)
        out[int(c)] = np.sort(np.bincount(regions.ravel())[1:])[::-1]
    return out


def ith_score(label_map: np.ndarray, min_region_pixels: int = 1, connectivity: int = 8) -> float:
    """ITH score of a label map (0 = background): 1 - sum_c (S_c,max / n_c) / S.

    For each cluster c, S_c,max is its largest connected region and n_c its number of
    regions, counting only regions larger than ``min_region_pixels``; a cluster with no
    such region adds nothing. S is the tumour's area in pixels. 0 = every cluster one
    region; towards 1 = clusters scattered in many small regions.

    A 2D map is the published score (``connectivity`` 8 or 4); a 3D map of the whole
    tumour counts regions in the volume (26 or 6) and S is the tumour's voxel count.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim not in (2, 3):
        raise ValueError(f"need a 2D or 3D label map, got {label_map.ndim}D")
    area = int(np.count_nonzero(label_map))
    if area == 0:
        raise ValueError("label map holds no tumour pixels")
    total = 0.0
    for sizes in cluster_regions(label_map, connectivity).values():
        kept = sizes[sizes > min_region_pixels]
        if kept.size:
            total += kept[0] / kept.size
    return 1.0 - total / area
