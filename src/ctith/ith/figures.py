"""Figures of the ITH stage: Figure S2 (one patient's habitat maps for each K with their
scores), Figure S6 (two patients side by side) and Figure S6's choice of the two patients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .habitats import ITHResult


CT_WINDOW = (40.0, 400.0)  # abdominal level / width for display


def _show_ct(ax, image, mask=None):
    level, width = CT_WINDOW
    ax.imshow(image, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, interpolation="nearest")
    if mask is not None:
        ax.contour(mask.astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_map(ax, image, label_map, k, score):
    import matplotlib.pyplot as plt

    _show_ct(ax, image)
    shown = np.ma.masked_equal(label_map, 0)
    ax.imshow(shown, cmap=plt.get_cmap("tab10", 10), vmin=0.5, vmax=10.5, interpolation="nearest", alpha=0.85)
    ax.set_title(f"K = {k}\nITH = {score:.3f}" if np.isfinite(score) else f"K = {k}\nITH = n/a", fontsize=8)


def habitat_figure(result: ITHResult, clusters, title: str = ""):
    """Figure S2: the tumour slice, its mask and the habitat maps for each K with scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 2 + len(clusters)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.7 * rows), squeeze=False)
    axes = axes.ravel()
    _show_ct(axes[0], result.image)
    axes[0].set_title(f"CT, slice {result.info.get('slice_index')}", fontsize=8)
    _show_ct(axes[1], result.image, result.mask)
    axes[1].set_title(f"tumour ({int(result.mask.sum())} px)", fontsize=8)
    for ax, k in zip(axes[2:], clusters):
        if k in result.maps:
            _show_map(ax, result.image, result.maps[k], k, result.scores[k])
        else:
            _show_ct(ax, result.image, result.mask)
            ax.set_title(f"K = {k}\ntoo few pixels", fontsize=8)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def comparison_figure(patients: list[dict], clusters, note: str = ""):
    """Figure S6: two patients, tumour and habitat maps for each K with their ITH scores.

    ``patients``: dicts with ``image``, ``mask``, ``maps`` (K -> map), ``scores`` and a
    ``label`` for the row. ``note``: how the pair was chosen, printed under the maps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + len(clusters)
    fig = plt.figure(figsize=(1.9 * cols, 2.6 * len(patients) + 0.35 * bool(note)), layout="constrained")
    heights = [1.0] * len(patients) + ([0.35 / 2.6] if note else [])
    parts = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    for part, p in zip(parts, patients):
        part.suptitle(p["label"], x=0.005, ha="left", fontsize=8)
        row = part.subplots(1, cols)
        _show_ct(row[0], p["image"], p["mask"])
        row[0].set_title("tumour\n(outline: mask)", fontsize=8)
        for ax, k in zip(row[1:], clusters):
            if k in p["maps"]:
                _show_map(ax, p["image"], p["maps"][k], k, p["scores"].get(k, float("nan")))
            else:
                _show_ct(ax, p["image"], p["mask"])
                ax.set_title(f"K = {k}\nn/a", fontsize=8)
    if note:
        parts[-1].text(0.005, 0.5, note, fontsize=7, va="center", ha="left", wrap=True)
    return fig


# Figure S6's pair shares these clinical traits (the paper: same pathological type, sex,
# clinical T and N stage), dropped from the end when no pair shares them all.
MATCH_TRAITS = ("histology", "sex", "t_stage", "n_stage")


TRAIT_NAMES = {"histology": "histology", "sex": "sex", "t_stage": "T stage", "n_stage": "N stage"}


VALIDATION = ("internal_validation", "external_validation")


def _pairs(low: pd.DataFrame, high: pd.DataFrame, traits, max_age_gap) -> pd.DataFrame:
    pairs = low.reset_index().merge(high.reset_index(), how="cross", suffixes=("_a", "_b"))
    pairs = pairs[pairs["patient_id_a"] != pairs["patient_id_b"]]
    for t in traits:
        pairs = pairs[pairs[f"{t}_a"].notna() & (pairs[f"{t}_a"].astype(str) == pairs[f"{t}_b"].astype(str))]
    pairs = pairs.assign(age_gap=(pairs["age_a"] - pairs["age_b"]).abs(),
                         prob_gap=pairs["probability_b"] - pairs["probability_a"])
    if max_age_gap is not None:
        pairs = pairs[pairs["age_gap"] <= max_age_gap]
    return pairs.sort_values(["age_gap", "prob_gap", "patient_id_a", "patient_id_b"],
                             ascending=[True, False, True, True], na_position="last")


def pick_matched_pair(predictions: pd.DataFrame, clinical: pd.DataFrame, max_age_gap: float = 5.0) -> dict:
    """Figure S6's two patients, picked as the paper shows them: patient A predicted low
    risk by the ITH model and free of DM, patient B predicted high risk and with DM, of the
    same histology, sex, clinical T and N stage, their ages at most ``max_age_gap`` years
    apart.

    ``predictions``: the ITH model's ``predictions.tsv`` (patient_id, cohort, probability,
    predicted); ``clinical``: canonical columns (age, dm_event and ``MATCH_TRAITS``) by
    patient. Validation patients come first (training patients' predictions are in
    sample); among the pairs, the closest in age, then the widest apart in probability,
    then by ID. Where no pair qualifies, the traits are dropped from the end of
    ``MATCH_TRAITS``, then the age limit; with no patient predicted low risk without DM
    (or high with DM), the lowest- and highest-probability patients without and with DM
    stand in. Returns ``low``, ``high``, ``how`` (a sentence for the figure) and ``pairs``
    (how many pairs qualified at the chosen step)."""
    data = predictions.set_index("patient_id")[["cohort", "probability", "predicted"]].join(
        clinical[["age", "dm_event", *MATCH_TRAITS]], how="inner")
    for c in ("age", "dm_event", "probability", "predicted"):
        data[c] = pd.to_numeric(data[c], errors="coerce")
    data = data[data["dm_event"].notna() & data["probability"].notna()]
    if len(data) < 2:
        raise ValueError("Figure S6 needs at least two patients with ITH model predictions and a DM status")
    low = data[(data["predicted"] == 0) & (data["dm_event"] == 0)]
    high = data[(data["predicted"] == 1) & (data["dm_event"] == 1)]
    what = "predicted low risk without DM beside predicted high risk with DM"
    if not len(low) or not len(high):
        no_dm, dm = data[data["dm_event"] == 0], data[data["dm_event"] == 1]
        if len(no_dm) and len(dm):
            low, high = no_dm.nsmallest(1, "probability"), dm.nlargest(1, "probability")
            what = "no patient predicted low risk without DM and high risk with DM: the lowest-probability " \
                   "patient without DM beside the highest-probability patient with DM"
        else:
            low, high = data.nsmallest(1, "probability"), data.nlargest(1, "probability")
            what = "one DM status only: the lowest- and highest-probability patients"
    steps = [(MATCH_TRAITS[:n], max_age_gap) for n in range(len(MATCH_TRAITS), -1, -1)]
    steps.append(((), None))
    for traits, gap in steps:
        for pool, where in ((VALIDATION, "validation cohorts"), (None, "all cohorts")):
            a = low if pool is None else low[low["cohort"].isin(pool)]
            b = high if pool is None else high[high["cohort"].isin(pool)]
            pairs = _pairs(a, b, traits, gap)
            if len(pairs):
                best = pairs.iloc[0]
                same = ", ".join(TRAIT_NAMES[t] for t in traits) or "no trait"
                age = f"ages within {gap:g} years" if gap is not None else "closest ages (none within the limit)"
                how = (f"Pair chosen from the {where} by the ITH model: {what}; same {same}, {age} "
                       f"({len(pairs)} such pair{'s' if len(pairs) > 1 else ''}; the closest in age, then the "
                       "widest apart in probability)")
                return {"low": str(best["patient_id_a"]), "high": str(best["patient_id_b"]), "how": how,
                        "pairs": int(len(pairs)), "traits": list(traits), "max_age_gap": gap, "pool": where}
    raise AssertionError("unreachable: the last step pairs any two patients")
