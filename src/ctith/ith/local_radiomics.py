"""Pixel-wise local radiomics: pyradiomics' features of every (2w+1)^2 window, all at once.

The ITH score (Li et al., ITHscore) describes each tumour pixel by the radiomic features
pyradiomics returns for the square window of the image centred on it, each window
treated as its own 1-slice ROI: grey levels are discretised within the window (fixed
bin width, bins counted from 0), pixel spacing is 1, and the texture matrices see the
in-plane neighbours only (4 GLCM/GLRLM directions, 8-connected zones and neighbourhoods).

Calling pyradiomics once per window (:func:`reference_local_features`, kept as the
reference) costs milliseconds per pixel. :func:`local_features` computes the same 93
features for all windows in one compiled (numba) pass: each window's matrices are a few
grey levels wide, so pyradiomics' formulas are evaluated as small loops over the levels
present in the window. Equality with the reference, feature by feature and pixel by
pixel, is a test.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from numba import njit

from ..names import FEATURE_CLASSES

EPS = np.spacing(1)  # pyradiomics' epsilon inside log2(p + eps)

# Enabled (non-deprecated) features of pyradiomics 3.x for each class, in the order the
# compiled kernel writes them. A test checks them against the installed pyradiomics.
_KERNEL_ORDER = {
    "firstorder": ["10Percentile", "90Percentile", "Energy", "Entropy", "InterquartileRange", "Kurtosis",
                   "Maximum", "Mean", "MeanAbsoluteDeviation", "Median", "Minimum", "Range",
                   "RobustMeanAbsoluteDeviation", "RootMeanSquared", "Skewness", "TotalEnergy",
                   "Uniformity", "Variance"],
    "glcm": ["Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast",
             "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "Id", "Idm",
             "Idmn", "Idn", "Imc1", "Imc2", "InverseVariance", "JointAverage", "JointEnergy", "JointEntropy",
             "MCC", "MaximumProbability", "SumAverage", "SumEntropy", "SumSquares"],
    "gldm": ["DependenceEntropy", "DependenceNonUniformity", "DependenceNonUniformityNormalized",
             "DependenceVariance", "GrayLevelNonUniformity", "GrayLevelVariance", "HighGrayLevelEmphasis",
             "LargeDependenceEmphasis", "LargeDependenceHighGrayLevelEmphasis",
             "LargeDependenceLowGrayLevelEmphasis", "LowGrayLevelEmphasis", "SmallDependenceEmphasis",
             "SmallDependenceHighGrayLevelEmphasis", "SmallDependenceLowGrayLevelEmphasis"],
    "glrlm": ["GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
              "HighGrayLevelRunEmphasis", "LongRunEmphasis", "LongRunHighGrayLevelEmphasis",
              "LongRunLowGrayLevelEmphasis", "LowGrayLevelRunEmphasis", "RunEntropy", "RunLengthNonUniformity",
              "RunLengthNonUniformityNormalized", "RunPercentage", "RunVariance", "ShortRunEmphasis",
              "ShortRunHighGrayLevelEmphasis", "ShortRunLowGrayLevelEmphasis"],
    "glszm": ["GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
              "HighGrayLevelZoneEmphasis", "LargeAreaEmphasis", "LargeAreaHighGrayLevelEmphasis",
              "LargeAreaLowGrayLevelEmphasis", "LowGrayLevelZoneEmphasis", "SizeZoneNonUniformity",
              "SizeZoneNonUniformityNormalized", "SmallAreaEmphasis", "SmallAreaHighGrayLevelEmphasis",
              "SmallAreaLowGrayLevelEmphasis", "ZoneEntropy", "ZonePercentage", "ZoneVariance"],
    "ngtdm": ["Busyness", "Coarseness", "Complexity", "Contrast", "Strength"],
}


# pyradiomics' own order: its feature methods ``get<Name>FeatureValue`` sorted by name.
FEATURE_NAMES = {c: sorted(names, key=lambda f: f"get{f}FeatureValue") for c, names in _KERNEL_ORDER.items()}


def feature_columns(classes=FEATURE_CLASSES) -> list[str]:
    """Column names as pyradiomics' extractor names them (``original_<class>_<feature>``)."""
    return [f"original_{c}_{f}" for c in classes for f in FEATURE_NAMES[c]]


