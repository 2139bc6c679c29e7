"""The cohort: what goes in and who is in it.

- ``sheets``: the sample sheet and clinical table, the config and its overlays, checked at once;
- ``preflight``: what the sheets and config tell before any job (institutions, folds, cohort sizes);
- ``mask_labels``: every mask file read for the label its column asks for (``ctith validate``);
- ``template``: ``ctith template``, the empty sheets and the column guide;
- ``readers``: CT and mask files read and checked (DICOM, NIfTI, NRRD, MHA; label images);
- ``geometry``: canonical orientation, the mask on the image grid, the largest tumour slice;
- ``ingest``: one patient's CT and mask written canonical, with QC, and the cohort's QC table;
- ``table_s1``: each institution's acquisition settings from the DICOM headers;
- ``scan_identity``: one scan filed under two patients;
- ``eligibility``: Appendix 1's criteria;
- ``split``: the cohorts (training, internal and external validation);
- ``crossfit``: the cross-fitting folds every fitted signature shares.
"""
