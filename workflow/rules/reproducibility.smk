rule reproducibility:
    input:
        reader1="results/cohort/radiomics_features.tsv",
        reader2="results/cohort/radiomics_features_reader2.tsv",
        split="results/cohort/split.tsv",
        eligible="results/cohort/eligible.tsv",
        clinical=config["clinical"],
    output:
        icc=report(
            "results/cohort/radiomics_icc.tsv",
            caption="../report/radiomics_icc.rst",
            category="4. C-radiomics",
        ),
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
        threshold=config["reproducibility"]["icc_threshold"] if config["reproducibility"]["icc_threshold"] is not None else "none",
        cohorts=config["reproducibility"]["icc_cohorts"],
        min_patients=config["reproducibility"]["min_patients"],
        s3_items=shlex.quote(json.dumps(config["reproducibility"]["table_s3"])),
    log:
        "results/logs/reproducibility.log",
    benchmark:
        "results/benchmarks/reproducibility.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith reproducibility --reader1 {input.reader1} --reader2 {input.reader2} --split {input.split}"
        " --eligible {input.eligible} {params.clinical} --cohorts {params.cohorts}"
        " --icc-form '{params.form}' --icc-threshold {params.threshold} --min-patients {params.min_patients}"
        " --table-s3-items {params.s3_items} --out-icc {output.icc} --out-table-s3 {output.table_s3}"
        " --out-table-s3-md {output.table_s3_md} --out-table-s3-values {output.table_s3_values} > {log} 2>&1"
