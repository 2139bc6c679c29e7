"""A window's grey levels as pyradiomics bins them, and the levels present in it."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always", error_model="numpy")
def bin_window(row, bin_width, x, g):
    """Copy the window's values into ``x`` and their grey levels into ``g``; return the top level.

    imageoperations.getBinEdges / binImage on the window alone: fixed bin width, the first
    edge at the window's minimum rounded down to a multiple of the width, levels from 1.
    """
    S = row.size
    mn = np.inf
    for c in range(S):
        x[c] = row[c]
        mn = min(mn, x[c])
    low = mn - mn % bin_width
    step = (low + bin_width) - low
    ng = 0
    for c in range(S):
        k = np.floor((x[c] - low) / step)
        if low + k * step > x[c]:
            k -= 1.0
        if low + (k + 1.0) * step <= x[c]:
            k += 1.0
        g[c] = np.int64(k) + 1
        ng = max(ng, g[c])
    return ng


@njit(inline="always", error_model="numpy")
def sort_values(x, xs):
    """The window's values ascending, into ``xs`` (insertion sort: faster than a library sort
    for ~25 values)."""
    for c in range(x.size):
        v = x[c]
        k = c - 1
        while k >= 0 and xs[k] > v:
            xs[k + 1] = xs[k]
            k -= 1
        xs[k + 1] = v


@njit(inline="always", error_model="numpy")
def rank_levels(g, ng, rank_of, lv, r, cnt):
    """The m levels present, ascending, into ``lv``; each cell's rank among them into ``r``;
    the cells per rank into ``cnt``. Returns m. ``rank_of`` is scratch of at least ng + 1."""
    S = g.size
    rank_of[: ng + 1] = -1
    for c in range(S):
        rank_of[g[c]] = 0
    m = 0
    for lvl in range(1, ng + 1):
        if rank_of[lvl] == 0:
            rank_of[lvl] = m
            lv[m] = lvl
            m += 1
        else:
            rank_of[lvl] = -1
    for c in range(S):
        r[c] = rank_of[g[c]]
    cnt[:m] = 0.0
    for c in range(S):
        cnt[r[c]] += 1.0
    return m
