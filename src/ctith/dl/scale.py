"""DL_E's scale: the log-odds of a net's probability, standardised by the mean and SD of its
log-odds over the patients it trained on (``training.logit_scale``). Numpy only, so that the
jobs that assemble scores need no torch."""

from __future__ import annotations

import numpy as np


def logit(prob: np.ndarray) -> np.ndarray:
    """DL_E's log-odds (the probability clipped to [1e-6, 1 - 1e-6])."""
    p = np.clip(np.asarray(prob, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def scale_of(prob: np.ndarray) -> dict:
    """``training.logit_scale`` from a net's DL_E probabilities of its training patients."""
    values = logit(prob)
    return {"logit_mean": float(values.mean()), "logit_sd": float(values.std())}


def dl_e_score(prob: np.ndarray, scale: dict) -> np.ndarray:
    """DL_E as a survival covariate: the log-odds standardised by its net's ``logit_scale``."""
    return (logit(prob) - scale["logit_mean"]) / max(scale["logit_sd"], 1e-12)
