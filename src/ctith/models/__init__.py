"""The ITH model (Appendix 6) and Table S2.

- ``ith_model``: SMOTE and a random forest tuned by Bayesian optimisation (optuna), SHAP;
- ``forest``: the search's forests, grown without scikit-learn's per-tree overhead;
- ``table_s2``: accuracy and AUC of each ITH model with their uncertainty.
"""
