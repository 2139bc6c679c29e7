"""Intratumoral heterogeneity (Appendix 6): habitats and the ITH score.

- ``local_radiomics``: pyradiomics' features of every pixel's window, in one compiled pass;
- ``kernels``: that pass's compiled helpers, one module per feature class;
- ``habitats``: the tumour slice (or volume), its scaled features, k-means per K, one
  patient's ITH stage and the cohort's score table;
- ``variants``: the noise-robust variants between the features and k-means (smoothing, PCA);
- ``score``: the ITH score of a label map;
- ``figures``: Figures S2 and S6, and Figure S6's choice of its two patients.
"""
