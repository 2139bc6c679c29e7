"""Survival models of time to distant metastasis (the paper's endpoint), Tables S4 and S5.

- ``cox``: the Cox model (Efron ties), fitted and frozen as plain numbers;
- ``clinical``: the clinical variables' encoding and stepwise selection;
- ``penalised``: the penalised (elastic-net) model building for few events per variable;
- ``fitting``: one model fitted on the training cohort and evaluated, frozen, on every cohort;
- ``metrics``: C-index, time-dependent AUC, Brier score, bootstrap CIs, ROC and calibration points;
- ``decision``: decision curves (net benefit at a horizon), as dcurves computes them;
- ``calibration``: calibration intercept and slope, paired differences between models;
- ``optimism``: Harrell's bootstrap optimism correction of the training C-index and slope;
- ``tables``: predictions, metric rows, Tables S4 and S5;
- ``figures``: Kaplan-Meier by risk group, time-dependent ROC, calibration, decision curves.

The demo's generating model, scored like a fitted one, is ``ctith.demo.true_model``.
"""