# --------------------------------------------------------------------------- geometry


class _Geometry:
    """Index tables of one (2w+1)x(2w+1) window, cells numbered in row-major order."""

    def __init__(self, window: int):
        s = 2 * window + 1
        self.side, self.cells = s, s * s
        rr, cc = np.divmod(np.arange(self.cells), s)
        # The 4 in-plane directions pyradiomics keeps for a 1-slice ROI (row, col steps).
        directions = [(0, 1), (1, 0), (1, 1), (1, -1)]
        pairs = []
        for a, (dr, dc) in enumerate(directions):
            ok = (rr + dr < s) & (cc + dc >= 0) & (cc + dc < s)
            src = np.flatnonzero(ok)
            pairs.append(np.stack([src, src + dr * s + dc, np.full(src.size, a)], 1))
        pairs = np.concatenate(pairs)
        self.pair_from, self.pair_to, self.pair_dir = pairs.T
        # Run-length lines: every line of every direction, cells in walking order.
        order, start, line_dir = [], [], []
        for a, (dr, dc) in enumerate(directions):
            heads = [(r, c) for r in range(s) for c in range(s)
                     if not (0 <= r - dr < s and 0 <= c - dc < s)]
            for r, c in heads:
                first = True
                while 0 <= r < s and 0 <= c < s:
                    order.append(r * s + c)
                    start.append(first)
                    line_dir.append(a)
                    first = False
                    r, c = r + dr, c + dc
        self.run_order = np.array(order)
        self.run_start = np.array(start)
        # cells of direction a: run_order[run_bounds[a]:run_bounds[a + 1]]
        self.run_bounds = np.searchsorted(np.array(line_dir), np.arange(5))
        # 8-neighbourhood of each cell (index, validity): zones, dependence, NGTDM.
        offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
        nr = rr[:, None] + np.array([o[0] for o in offsets])
        nc = cc[:, None] + np.array([o[1] for o in offsets])
        valid = (nr >= 0) & (nr < s) & (nc >= 0) & (nc < s)
        # neighbours of cell c: nb_list[nb_ptr[c]:nb_ptr[c + 1]]
        self.nb_list = (nr * s + nc)[valid]
        self.nb_ptr = np.concatenate([[0], np.cumsum(valid.sum(1))])
        self.max_neighbours = len(offsets)


@lru_cache(maxsize=8)
def _geometry(window: int) -> _Geometry:
    return _Geometry(window)


# --------------------------------------------------------------------------- windows


def window_stack(image: np.ndarray, centres: tuple[np.ndarray, np.ndarray], window: int,
                 border: str = "edge") -> np.ndarray:
    """Values of the (2w+1)^2 window around each centre, shape (n, (2w+1)^2), row-major.

    Windows reaching past the image take image values (``border``: a numpy pad mode).
    """
    padded = np.pad(np.asarray(image, dtype=np.float64), window, mode=border)
    views = np.lib.stride_tricks.sliding_window_view(padded, (2 * window + 1,) * 2)
    return views[centres[0], centres[1]].reshape(len(centres[0]), -1)


# --------------------------------------------------------------------------- kernel
# One compiled pass per window. Formulas are pyradiomics' (firstorder.py, glcm.py, ...),
# evaluated on the window's m present grey levels: pyradiomics deletes absent levels
# from every matrix, and zero entries add nothing to its sums.

_OFFSETS = {"firstorder": 0, "glcm": 18, "gldm": 42, "glrlm": 56, "glszm": 72, "ngtdm": 88}
N_FEATURES = 93


