"""The cohort: what goes in and who is in it.

- ``sheets``: the sample sheet and clinical table, the config and its overlays, checked at once;
- ``preflight``: what the sheets and config tell before any job (institutions, folds, cohort sizes);
- ``mask_labels``: every mask file read for the label its column asks for (``ctith validate``);
- ``template``: ``ctith template``, the empty sheets and the column guide;
- ``ingest``: a CT and its mask read, checked and written canonical, with QC and Table S1;
- ``scan_identity``: one scan filed under two patients;
- ``eligibility``: Appendix 1's criteria;
- ``split``: the cohorts (training, internal and external validation);
- ``crossfit``: the cross-fitting folds every fitted signature shares.
"""
