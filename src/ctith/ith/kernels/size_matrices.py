"""Grey level x size matrices of one window and their features: run lengths (pyradiomics'
glrlm.py, 4 in-plane angles averaged), 8-connected zones (glszm.py) and dependences
(gldm.py, alpha 0). The three share one set of statistics (:func:`_size_matrix`)."""

from __future__ import annotations

import numpy as np
from numba import njit

EPS = np.spacing(1)  # pyradiomics' epsilon inside log2(p + eps)

# Where each feature, in the kernel's order, lies in :func:`_size_matrix`'s statistics
# (-1: the run or zone percentage, counted / Np).
_GLRLM_STATS = np.array([2, 3, 6, 10, 1, 14, 13, 9, 8, 4, 5, -1, 7, 0, 12, 11])
_GLSZM_STATS = np.array([2, 3, 6, 10, 1, 14, 13, 9, 4, 5, 0, 12, 11, 8, -1, 7])
_GLDM_STATS = np.array([8, 4, 5, 7, 2, 6, 10, 1, 14, 13, 9, 0, 12, 11])


@njit(inline="always", error_model="numpy")
def _size_matrix(P, m, J, lv, Nz, pg, ps, st):
    """Statistics of an m x J (grey level x size) count matrix holding Nz entries, into ``st``.

    In order: small/large emphasis, grey-level and size non-uniformity (raw and
    normalised), grey-level and size variance, entropy, low/high grey-level emphasis,
    the four joint emphases (small-low, small-high, large-low, large-high) and Np.
    ``pg`` and ``ps`` are scratch arrays for the marginals.
    """
    sml = lrg = gln = szn = glv = szv = ent = lo = hi = slo = shi = llo = lhi = Np = 0.0
    ui = uj = 0.0
    ps[:J] = 0.0
    for i in range(m):
        i2 = lv[i] * lv[i]
        row = 0.0
        for j in range(J):
            v = P[i, j]
            if v == 0.0:
                continue
            row += v
            ps[j] += v
            j2 = (j + 1.0) * (j + 1.0)
            p = v / Nz
            ent -= p * np.log2(p + EPS)
            slo += v / (i2 * j2)
            shi += v * i2 / j2
            llo += v * j2 / i2
            lhi += v * i2 * j2
        pg[i] = row
        gln += row * row
        ui += row / Nz * lv[i]
        lo += row / i2
        hi += row * i2
    for j in range(J):
        jj = j + 1.0
        sml += ps[j] / (jj * jj)
        lrg += ps[j] * jj * jj
        szn += ps[j] * ps[j]
        uj += ps[j] / Nz * jj
        Np += ps[j] * jj
    for i in range(m):
        glv += pg[i] / Nz * (lv[i] - ui) ** 2
    for j in range(J):
        szv += ps[j] / Nz * (j + 1.0 - uj) ** 2
    st[0], st[1], st[2], st[3] = sml / Nz, lrg / Nz, gln / Nz, gln / (Nz * Nz)
    st[4], st[5], st[6], st[7] = szn / Nz, szn / (Nz * Nz), glv, szv
    st[8], st[9], st[10], st[11] = ent, lo / Nz, hi / Nz, slo / Nz
    st[12], st[13], st[14], st[15] = shi / Nz, llo / Nz, lhi / Nz, Np


@njit(inline="always", error_model="numpy")
def _runs(Pr, m, g, r, run_order, run_start, first, last):
    """Run-length counts Pr[rank, length - 1] along the lines ``run_order[first:last]``;
    returns the number of runs."""
    Pr[:m, :] = 0.0
    cur_len = 0
    cur_rank = 0
    prev = -1
    for t in range(first, last):
        c = run_order[t]
        if run_start[t] or g[c] != g[prev]:
            if cur_len > 0:
                Pr[cur_rank, cur_len - 1] += 1.0
            cur_len = 1
            cur_rank = r[c]
        else:
            cur_len += 1
        prev = c
    Pr[cur_rank, cur_len - 1] += 1.0
    total = 0.0
    for i in range(m):
        for j in range(Pr.shape[1]):
            total += Pr[i, j]
    return total