@njit(cache=True, error_model="numpy")
def _eig_sym(A, m, work):
    """Eigenvalues of the symmetric m x m block of A (cyclic Jacobi; A is overwritten)."""
    for _sweep in range(100):
        off = 0.0
        for p in range(m):
            for q in range(p + 1, m):
                off += A[p, q] * A[p, q]
        if off < 1e-24:
            break
        for p in range(m):
            for q in range(p + 1, m):
                apq = A[p, q]
                if apq == 0.0:
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(m):
                    akp, akq = A[k, p], A[k, q]
                    A[k, p] = c * akp - s * akq
                    A[k, q] = s * akp + c * akq
                for k in range(m):
                    apk, aqk = A[p, k], A[q, k]
                    A[p, k] = c * apk - s * aqk
                    A[q, k] = s * apk + c * aqk
    for k in range(m):
        work[k] = A[k, k]
    return work[:m]


@njit(cache=True, error_model="numpy")
def _eig2(a, b, d):
    """Eigenvalues of the symmetric 2 x 2 matrix [[a, b], [b, d]] (no cancellation)."""
    mid = 0.5 * (a + d)
    rad = np.sqrt((0.5 * (a - d)) ** 2 + b * b)
    return mid + rad, mid - rad


@njit(cache=True, error_model="numpy")
def _second_eigen_magnitude(A, m, v, work):
    """Second largest |eigenvalue| of the symmetric m x m block of A (overwritten).

    ``v`` = sqrt(px): when no entry is 0 it is the unit eigenvector of eigenvalue 1 (the
    largest), so a Householder reflection H (H v = -e1) leaves the other eigenvalues in
    the lower (m-1) x (m-1) block of H A H: closed form for 2 x 2, Jacobi above.
    """
    if m == 2:
        l1, l2 = _eig2(A[0, 0], A[0, 1], A[1, 1])
        return min(abs(l1), abs(l2))
    deflate = True
    for i in range(m):
        if v[i] <= 0:
            deflate = False
    if deflate:
        # w = v + e1 (v[0] > 0), beta = 2 / w.w; B = A - beta (w u^T + u w^T) + beta^2 (w.u) w w^T, u = A w
        w = work[:m]
        for i in range(m):
            w[i] = v[i]
        w[0] += 1.0
        ww = 0.0
        for i in range(m):
            ww += w[i] * w[i]
        beta = 2.0 / ww
        u = work[m:2 * m]
        wu = 0.0
        for i in range(m):
            acc = 0.0
            for j in range(m):
                acc += A[i, j] * w[j]
            u[i] = acc
            wu += w[i] * acc
        for i in range(1, m):
            for j in range(1, m):
                A[i - 1, j - 1] = A[i, j] - beta * (w[i] * u[j] + u[i] * w[j]) + beta * beta * wu * w[i] * w[j]
        if m == 3:
            l1, l2 = _eig2(A[0, 0], A[0, 1], A[1, 1])
            return max(abs(l1), abs(l2))
        lam = _eig_sym(A, m - 1, work)
        best = 0.0
        for k in range(m - 1):
            best = max(best, abs(lam[k]))
        return best
    lam = _eig_sym(A, m, work)
    first = second = -1.0
    for k in range(m):
        val = lam[k] * lam[k]
        if val > first:
            second = first
            first = val
        elif val > second:
            second = val
    return np.sqrt(second)


