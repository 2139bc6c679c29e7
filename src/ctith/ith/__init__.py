"""Intratumoral heterogeneity (Appendix 6): habitats and the ITH score.

- ``local_radiomics``: pyradiomics' features of every pixel's window, in one compiled pass;
- ``habitats``: the habitats (k-means per K), the ITH score, the noise-robust variants and
  the habitat figures (Figures S2 and S6).
"""
