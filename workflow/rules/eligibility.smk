rule eligibility:
    input:
        samples=STUDY_SHEETS["samples"],
        clinical=STUDY_SHEETS["clinical"],
    output:
        eligible="results/cohort/eligible.tsv",
        flow=report(
            "results/cohort/eligibility_flow.tsv",
            caption="../report/eligibility_flow.rst",
            category="1. Cohort and QC",
        ),
        flow_md="results/cohort/eligibility_flow.md",
        excluded="results/cohort/excluded.tsv",
    params:
        sheets=sheet_options(),
    resources:
        mem_mb=1000,
    log:
        "results/logs/eligibility.log",
    benchmark:
        "results/benchmarks/eligibility.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith eligibility {params.sheets} --out-dir $(dirname {output.eligible}) > {log} 2>&1"


rule split:
    input:
        samples=STUDY_SHEETS["samples"],
        clinical=STUDY_SHEETS["clinical"],
        eligible="results/cohort/eligible.tsv",
    output:
        report(
            "results/cohort/split.tsv",
            caption="../report/split.rst",
            category="1. Cohort and QC",
        ),
    params:
        sheets=sheet_options(),
        internal=config["split"]["internal_institutions"],
        external=config["split"]["external_institutions"],
        fraction=config["split"]["train_fraction"],
        seed=config["seed"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith split {params.sheets} --eligible {input.eligible} --internal {params.internal:q}"
        " --external {params.external:q} --train-fraction {params.fraction} --seed {params.seed}"
        " --out {output} > {log} 2>&1"


rule crossfit_folds:
    input:
        split=TRAIN_SHEETS["split"],
        clinical=TRAIN_SHEETS["clinical"],
    output:
        report(
            "results/cohort/crossfit_folds.tsv",
            caption="../report/crossfit_folds.rst",
            category="1. Cohort and QC",
        ),
    params:
        clinical=clinical_options(TRAIN_SHEETS["clinical"]),
        folds=config["crossfit"]["folds"],
        seed=config["seed"],
    priority: TRAINING_INPUT_PRIORITY  # the fold nets wait for it
    resources:
        mem_mb=1000,
    log:
        "results/logs/crossfit_folds.log",
    benchmark:
        "results/benchmarks/crossfit_folds.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith crossfit-folds --split {input.split} {params.clinical}"
        " --folds {params.folds} --seed {params.seed} --out {output} > {log} 2>&1"


localrules:
    eligibility,
    split,
    qc_table,
    table_s1,