@njit(cache=True, error_model="numpy")
def _size_matrix(P, m, J, lv, Nz, pg, ps):
    """GLSZM/GLDM/GLRLM statistics of an m x J (grey level x size) count matrix.

    Returns small/large emphasis, grey-level and size non-uniformity (raw and
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
    return (sml / Nz, lrg / Nz, gln / Nz, gln / (Nz * Nz), szn / Nz, szn / (Nz * Nz), glv, szv, ent,
            lo / Nz, hi / Nz, slo / Nz, shi / Nz, llo / Nz, lhi / Nz, Np)


@njit(cache=True, error_model="numpy")
def _window_kernel(values, bin_width, side, pair_from, pair_to, pair_dir, run_order, run_start, run_bounds,
                   nb_ptr, nb_list, n_nb, out):
    n, S = values.shape
    x = np.empty(S)
    xs = np.empty(S)
    g = np.empty(S, np.int64)
    r = np.empty(S, np.int64)
    lv = np.empty(S)
    cnt = np.empty(S)
    P = np.empty((4, S, S))
    px = np.empty(S)
    py = np.empty(S)
    A = np.empty((S, S))
    work = np.empty(2 * S)
    Pr = np.empty((S, side))
    Pz = np.empty((S, S))
    Pd = np.empty((S, n_nb + 1))
    lab = np.empty(S, np.int64)
    stack = np.empty(S, np.int64)
    s_i = np.empty(S)
    kbuf = np.zeros(64)
    rank_of = np.zeros(kbuf.size, np.int64)
    q = np.empty(5)
    f = np.zeros(24)
    lpx = np.empty(S)
    vsq = np.empty(S)
    lpy = np.empty(S)
    mpg = np.empty(S)
    mps = np.empty(S)
    for w in range(n):
        # ---- discretisation (imageoperations.getBinEdges / binImage, per window)
        mn = np.inf
        for c in range(S):
            x[c] = values[w, c]
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
        if kbuf.size < 3 * ng + 2:
            kbuf = np.zeros(2 * (3 * ng + 2))
            rank_of = np.zeros(kbuf.size, np.int64)
        # present levels, ascending, and each cell's rank among them
        for c in range(S):  # insertion sort: faster than a library sort for ~25 values
            v = x[c]
            k = c - 1
            while k >= 0 and xs[k] > v:
                xs[k + 1] = xs[k]
                k -= 1
            xs[k + 1] = v
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
        ngf = float(ng)

        # ---- firstorder
        o = 0
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
        m2 /= S
        m3 /= S
        m4 /= S
        for t, pct in enumerate((10.0, 25.0, 50.0, 75.0, 90.0)):
            pos = pct / 100.0 * (S - 1)
            lo_i = int(np.floor(pos))
            hi_i = min(lo_i + 1, S - 1)
            frac = pos - lo_i
            q[t] = xs[lo_i] + (xs[hi_i] - xs[lo_i]) * frac
        sub_n = 0
        sub_sum = 0.0
        for c in range(S):
            if x[c] >= q[0] and x[c] <= q[4]:
                sub_n += 1
                sub_sum += x[c]
        sub_mean = sub_sum / sub_n
        rmad = 0.0
        for c in range(S):
            if x[c] >= q[0] and x[c] <= q[4]:
                rmad += abs(x[c] - sub_mean)
        ent = uni = 0.0
        for k in range(m):
            p = cnt[k] / S
            ent -= p * np.log2(p + EPS)
            uni += p * p
        out[w, o + 0] = q[0]
        out[w, o + 1] = q[4]
        out[w, o + 2] = energy
        out[w, o + 3] = ent
        out[w, o + 4] = q[3] - q[1]
        out[w, o + 5] = m4 / (m2 * m2) if m2 != 0 else 0.0
        out[w, o + 6] = xs[S - 1]
        out[w, o + 7] = mean
        out[w, o + 8] = mad / S
        out[w, o + 9] = q[2]
        out[w, o + 10] = xs[0]
        out[w, o + 11] = xs[S - 1] - xs[0]
        out[w, o + 12] = rmad / sub_n
        out[w, o + 13] = np.sqrt(energy / S)
        out[w, o + 14] = m3 / m2 ** 1.5 if m2 != 0 else 0.0
        out[w, o + 15] = energy * 1.0  # unit spacing: 1 mm^3 per voxel
        out[w, o + 16] = uni
        out[w, o + 17] = m2

        # ---- GLCM: symmetric, 4 in-plane angles, features averaged over angles
        o = 18
        P[:, :m, :m] = 0.0
        for t in range(pair_from.size):
            a, i, j = pair_dir[t], r[pair_from[t]], r[pair_to[t]]
            P[a, i, j] += 1.0
            P[a, j, i] += 1.0
        f[:] = 0.0
        n_imc2 = 0
        n_mcc = 0
        for a in range(4):
            tot = 0.0
            for i in range(m):
                for j in range(m):
                    tot += P[a, i, j]
            for i in range(m):
                for j in range(m):
                    P[a, i, j] /= tot
            ux = uy = 0.0
            for i in range(m):
                px[i] = 0.0
                py[i] = 0.0
            for i in range(m):
                for j in range(m):
                    px[i] += P[a, i, j]
                    py[j] += P[a, i, j]
                    ux += lv[i] * P[a, i, j]
                    uy += lv[j] * P[a, i, j]
            for i in range(m):
                # log2(px py + eps) = log2 px + log2 py to 1e-12 (px, py >= 1/40 when present)
                lpx[i] = np.log2(px[i]) if px[i] > 0 else 0.0
                lpy[i] = np.log2(py[i]) if py[i] > 0 else 0.0
            kbuf[: 3 * ng + 2] = 0.0  # [0, 2ng]: sums i+j ; [2ng+1, 3ng+1): differences |i-j|
            dbase = 2 * ng + 1
            ac = cp = cs = ct = con = sx = sy = cm = je = hxy = hxy1 = hxy2 = mp = ss = 0.0
            for i in range(m):
                for j in range(m):
                    p = P[a, i, j]
                    li, lj = lv[i], lv[j]
                    pxy = px[i] * py[j]
                    if pxy > 0:
                        hxy2 -= pxy * (lpx[i] + lpy[j])
                    if p == 0.0:
                        continue
                    hxy1 -= p * (lpx[i] + lpy[j])
                    e = li + lj - ux - uy
                    ac += p * li * lj
                    cp += p * e ** 4
                    cs += p * e ** 3
                    ct += p * e * e
                    con += p * (li - lj) ** 2
                    sx += p * (li - ux) ** 2
                    sy += p * (lj - uy) ** 2
                    cm += p * (li - ux) * (lj - uy)
                    je += p * p
                    hxy -= p * np.log2(p)  # no eps: consistent with hxy2 below (Imc2 of flat windows)
                    mp = max(mp, p)
                    kbuf[int(li + lj)] += p
                    kbuf[dbase + int(abs(li - lj))] += p
            ss = sx
            sig = np.sqrt(sx) * np.sqrt(sy)
            corr = 1.0 if sig == 0 else cm / (sig + EPS)
            da = de = dv = idm = idmn = idv = idn = iv = 0.0
            for k in range(ng):
                pk = kbuf[dbase + k]
                da += k * pk
            for k in range(ng):
                pk = kbuf[dbase + k]
                if pk == 0.0:
                    continue
                de -= pk * np.log2(pk + EPS)
                dv += pk * (k - da) ** 2
                idm += pk / (1.0 + k * k)
                idmn += pk / (1.0 + k * k / (ngf * ngf))
                idv += pk / (1.0 + k)
                idn += pk / (1.0 + k / ngf)
                if k > 0:
                    iv += pk / (k * k)
            sa = se = 0.0
            for k in range(2 * ng + 1):
                pk = kbuf[k]
                if pk == 0.0:
                    continue
                sa += k * pk
                se -= pk * np.log2(pk + EPS)
            hx = hy = 0.0
            for i in range(m):
                hx -= px[i] * lpx[i]
                hy -= py[i] * lpy[i]
            div = max(hx, hy)
            imc1 = (hxy - hxy1) / div if div != 0 else 0.0
            if hxy2 == hxy:
                imc2 = 0.0
            else:
                imc2 = np.sqrt(1.0 - np.exp(-2.0 * (hxy2 - hxy)))
            if not np.isnan(imc2):
                f[14] += imc2
                n_imc2 += 1
            # MCC: Q = D^-1 P D^-1 P is similar to S^2, S = D^-1/2 P D^-1/2 symmetric;
            # sqrt(second largest eigenvalue of Q) = second largest |eigenvalue of S|.
            if m >= 2:
                for i in range(m):
                    vsq[i] = np.sqrt(px[i])
                for i in range(m):
                    for j in range(m):
                        den = vsq[i] * vsq[j]  # 0 for a level absent along this angle
                        A[i, j] = P[a, i, j] / den if den > 0 else 0.0
                f[19] += _second_eigen_magnitude(A, m, vsq, work)
                n_mcc += 1
            f[0] += ac
            f[1] += cp
            f[2] += cs
            f[3] += ct
            f[4] += con
            f[5] += corr
            f[6] += da
            f[7] += de
            f[8] += dv
            f[9] += idv
            f[10] += idm
            f[11] += idmn
            f[12] += idn
            f[13] += imc1
            f[15] += iv
            f[16] += ux
            f[17] += je
            f[18] += hxy
            f[20] += mp
            f[21] += sa
            f[22] += se
            f[23] += ss
        for k in range(24):
            out[w, o + k] = f[k] / 4.0
        out[w, o + 14] = f[14] / n_imc2 if n_imc2 else np.nan
        out[w, o + 19] = f[19] / n_mcc if m >= 2 else 1.0

        # ---- GLRLM: runs along the same 4 directions, averaged over angles
        o = 56
        f[:16] = 0.0
        for a in range(4):
            Pr[:m, :] = 0.0
            cur_len = 0
            cur_rank = 0
            prev = -1
            for t in range(run_bounds[a], run_bounds[a + 1]):
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
            Nr = _total(Pr, m, side)
            st = _size_matrix(Pr, m, side, lv, Nr, mpg, mps)
            f[0] += st[2]
            f[1] += st[3]
            f[2] += st[6]
            f[3] += st[10]
            f[4] += st[1]
            f[5] += st[14]
            f[6] += st[13]
            f[7] += st[9]
            f[8] += st[8]
            f[9] += st[4]
            f[10] += st[5]
            f[11] += Nr / st[15]
            f[12] += st[7]
            f[13] += st[0]
            f[14] += st[12]
            f[15] += st[11]
        for k in range(16):
            out[w, o + k] = f[k] / 4.0

        # ---- GLSZM: 8-connected zones of equal level
        o = 72
        Pz[:m, :] = 0.0
        lab[:] = -1
        nz = 0.0
        zmax = 0
        for c0 in range(S):
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
        st = _size_matrix(Pz, m, zmax, lv, nz, mpg, mps)
        out[w, o + 0] = st[2]
        out[w, o + 1] = st[3]
        out[w, o + 2] = st[6]
        out[w, o + 3] = st[10]
        out[w, o + 4] = st[1]
        out[w, o + 5] = st[14]
        out[w, o + 6] = st[13]
        out[w, o + 7] = st[9]
        out[w, o + 8] = st[4]
        out[w, o + 9] = st[5]
        out[w, o + 10] = st[0]
        out[w, o + 11] = st[12]
        out[w, o + 12] = st[11]
        out[w, o + 13] = st[8]
        out[w, o + 14] = nz / st[15]
        out[w, o + 15] = st[7]

        # ---- GLDM (alpha 0) and NGTDM: the 8-neighbourhood of each cell
        Pd[:m, :] = 0.0
        s_i[:m] = 0.0
        dmax = 0
        for c in range(S):
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
        st = _size_matrix(Pd, m, dmax + 1, lv, float(S), mpg, mps)
        o = 42
        out[w, o + 0] = st[8]
        out[w, o + 1] = st[4]
        out[w, o + 2] = st[5]
        out[w, o + 3] = st[7]
        out[w, o + 4] = st[2]
        out[w, o + 5] = st[6]
        out[w, o + 6] = st[10]
        out[w, o + 7] = st[1]
        out[w, o + 8] = st[14]
        out[w, o + 9] = st[13]
        out[w, o + 10] = st[9]
        out[w, o + 11] = st[0]
        out[w, o + 12] = st[12]
        out[w, o + 13] = st[11]

        o = 88
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
        out[w, o + 0] = coarse / absdiff if absdiff != 0 else 0.0
        out[w, o + 1] = 1.0 / coarse if coarse != 0 else 1e6
        out[w, o + 2] = complexity / S
        out[w, o + 3] = contrast * sum_s / S / (m * (m - 1)) if m > 1 else 0.0
        out[w, o + 4] = strength / sum_s if sum_s != 0 else 0.0


@njit(cache=True, error_model="numpy")
def _total(P, m, J):
    t = 0.0
    for i in range(m):
        for j in range(J):
            t += P[i, j]
    return t


def window_features(values: np.ndarray, window: int = 2, bin_width: float = 25.0,
                    classes=FEATURE_CLASSES) -> np.ndarray:
    """Features of windows given as rows of raw values, shape (n, (2w+1)^2) -> (n, F).

    Columns follow :func:`feature_columns` (``classes`` in the given order).
    """
    geo = _geometry(window)
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != geo.cells:
        raise ValueError(f"expected windows of {geo.cells} values, got shape {values.shape}")
    unknown = set(classes) - set(FEATURE_CLASSES)
    if unknown:
        raise ValueError(f"unknown feature classes {sorted(unknown)}; known: {list(FEATURE_CLASSES)}")
    if not np.isfinite(values).all():
        raise ValueError("windows hold NaN or infinite values")
    full = np.empty((values.shape[0], N_FEATURES))
    _window_kernel(values, float(bin_width), geo.side, geo.pair_from, geo.pair_to, geo.pair_dir,
                   geo.run_order, geo.run_start, geo.run_bounds, geo.nb_ptr, geo.nb_list, geo.max_neighbours, full)
    cols = [_OFFSETS[c] + _KERNEL_ORDER[c].index(f) for c in classes for f in FEATURE_NAMES[c]]
    return full[:, cols]

def local_features(slice_hu: np.ndarray, slice_mask: np.ndarray, window: int = 2, bin_width: float = 25.0,
                   classes=FEATURE_CLASSES, border: str = "edge") -> pd.DataFrame:
    """pyradiomics features of the window around every tumour pixel of a 2D slice.

    One row per tumour pixel in row-major order of the slice (index: ``row``, ``col``),
    one column per feature, named as pyradiomics names them.
    """
    slice_hu = np.asarray(slice_hu)
    mask = np.asarray(slice_mask).astype(bool)
    if slice_hu.ndim != 2 or slice_hu.shape != mask.shape:
        raise ValueError(f"need a 2D slice and a mask of the same shape, got {slice_hu.shape} and {mask.shape}")
    rows, cols = np.nonzero(mask)
    values = window_stack(slice_hu, (rows, cols), window, border)
    data = window_features(values, window, bin_width, classes)
    index = pd.MultiIndex.from_arrays([rows, cols], names=["row", "col"])
    return pd.DataFrame(data, index=index, columns=feature_columns(classes))


# --------------------------------------------------------------------------- reference


def reference_extractor(bin_width: float = 25.0, classes=FEATURE_CLASSES):
    """pyradiomics' extractor as the published method uses it: defaults, original image."""
    import logging

    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=bin_width, additionalInfo=False)
    extractor.disableAllFeatures()
    for c in classes:
        extractor.enableFeatureClassByName(c)
    return extractor


