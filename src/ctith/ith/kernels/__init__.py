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

The helpers are inlined into the pass (numba's ``inline="always"``; called as functions,
they made it about 25% slower than the single kernel they replaced), and their results
are bit-identical to that kernel's; GLCM's eigenvalue routines stay compiled functions of
their own. numba's cache notices a change only in the file of the function
it compiled and freezes the globals it read, so each module uses only its own functions
and constants, and the pass (:mod:`ctith.ith.local_radiomics`), which holds all their
code, records their sources' sha256 in its own file and refuses to run when that record
is out of date. Tests check both.
"""
