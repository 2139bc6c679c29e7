rule semantic:
    input:
        unpack(semantic_inputs),
    output:
        "results/patients/{patient}/semantic.json",
    params:
        options=semantic_options,
    priority: PATIENT_PRIORITY
    resources:
        mem_mb=1000,
    log:
        "results/logs/semantic/{patient}.log",
    benchmark:
        "results/benchmarks/semantic/{patient}.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith semantic --image {input.image:q} --mask {input.mask:q} {params.options}"
        " --patient-id {wildcards.patient} --out {output:q} > {log} 2>&1"


rule semantic_table:
    input:
        records=eligible_files("results/patients/{patient}/semantic.json"),
        clinical=STUDY_SHEETS["clinical"],
    output:
        table=report(
            "results/cohort/semantic_features.tsv",
            caption="../report/semantic_features.rst",
            category="3. Semantic features",
        ),
        agreement=report(
            "results/cohort/semantic_agreement.tsv",
            caption="../report/semantic_agreement.rst",
            category="3. Semantic features",
        ),
    params:
        clinical=clinical_options(),
    resources:
        mem_mb=1000,
    log:
        "results/logs/semantic_table.log",
    benchmark:
        "results/benchmarks/semantic_table.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith semantic-table --records {input.records} {params.clinical}"
        " --out-table {output.table} --out-agreement {output.agreement} > {log} 2>&1"
