"""First-order features of one window (pyradiomics' firstorder.py), unit voxel volume."""

from __future__ import annotations

import numpy as np
from numba import njit

EPS = np.spacing(1)  # pyradiomics' epsilon inside log2(p + eps)


@njit(inline="always", error_model="numpy")
def _moments(x):
    """Mean, energy, the 2nd, 3rd and 4th central moments, and the mean absolute deviation."""
    S = x.size
    total = 0.0
    energy = 0.0
    for c in range(S):
        total += x[c]
        energy += x[c] * x[c]
    mean = total / S
    m2 = m3 = m4 = mad = 0.0
    for c in range(S):
        dev = x[c] - mean
        m2 += dev * dev
        m3 += dev * dev * dev
        m4 += dev * dev * dev * dev
        mad += abs(dev)
    return mean, energy, m2 / S, m3 / S, m4 / S, mad / S


@njit(inline="always", error_model="numpy")
def _percentiles(xs, q):
    """The 10th, 25th, 50th, 75th and 90th percentiles (numpy's linear rule) into ``q``."""
    S = xs.size
    for t, pct in enumerate((10.0, 25.0, 50.0, 75.0, 90.0)):
        pos = pct / 100.0 * (S - 1)
        lo_i = int(np.floor(pos))
        hi_i = min(lo_i + 1, S - 1)
        frac = pos - lo_i
        q[t] = xs[lo_i] + (xs[hi_i] - xs[lo_i]) * frac


@njit(inline="always", error_model="numpy")
def _robust_mad(x, lo, hi):
    """Mean absolute deviation of the values within [lo, hi] (the 10th-90th percentiles)."""
    sub_n = 0
    sub_sum = 0.0
    for c in range(x.size):
        if x[c] >= lo and x[c] <= hi:
            sub_n += 1
            sub_sum += x[c]
    sub_mean = sub_sum / sub_n
    rmad = 0.0
    for c in range(x.size):
        if x[c] >= lo and x[c] <= hi:
            rmad += abs(x[c] - sub_mean)
    return rmad / sub_n


@njit(inline="always", error_model="numpy")
def firstorder(x, xs, cnt, m, q, out):
    """The 18 first-order features, in the kernel's order, into ``out``.

    ``x``: the window's values, ``xs`` the same ascending, ``cnt`` the cells of each of the
    m present grey levels, ``q`` scratch of 5.
    """
    S = x.size
    mean, energy, m2, m3, m4, mad = _moments(x)
    _percentiles(xs, q)
    ent = uni = 0.0
    for k in range(m):
        p = cnt[k] / S
        ent -= p * np.log2(p + EPS)
        uni += p * p
    out[0] = q[0]
    out[1] = q[4]
    out[2] = energy
    out[3] = ent
    out[4] = q[3] - q[1]
    out[5] = m4 / (m2 * m2) if m2 != 0 else 0.0
    out[6] = xs[S - 1]
    out[7] = mean
    out[8] = mad
    out[9] = q[2]
    out[10] = xs[0]
    out[11] = xs[S - 1] - xs[0]
    out[12] = _robust_mad(x, q[0], q[4])
    out[13] = np.sqrt(energy / S)
    out[14] = m3 / m2 ** 1.5 if m2 != 0 else 0.0
    out[15] = energy * 1.0  # unit spacing: 1 mm^3 per voxel
    out[16] = uni
    out[17] = m2