def reference_window_features(values: np.ndarray, window: int = 2, bin_width: float = 25.0,
                              classes=FEATURE_CLASSES, extractor=None) -> np.ndarray:
    """The slow path: pyradiomics on each window alone, as a 1-slice volume of unit spacing."""
    import SimpleITK as sitk

    extractor = extractor or reference_extractor(bin_width, classes)
    s = 2 * window + 1
    mask = sitk.GetImageFromArray(np.ones((1, s, s), dtype=np.uint8))
    names = feature_columns(classes)
    out = np.empty((len(values), len(names)))
    for k, row in enumerate(np.asarray(values, dtype=np.float64)):
        image = sitk.GetImageFromArray(row.reshape(1, s, s))
        result = extractor.execute(image, mask)
        out[k] = [float(result[name]) for name in names]
    return out


def reference_local_features(slice_hu: np.ndarray, slice_mask: np.ndarray, window: int = 2,
                             bin_width: float = 25.0, classes=FEATURE_CLASSES,
                             border: str = "edge") -> pd.DataFrame:
    """:func:`local_features` computed by calling pyradiomics once per tumour pixel."""
    mask = np.asarray(slice_mask).astype(bool)
    rows, cols = np.nonzero(mask)
    values = window_stack(slice_hu, (rows, cols), window, border)
    data = reference_window_features(values, window, bin_width, classes)
    index = pd.MultiIndex.from_arrays([rows, cols], names=["row", "col"])
    return pd.DataFrame(data, index=index, columns=feature_columns(classes))
