"""The demo generator's outcome model, apart from its images: what the survival stage needs to
score the true model (Tables S4 and S5's reference row) without importing the image
generator."""

from __future__ import annotations

import numpy as np

# Time to DM: Weibull baseline (months) under proportional hazards.
WEIBULL_SHAPE, WEIBULL_SCALE_MONTHS = 1.1, 200.0


def true_cumulative_hazard(times) -> np.ndarray:
    """The generator's baseline cumulative hazard of DM, H0(t) = (t / scale)^shape (Weibull)."""
    return (np.asarray(times, dtype=float) / WEIBULL_SCALE_MONTHS) ** WEIBULL_SHAPE


def true_survival(linear_predictor, times) -> np.ndarray:
    """The generator's DM-free survival S(t) = exp(-H0(t) exp(lp)) of patients with these
    true linear predictors (``truth.tsv``), shape (patients, times)."""
    lp = np.asarray(linear_predictor, dtype=float)
    return np.exp(-np.outer(np.exp(lp), true_cumulative_hazard(times)))
