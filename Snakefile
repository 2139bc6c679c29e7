# ctith: CT intratumoral heterogeneity -> distant metastasis of retroperitoneal sarcoma.
# Thin on purpose: config, validation and helpers live in workflow/rules/common.smk,
# one rule file per stage, all logic in the `ctith` package.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/eligibility.smk"
include: "workflow/rules/ith.smk"
include: "workflow/rules/radiomics.smk"
include: "workflow/rules/semantic.smk"
include: "workflow/rules/reproducibility.smk"
include: "workflow/rules/harmonize.smk"
include: "workflow/rules/dl.smk"
include: "workflow/rules/ith_model.smk"


rule all:
    input:
        "results/cohort/qc.tsv",
        "results/cohort/eligible.tsv",
        "results/cohort/eligibility_flow.tsv",
        "results/cohort/split.tsv",
        "results/cohort/ith_scores.tsv",
        "results/figures/figure_s6_ith_comparison.png",
        "results/cohort/semantic_features.tsv",
        "results/tables/table_s3.tsv",
        "results/cohort/radscore.tsv",
        "results/cohort/dl_e.tsv",
        "results/cohort/dl_f.tsv",
        "results/figures/figure_s3_loss_curve.png",
        "results/figures/figure_s5_gradcam.png",
        "results/tables/table_s2.tsv",
        "results/cohort/ith_signature.tsv",
    default_target: True