@njit(inline="always", error_model="numpy")
def glrlm(Pr, m, lv, g, r, run_order, run_start, run_bounds, pg, ps, st, f, out):
    """The 16 GLRLM features, averaged over the 4 angles, into ``out``; ``f`` of 16 is scratch."""
    side = Pr.shape[1]
    f[:16] = 0.0
    for a in range(4):
        Nr = _runs(Pr, m, g, r, run_order, run_start, run_bounds[a], run_bounds[a + 1])
        _size_matrix(Pr, m, side, lv, Nr, pg, ps, st)
        for k in range(16):
            f[k] += Nr / st[15] if _GLRLM_STATS[k] < 0 else st[_GLRLM_STATS[k]]
    for k in range(16):
        out[k] = f[k] / 4.0


@njit(inline="always", error_model="numpy")
def _zones(Pz, m, g, r, lab, stack, nb_ptr, nb_list):
    """Zone counts Pz[rank, size - 1] of the 8-connected zones of equal level; returns the
    number of zones and the largest size."""
    Pz[:m, :] = 0.0
    lab[:] = -1
    nz = 0.0
    zmax = 0
    for c0 in range(g.size):
        if lab[c0] >= 0:
            continue
        lab[c0] = c0
        top = 0
        stack[0] = c0
        size = 0
        while top >= 0:
            c = stack[top]
            top -= 1
            size += 1
            for k in range(nb_ptr[c], nb_ptr[c + 1]):
                nbc = nb_list[k]
                if lab[nbc] < 0 and g[nbc] == g[c0]:
                    lab[nbc] = c0
                    top += 1
                    stack[top] = nbc
        Pz[r[c0], size - 1] += 1.0
        nz += 1.0
        zmax = max(zmax, size)
    return nz, zmax


@njit(inline="always", error_model="numpy")
def glszm(Pz, m, lv, g, r, lab, stack, nb_ptr, nb_list, pg, ps, st, out):
    """The 16 GLSZM features into ``out``."""
    nz, zmax = _zones(Pz, m, g, r, lab, stack, nb_ptr, nb_list)
    _size_matrix(Pz, m, zmax, lv, nz, pg, ps, st)
    for k in range(16):
        out[k] = nz / st[15] if _GLSZM_STATS[k] < 0 else st[_GLSZM_STATS[k]]


@njit(inline="always", error_model="numpy")
def neighbourhoods(Pd, s_i, m, g, r, nb_ptr, nb_list):
    """Each cell's 8-neighbourhood: dependence counts Pd[rank, dependents] (GLDM, alpha 0)
    and the NGTDM sums s_i of |level - neighbours' mean| per rank. Returns the largest
    dependence."""
    Pd[:m, :] = 0.0
    s_i[:m] = 0.0
    dmax = 0
    for c in range(g.size):
        dep = 0
        nb_sum = 0
        gc = g[c]
        for k in range(nb_ptr[c], nb_ptr[c + 1]):
            gn = g[nb_list[k]]
            nb_sum += gn
            if gn == gc:
                dep += 1
        Pd[r[c], dep] += 1.0
        dmax = max(dmax, dep)
        s_i[r[c]] += abs(gc - nb_sum / (nb_ptr[c + 1] - nb_ptr[c]))
    return dmax


@njit(inline="always", error_model="numpy")
def gldm(Pd, m, lv, dmax, S, pg, ps, st, out):
    """The 14 GLDM features of a window of S cells into ``out`` (``Pd`` from :func:`neighbourhoods`)."""
    _size_matrix(Pd, m, dmax + 1, lv, float(S), pg, ps, st)
    for k in range(14):
        out[k] = st[_GLDM_STATS[k]]
