"""What users see beyond the tables: the report, Figure S1, new patients, failed runs.

- ``thumbnails``: small copies of the per-patient figures for the Snakemake report;
- ``delineation``: Figure S1, two tumours' delineations in 3D;
- ``bundle``: the model bundle and its manifest;
- ``predict``: one new patient scored with the bundle's frozen models;
- ``run_summary``: the one summary of a run's failed jobs.
"""
