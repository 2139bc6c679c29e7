"""Two finished runs of one cohort that differ in how the network is trained (fold nets, epochs,
threads): does the science move?

Prints, for each run:
- the DL_E and DL_F survival models' C-index and DM AUC per cohort, with their bootstrap
  95% CIs (``results/cohort/survival/metrics.tsv``), and the second run minus the first;
- the one-scale check of each signature that feeds a survival model: the SD of the training
  patients' out-of-fold scores against the SD of the validation patients' refit scores, and
  their ratio (within 0.8-1.25: one scale, as ``test_out_of_fold_and_validation_scores_share_one_scale``
  asks of the Rad-score);
- each net's kept epoch and the epochs it ran, and the training epochs in all;
and draws both runs' loss curves (refit bold, fold nets faint) into ``--figure``.

    python tests/benchmarks/compare_dl_runs.py RUN_BEFORE RUN_AFTER [--figure curves.png]
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from compare_dl_precision import loss_figure, print_metrics, two_runs

SIGNATURES = {"DL_E logit": ("dl_e.tsv", "dl_e_logit"), "DL_E": ("dl_e.tsv", "dl_e_score"),
              "DL_F": ("dl_f_signature.tsv", "dl_f_score")}


def one_scale(results: Path) -> dict:
    """name -> (out-of-fold SD, validation SD, ratio), population SDs."""
    out = {}
    for name, (file, column) in SIGNATURES.items():
        t = pd.read_csv(results / "cohort" / file, sep="\t")
        if column not in t:  # a run from before DL_E's score
            continue
        oof = t.loc[t["fit"] == "oof", column].std(ddof=0)
        val = t.loc[t["fit"] == "refit", column].std(ddof=0)
        out[name] = (oof, val, oof / val)
    return out


def epochs(results: Path) -> pd.DataFrame:
    rows = []
    for folder in sorted((results / "cohort/dl").iterdir()):
        if (folder / "training.json").exists():
            info = json.loads((folder / "training.json").read_text())
            rows.append({"net": folder.name, "kept": info["best_epoch"], "ran": info["epochs_run"],
                         "fit_patients": info["n_fit"]})
    return pd.DataFrame(rows)


def main() -> None:
    args, runs, metrics = two_runs(__doc__.splitlines()[0], "before", "after")
    print_metrics(metrics, "before", "after")
    print("\nOne scale: SD of the out-of-fold scores (training) and of the refit's (validation)")
    for k, r in runs.items():
        for name, (oof, val, ratio) in one_scale(r).items():
            flag = "" if 0.8 <= ratio <= 1.25 else "  <- outside 0.8-1.25"
            print(f"{k:<7}{name:<11} out-of-fold {oof:.3f}  validation {val:.3f}  ratio {ratio:.2f}{flag}")
    print("\nEpochs (kept / ran) per net:")
    for k, r in runs.items():
        e = epochs(r)
        print(f"{k:<7}" + ", ".join(f"{n} {kept}/{ran}" for n, kept, ran in e[["net", "kept", "ran"]].itertuples(
            index=False)) + f"; {int(e['ran'].sum())} epochs in all, fit patients {sorted(set(e['fit_patients']))}")
    if args.figure:
        loss_figure({"before": runs["before"], "after": runs["after"]}, args.figure,
                    title="Refit (bold) and fold nets (faint), before and after")
        print(f"\nloss curves: {args.figure}")


if __name__ == "__main__":
    main()
