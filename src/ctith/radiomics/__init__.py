"""C-radiomics and the semantic features (Appendices 2, 3 and 5).

- ``extraction``: pyradiomics on the venous phase, per patient and per re-delineation;
- ``semantic``: the semantic features measured beside the readers' ratings;
- ``reproducibility``: inter- and intra-reader ICC, the feature filter and Table S3;
- ``harmonize``: ComBat (neuroCombat) by institution or scanner;
- ``selection``: feature selection and the Rad-score (LASSO on the training cohort).
"""
