"""Grey-level co-occurrence features of one window (pyradiomics' glcm.py): symmetric
matrices of the 4 in-plane angles, each angle's features averaged over the angles."""

from __future__ import annotations

import numpy as np
from numba import njit

EPS = np.spacing(1)  # pyradiomics' epsilon inside log2(p + eps)


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



@njit(inline="always", error_model="numpy")
def glcm_counts(P, m, r, pair_from, pair_to, pair_dir):
    """Symmetric co-occurrence counts P[angle, rank i, rank j] of the window's pairs."""
    P[:, :m, :m] = 0.0
    for t in range(pair_from.size):
        a, i, j = pair_dir[t], r[pair_from[t]], r[pair_to[t]]
        P[a, i, j] += 1.0
        P[a, j, i] += 1.0


@njit(inline="always", error_model="numpy")
def _marginals(Pa, m, lv, px, py, lpx, lpy):
    """Normalise one angle's matrix; its marginals, their log2, and the means ux, uy."""
    tot = 0.0
    for i in range(m):
        for j in range(m):
            tot += Pa[i, j]
    for i in range(m):
        for j in range(m):
            Pa[i, j] /= tot
    ux = uy = 0.0
    for i in range(m):
        px[i] = 0.0
        py[i] = 0.0
    for i in range(m):
        for j in range(m):
            px[i] += Pa[i, j]
            py[j] += Pa[i, j]
            ux += lv[i] * Pa[i, j]
            uy += lv[j] * Pa[i, j]
    for i in range(m):
        # log2(px py + eps) = log2 px + log2 py to 1e-12 (px, py >= 1/40 when present)
        lpx[i] = np.log2(px[i]) if px[i] > 0 else 0.0
        lpy[i] = np.log2(py[i]) if py[i] > 0 else 0.0
    return ux, uy


@njit(inline="always", error_model="numpy")
def _joint_sums(Pa, m, lv, px, py, lpx, lpy, ux, uy, kbuf, dbase):
    """The sums over the joint probabilities; p(i+j) and p(|i-j|) into ``kbuf``."""
    ac = cp = cs = ct = con = sx = sy = cm = je = hxy = hxy1 = hxy2 = mp = 0.0
    for i in range(m):
        for j in range(m):
            p = Pa[i, j]
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
            hxy -= p * np.log2(p)  # no eps: consistent with hxy2 (Imc2 of flat windows)
            mp = max(mp, p)
            kbuf[int(li + lj)] += p
            kbuf[dbase + int(abs(li - lj))] += p
    return ac, cp, cs, ct, con, sx, sy, cm, je, hxy, hxy1, hxy2, mp


@njit(inline="always", error_model="numpy")
def _difference_sums(kbuf, dbase, ng):
    """Difference average, entropy and variance, the inverse-difference family, and the
    inverse variance, from p(|i-j|) at ``kbuf[dbase:]``."""
    ngf = float(ng)
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
    return da, de, dv, idm, idmn, idv, idn, iv


@njit(inline="always", error_model="numpy")
def _sum_sums(kbuf, ng):
    """Sum average and sum entropy from p(i+j) at ``kbuf[:2 ng + 1]``."""
    sa = se = 0.0
    for k in range(2 * ng + 1):
        pk = kbuf[k]
        if pk == 0.0:
            continue
        sa += k * pk
        se -= pk * np.log2(pk + EPS)
    return sa, se


@njit(inline="always", error_model="numpy")
def _mcc(Pa, m, px, vsq, A, work):
    """Maximal correlation coefficient of one angle.

    Q = D^-1 P D^-1 P is similar to S^2, S = D^-1/2 P D^-1/2 symmetric, so sqrt(second
    largest eigenvalue of Q) = second largest |eigenvalue of S|.
    """
    for i in range(m):
        vsq[i] = np.sqrt(px[i])
    for i in range(m):
        for j in range(m):
            den = vsq[i] * vsq[j]  # 0 for a level absent along this angle
            A[i, j] = Pa[i, j] / den if den > 0 else 0.0
    return _second_eigen_magnitude(A, m, vsq, work)


@njit(inline="always", error_model="numpy")
def _imc(hx, hy, hxy, hxy1, hxy2):
    """Informational measures of correlation 1 and 2."""
    div = max(hx, hy)
    imc1 = (hxy - hxy1) / div if div != 0 else 0.0
    if hxy2 == hxy:
        imc2 = 0.0
    else:
        imc2 = np.sqrt(1.0 - np.exp(-2.0 * (hxy2 - hxy)))
    return imc1, imc2


@njit(inline="always", error_model="numpy")
def _angle(Pa, m, lv, ng, px, py, lpx, lpy, kbuf, vsq, A, work, f):
    """Add one angle's 24 features to ``f`` (MCC only where m >= 2); return whether Imc2 was
    defined."""
    ux, uy = _marginals(Pa, m, lv, px, py, lpx, lpy)
    kbuf[: 3 * ng + 2] = 0.0  # [0, 2ng]: sums i+j ; [2ng+1, 3ng+1): differences |i-j|
    dbase = 2 * ng + 1
    ac, cp, cs, ct, con, sx, sy, cm, je, hxy, hxy1, hxy2, mp = _joint_sums(Pa, m, lv, px, py, lpx, lpy,
                                                                          ux, uy, kbuf, dbase)
    sig = np.sqrt(sx) * np.sqrt(sy)
    corr = 1.0 if sig == 0 else cm / (sig + EPS)
    da, de, dv, idm, idmn, idv, idn, iv = _difference_sums(kbuf, dbase, ng)
    sa, se = _sum_sums(kbuf, ng)
    hx = hy = 0.0
    for i in range(m):
        hx -= px[i] * lpx[i]
        hy -= py[i] * lpy[i]
    imc1, imc2 = _imc(hx, hy, hxy, hxy1, hxy2)
    has_imc2 = not np.isnan(imc2)
    if has_imc2:
        f[14] += imc2
    if m >= 2:
        f[19] += _mcc(Pa, m, px, vsq, A, work)
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
    f[23] += sx  # SumSquares: pyradiomics' sum of squares is the variance along i
    return has_imc2


@njit(inline="always", error_model="numpy")
def glcm(P, m, lv, ng, px, py, lpx, lpy, kbuf, vsq, A, work, f, out):
    """The 24 GLCM features, averaged over the 4 angles, into ``out`` (``P`` from
    :func:`glcm_counts`; the rest scratch: f of 24, kbuf of at least 3 ng + 2)."""
    f[:] = 0.0
    n_imc2 = 0
    for a in range(4):
        if _angle(P[a], m, lv, ng, px, py, lpx, lpy, kbuf, vsq, A, work, f):
            n_imc2 += 1
    for k in range(24):
        out[k] = f[k] / 4.0
    out[14] = f[14] / n_imc2 if n_imc2 else np.nan
    out[19] = f[19] / 4 if m >= 2 else 1.0
