"""Neighbourhood grey-tone difference features of one window (pyradiomics' ngtdm.py)."""

from __future__ import annotations

from numba import njit


@njit(inline="always", error_model="numpy")
def ngtdm(cnt, s_i, lv, m, S, out):
    """The 5 NGTDM features into ``out``: ``cnt`` cells and ``s_i`` the summed differences
    (:func:`ctith.ith.kernels.size_matrices.neighbourhoods`) of each of the m levels ``lv``
    of a window of S cells."""
    coarse = sum_s = contrast = absdiff = complexity = strength = 0.0
    for i in range(m):
        coarse += cnt[i] / S * s_i[i]
        sum_s += s_i[i]
    for i in range(m):
        pi = cnt[i] / S
        for j in range(m):
            pj = cnt[j] / S
            dl = lv[i] - lv[j]
            contrast += pi * pj * dl * dl
            absdiff += abs(lv[i] * pi - lv[j] * pj)
            complexity += abs(dl) * (pi * s_i[i] + pj * s_i[j]) / (pi + pj)
            strength += (pi + pj) * dl * dl
    out[0] = coarse / absdiff if absdiff != 0 else 0.0
    out[1] = 1.0 / coarse if coarse != 0 else 1e6
    out[2] = complexity / S
    out[3] = contrast * sum_s / S / (m * (m - 1)) if m > 1 else 0.0
    out[4] = strength / sum_s if sum_s != 0 else 0.0
