"""The compiled (numba) helpers of the local-radiomics pass, one module per step, as
pyradiomics splits its feature classes. Each evaluates pyradiomics' formulas on one
window's few present grey levels (pyradiomics deletes absent levels from every matrix,
and zero entries add nothing to its sums).

- ``levels``: the window's grey levels (fixed bin width), sorted values, present levels;
- ``firstorder``: first-order statistics of the window's values;
- ``glcm``: the grey-level co-occurrence matrices of the 4 in-plane angles, with MCC's
  eigenvalue;
- ``size_matrices``: the grey level x size matrices (run lengths, zones, dependences) and
  the statistics GLRLM, GLSZM and GLDM share;
- ``ngtdm``: the neighbourhood grey-tone difference features.

Each module is self-contained: its functions use only functions and constants of the same
file, because numba's cache notices a change only in the file of the function it
compiled (and freezes the globals it read). For the same reason the pass that calls them
(:mod:`ctith.ith.local_radiomics`) records their sources' sha256 in its own file, and
refuses to run when that record is out of date. Tests check both.
"""
