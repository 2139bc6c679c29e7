"""Does the precision move the science? Two finished runs of one cohort, trained in fp32 and bf16.

Prints, for each run:
- the DL_E and DL_F survival models' C-index and DM AUC per cohort, with their bootstrap
  95% CIs (``results/cohort/survival/metrics.tsv``);
- the kept epoch of the refit and of the ten fold nets;
- the spread across the ten fold nets: each fold net scores the validation cohorts, and
  its DL_E's AUC and C-index per cohort are taken; their SD and range are what training
  on nine tenths of the same patients moves the score by;
and the bf16 - fp32 difference of each refit metric beside that spread. Draws the refit's
loss curves of both runs overlaid (and every fold net's, faint) into ``--figure``.

    python tests/benchmarks/compare_dl_precision.py RUN_FP32 RUN_BF16 [--figure curves.png]

RUN_* are working directories holding ``results/`` (the second run may be a copy of the
first, rerun with ``--config dl='{precision: bf16}'``-style overrides).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored

from ctith.dl import training as dl

VALIDATION = ("internal_validation", "external_validation")
COHORTS = ("train", "internal_validation", "external_validation")


def survival_metrics(results: Path) -> pd.DataFrame:
    m = pd.read_csv(results / "cohort/survival/metrics.tsv", sep="\t")
    m = m[m["model"].isin(["DL_E", "DL_F"]) & m["metric"].isin(["c_index", "auc_dm"]) & m["cohort"].isin(COHORTS)]
    return m.set_index(["model", "metric", "cohort"])[["value", "ci_low", "ci_high"]]


def print_metrics(metrics: dict, first: str, second: str) -> None:
    """Each run's DL_E and DL_F metrics side by side, and the second minus the first."""
    print(f"DL_E and DL_F survival models (value, bootstrap 95% CI), and {second} - {first}:")
    print(f"{'model':<6}{'metric':<9}{'cohort':<21}{first:>22}{second:>22}{'diff':>8}")
    for key in metrics[first].index:
        a, b = metrics[first].loc[key], metrics[second].loc[key]
        print(f"{key[0]:<6}{key[1]:<9}{key[2]:<21}"
              + "".join(f"{m['value']:>8.3f} ({m['ci_low']:.3f}-{m['ci_high']:.3f})" for m in (a, b))
              + f"{b['value'] - a['value']:>+8.3f}")


def outcomes(results: Path) -> pd.DataFrame:
    clinical = pd.read_csv(results / "cohort/study/clinical.tsv", sep="\t", dtype={"patient_id": str})
    split = pd.read_csv(results / "cohort/split.tsv", sep="\t", dtype={"patient_id": str})
    out = clinical.set_index("patient_id")[["dm_event", "dm_time_months"]].join(split.set_index("patient_id")["cohort"])
    return out.dropna(subset=["cohort"])


def scores(y: pd.DataFrame, risk: np.ndarray) -> dict:
    event = y["dm_event"].to_numpy(int)
    c = concordance_index_censored(event.astype(bool), y["dm_time_months"].to_numpy(float), risk)[0]
    return {"auc_dm": roc_auc_score(event, risk), "c_index": c}


def fold_net_spread(results: Path) -> tuple[pd.DataFrame, list[int]]:
    """Each fold net's DL_E on the validation cohorts: AUC and C-index per (fold, cohort)."""
    y = outcomes(results)
    rows, kept = [], []
    for folder in sorted((results / "cohort/dl").glob("fold[0-9]*"), key=lambda p: int(p.name[4:])):
        info = json.loads((folder / "training.json").read_text())
        kept.append(info["best_epoch"])
        net = dl.load_model(folder / "model.pt", dl.TrainParams(**info["params"]))
        for cohort in VALIDATION:
            ids = y.index[y["cohort"] == cohort]
            images = np.stack([np.load(results / "patients" / pid / "dl/input.npy") for pid in ids])
            prob, _ = dl.predict(net, images)
            rows.append({"fold": folder.name, "cohort": cohort, **scores(y.loc[ids], prob)})
    return pd.DataFrame(rows), kept


def loss_figure(runs: dict, path: Path,
                title: str = "Refit (bold) and the ten fold nets (faint) trained in each precision") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for (label, results), color in zip(runs.items(), ("#1f77b4", "#d62728")):
        for folder in sorted((results / "cohort/dl").glob("fold[0-9]*")):
            loss = pd.read_csv(folder / "loss.tsv", sep="\t")
            for ax, column in zip(axes, ("train_loss", "val_loss")):
                ax.plot(loss["epoch"], loss[column], color=color, alpha=0.15, lw=0.8)
        loss = pd.read_csv(results / "cohort/dl/refit/loss.tsv", sep="\t")
        kept = json.loads((results / "cohort/dl/refit/training.json").read_text())["best_epoch"]
        for ax, column in zip(axes, ("train_loss", "val_loss")):
            ax.plot(loss["epoch"], loss[column], color=color, lw=2, label=f"{label} refit (kept epoch {kept})")
            ax.axvline(kept, color=color, ls=":", lw=1)
    for ax, panel in zip(axes, ("training loss", "early-stopping loss (inner split)")):
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel("weighted binary cross-entropy")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def two_runs(description: str, first: str, second: str):
    """The command line of a comparison of two runs: the parsed arguments, the two results
    folders and their DL_E and DL_F metrics, by the names ``first`` and ``second``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument(first, type=Path, help=f"working directory of the {first} run")
    ap.add_argument(second, type=Path, help=f"working directory of the {second} run")
    ap.add_argument("--figure", type=Path, help="the loss curves of both runs, overlaid (PNG)")
    args = ap.parse_args()
    runs = {name: getattr(args, name) / "results" for name in (first, second)}
    return args, runs, {k: survival_metrics(r) for k, r in runs.items()}


def main() -> None:
    args, runs, metrics = two_runs(__doc__.splitlines()[0], "fp32", "bf16")
    for k, r in runs.items():
        precision = json.loads((r / "cohort/dl/refit/training.json").read_text()).get("precision", "fp32")
        assert precision == k, f"{r}: the refit was trained in {precision}, not {k}"
    print_metrics(metrics, "fp32", "bf16")
    print("\nThe ten fold nets' DL_E on the validation cohorts (what training on nine tenths moves):")
    spreads = {}
    for k, r in runs.items():
        table, kept = fold_net_spread(r)
        refit = json.loads((r / "cohort/dl/refit/training.json").read_text())
        print(f"{k}: kept epoch: refit {refit['best_epoch']} of {refit['epochs_run']}; fold nets {kept} "
              f"(median {int(np.median(kept))})")
        spreads[k] = table.groupby("cohort")[["auc_dm", "c_index"]].agg(["mean", "std", "min", "max"])
        print(spreads[k].round(3).to_string())
    print("\nbf16 - fp32 of the refit's DL_E against the fold nets' SD (mean of the two runs):")
    for cohort in VALIDATION:
        for metric in ("auc_dm", "c_index"):
            diff = metrics["bf16"].loc[("DL_E", metric, cohort), "value"] - \
                metrics["fp32"].loc[("DL_E", metric, cohort), "value"]
            sd = np.mean([spreads[k].loc[cohort, (metric, "std")] for k in runs])
            print(f"{cohort:<21}{metric:<9} diff {diff:+.3f}   fold-net SD {sd:.3f}   |diff| / SD {abs(diff) / sd:.2f}")
    if args.figure:
        loss_figure(runs, args.figure)
        print(f"\nloss curves: {args.figure}")


if __name__ == "__main__":
    main()
