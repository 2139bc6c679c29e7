"""ctith: CT intratumoral heterogeneity (ITH) pipeline for retroperitoneal sarcoma.

One module per pipeline stage (``ingest``, ``eligibility``, ``split``, ...), each a set
of pure functions on arrays and frames; ``cli`` turns them into ``ctith <stage>``
subcommands that the Snakemake rules call.
"""

__version__ = "0.1.0"
