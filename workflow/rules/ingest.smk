rule ingest:
    input:
        unpack(ingest_inputs),
    output:
        image="results/patients/{patient}/image.nii.gz",
        mask="results/patients/{patient}/mask.nii.gz",
        qc="results/patients/{patient}/qc.json",
    params:
        options=ingest_options,
        settings=ingest_settings(),
    priority: training_first(0)
    resources:
        mem_mb=2000,
    log:
        "results/logs/ingest/{patient}.log",
    benchmark:
        "results/benchmarks/ingest/{patient}.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith ingest --image {input.image:q} --mask {input.mask:q}"
        " --out results/patients/{wildcards.patient} --patient-id {wildcards.patient}"
        " {params.settings} {params.options} > {log} 2>&1"


# The cohort QC table, after the check that no scan is filed under two patients (pixel
# digests): an error when the two sit in different cohorts. Every validation metric (the ITH
# models' and the survival models' predictions) waits for it; the fits do not (a new patient would refit them), but a scan
# ingested in an earlier run is checked when the workflow starts (common.smk).
rule qc_table:
    input:
        qc=eligible_files("results/patients/{patient}/qc.json"),
        split="results/cohort/split.tsv",
    output:
        report(
            "results/cohort/qc.tsv",
            caption="../report/qc.rst",
            category="1. Cohort and QC",
        ),
    resources:
        mem_mb=1000,
    log:
        "results/logs/qc_table.log",
    benchmark:
        "results/benchmarks/qc_table.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith qc-table --qc {input.qc} --split {input.split} --out {output} > {log} 2>&1"


rule table_s1:
    input:
        qc=eligible_files("results/patients/{patient}/qc.json"),
        split="results/cohort/split.tsv",
    output:
        table=report(
            "results/tables/table_s1.tsv",
            caption="../report/table_s1.rst",
            category="1. Cohort and QC",
        ),
        md="results/tables/table_s1.md",
    resources:
        mem_mb=1000,
    log:
        "results/logs/table_s1.log",
    benchmark:
        "results/benchmarks/table_s1.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith table-s1 --qc {input.qc} --split {input.split}"
        " --out-table {output.table} --out-md {output.md} > {log} 2>&1"


# Figure S1: reader 1's delineation in 3D, two tumours of one histology (DM and no DM).
rule figure_s1:
    input:
        qc=eligible_files("results/patients/{patient}/qc.json"),
        images=eligible_files("results/patients/{patient}/image.nii.gz"),
        masks=eligible_files("results/patients/{patient}/mask.nii.gz"),
        split="results/cohort/split.tsv",
        clinical=STUDY_SHEETS["clinical"],
    output:
        figure=report(
            "results/figures/figure_s1_delineation.png",
            caption="../report/figure_s1.rst",
            category="1. Cohort and QC",
        ),
        pair="results/cohort/figure_s1_pair.json",
    params:
        clinical=clinical_options(),
    resources:
        mem_mb=1000,
    log:
        "results/logs/figure_s1.log",
    benchmark:
        "results/benchmarks/figure_s1.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith figure-s1 --qc {input.qc} --split {input.split} {params.clinical}"
        " --out-figure {output.figure} --out-pair {output.pair} > {log} 2>&1"
