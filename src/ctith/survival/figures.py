"""The survival stage's figures: Kaplan-Meier by risk group, time-dependent ROC,
calibration, decision curves, and the linear SHAP values of Figure S4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .cox import surv_array

if TYPE_CHECKING:
    import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def km_risk_groups_figure(panels: list[dict], title: str, ticks=(0, 12, 24, 36, 48, 60, 72, 84)):
    """Kaplan-Meier DM-free survival of the high and low risk groups, one panel per cohort,
    with the log-rank p (scikit-survival's ``compare_survival``) and the numbers at risk.

    ``panels``: dicts with ``cohort``, ``time``, ``event`` and ``group`` ('high'/'low')."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    colours = {"low": "#1f77b4", "high": "#d62728"}
    for ax, p in zip(axes[0], panels):
        time, event, group = np.asarray(p["time"], float), np.asarray(p["event"], bool), np.asarray(p["group"])
        at_risk = {}
        for g in ("low", "high"):
            sel = group == g
            at_risk[g] = [int((time[sel] >= x).sum()) for x in ticks]
            if not sel.any():
                continue
            x, s = kaplan_meier_estimator(event[sel], time[sel])
            ax.step(np.r_[0.0, x], np.r_[1.0, s], where="post", color=colours[g],
                    label=f"{g} risk (n = {sel.sum()}, {int(event[sel].sum())} DM)")
            cens = sel & ~event
            ax.plot(time[cens], np.interp(time[cens], np.r_[0.0, x], np.r_[1.0, s]), "|", color=colours[g], ms=6)
        if len(set(group.tolist())) == 2 and event.any():
            _, pval = compare_survival(surv_array(time, event), group)
            ax.text(0.03, 0.05, f"log-rank p = {pval:.3g}", transform=ax.transAxes)
        ax.set(title=p["cohort"], xlabel="months", ylabel="DM-free survival", ylim=(0, 1.02),
               xlim=(0, ticks[-1]), xticks=ticks)
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        table = ax.table(cellText=[at_risk["high"], at_risk["low"]], rowLabels=["high", "low"],
                         colLabels=None, cellLoc="center", bbox=[0.0, -0.42, 1.0, 0.14], edges="open")
        table.set_fontsize(8)
        ax.text(0.0, -0.27, "at risk", transform=ax.transAxes, fontsize=8)
    fig.suptitle(title)
    fig.subplots_adjust(bottom=0.3, top=0.85, wspace=0.3)
    return fig


def td_roc_figure(curves: list[dict], title: str):
    """Time-dependent ROC curves: one panel per cohort, one line per horizon.
    ``curves``: dicts with ``cohort``, ``horizon``, ``fpr``, ``tpr`` and ``auc``."""
    plt = _pyplot()
    cohorts = list(dict.fromkeys(c["cohort"] for c in curves))
    if not cohorts:  # the validation follow-up supports no horizon: say so rather than draw nothing
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no validation cohort supports a time-dependent ROC at 12, 36 or 60 months\n"
                "(too few events or too short a follow-up)", ha="center", va="center", fontsize=9)
        fig.suptitle(title)
        return fig
    fig, axes = plt.subplots(1, len(cohorts), figsize=(4.2 * len(cohorts), 4.2), squeeze=False)
    for ax, cohort in zip(axes[0], cohorts):
        for c in (c for c in curves if c["cohort"] == cohort):
            ax.step(c["fpr"], c["tpr"], where="post", label=f"{c['horizon']:g} months: AUC {c['auc']:.3f}")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set(title=cohort, xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01),
               aspect="equal")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def calibration_figure(panels: list[dict], title: str):
    """``panels``: dicts with ``cohort``, ``horizon`` and ``points`` (``calibration_points``)."""
    plt = _pyplot()
    cohorts = list(dict.fromkeys(p["cohort"] for p in panels))
    fig, axes = plt.subplots(1, len(cohorts), figsize=(4.2 * len(cohorts), 4.2), squeeze=False)
    for ax, cohort in zip(axes[0], cohorts):
        top = 0.0
        for p in (p for p in panels if p["cohort"] == cohort):
            pr = np.array([q["predicted"] for q in p["points"]])
            ob = np.array([q["observed"] for q in p["points"]])
            ax.plot(pr, ob, "o-", label=f"{p['horizon']:g} months")
            top = max(top, np.nanmax(np.r_[pr, ob, 0.0]))
        lim = min(1.0, top * 1.1 + 0.05)
        ax.plot([0, lim], [0, lim], ls=":", color="grey")
        ax.set(title=cohort, xlabel="predicted probability of DM", ylabel="observed (Kaplan-Meier)",
               xlim=(0, lim), ylim=(0, lim), aspect="equal")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def decision_curve_figure(panels: list[dict], t: float, title: str):
    """``panels``: dicts with ``cohort`` and ``curves`` (``decision_curves``' output)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, p in zip(axes[0], panels):
        d = p["curves"]
        for name, g in d.groupby("model", sort=False):
            style = {"all": dict(color="grey", ls="--"), "none": dict(color="black", ls=":")}.get(name, {})
            label = {"all": "treat all", "none": "treat none"}.get(name, name)
            ax.plot(g["threshold"], g["net_benefit"], label=label, **style)
        nb = d["net_benefit"].to_numpy(dtype=float)
        top = np.nanmax(nb) if np.isfinite(nb).any() else 0.1
        ax.set(title=p["cohort"], xlabel=f"threshold probability of DM by {t:g} months", ylabel="net benefit",
               ylim=(-0.05, max(top * 1.1, 0.05)), xlim=(0, float(d["threshold"].max())))
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def linear_shap(coef, X: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """SHAP values of a Cox model on the log-hazard scale (shap's LinearExplainer with the
    training cohort as background): coef_j * (x_j - mean of x_j in the background)."""
    import shap

    explainer = shap.LinearExplainer((np.asarray(coef, dtype=float), 0.0), background.to_numpy(dtype=float))
    return np.asarray(explainer.shap_values(X.to_numpy(dtype=float)))
