# The feature ICC between readers: the filter C-radiomics is fitted with.
rule reproducibility:
    input:
        reader1=f"{ICC_TABLES}/radiomics_features.tsv",
        reader2=f"{ICC_TABLES}/radiomics_features_reader2.tsv",
        repeat=[f"{ICC_TABLES}/radiomics_features_reader1_repeat.tsv"] if ICC_REPEATS else [],
        split=TRAIN_SHEETS["split"] if ICC_TABLES.endswith("train") else "results/cohort/split.tsv",
    output:
        icc=report(
            "results/cohort/radiomics_icc.tsv",
            caption="../report/radiomics_icc.rst",
            category="4. C-radiomics",
        ),
        summary=report(
            "results/tables/feature_icc.tsv",
            caption="../report/feature_icc.rst",
            category="4. C-radiomics",
        ),
    params:
        form=config["reproducibility"]["icc_form"],
        threshold=config["reproducibility"]["icc_threshold"] if config["reproducibility"]["icc_threshold"] is not None else "none",
        cohorts=config["reproducibility"]["icc_cohorts"],
        min_patients=config["reproducibility"]["min_patients"],
        repeat=lambda wildcards, input: f"--reader1-repeat {input.repeat}" if input.repeat else "",
    resources:
        mem_mb=1000,
    log:
        "results/logs/reproducibility.log",
    benchmark:
        "results/benchmarks/reproducibility.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith reproducibility --reader1 {input.reader1} --reader2 {input.reader2} {params.repeat}"
        " --split {input.split} --cohorts {params.cohorts} --icc-form '{params.form}'"
        " --icc-threshold {params.threshold} --min-patients {params.min_patients}"
        " --out-icc {output.icc} --out-summary {output.summary} > {log} 2>&1"


# Table S3: the two readers' agreement on the semantic ratings, over the eligible patients.
rule table_s3:
    input:
        eligible="results/cohort/eligible.tsv",
        clinical=STUDY_SHEETS["clinical"],
    output:
        table_s3=report(
            "results/tables/table_s3.tsv",
            caption="../report/table_s3.rst",
            category="3. Semantic features",
        ),
        table_s3_md="results/tables/table_s3.md",
        table_s3_values="results/cohort/table_s3_values.tsv",
    params:
        clinical=clinical_options(),
        form=config["reproducibility"]["icc_form"],
        s3_items=shlex.quote(json.dumps(config["reproducibility"]["table_s3"])),
    resources:
        mem_mb=1000,
    log:
        "results/logs/table_s3.log",
    benchmark:
        "results/benchmarks/table_s3.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith reproducibility --eligible {input.eligible} {params.clinical} --icc-form '{params.form}'"
        " --table-s3-items {params.s3_items} --out-table-s3 {output.table_s3}"
        " --out-table-s3-md {output.table_s3_md} --out-table-s3-values {output.table_s3_values} > {log} 2>&1"
