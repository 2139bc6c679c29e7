"""ctith: CT intratumoral heterogeneity (ITH) pipeline for retroperitoneal sarcoma.

One package per stage, mirroring ``workflow/rules/`` and ``cli/``: ``cohort`` (sheets,
ingest, eligibility, split, folds), ``ith``, ``radiomics``, ``dl``, ``models`` (the ITH
model, Table S2), ``survival``, ``report`` (report, Figure S1, bundle, prediction) and
``demo``; ``io`` and ``errors`` serve them all. Each module is a set of functions and
estimators on arrays and frames; ``cli`` turns them into the ``ctith <stage>``
subcommands that the Snakemake rules call.
"""

__version__ = "0.1.0"
