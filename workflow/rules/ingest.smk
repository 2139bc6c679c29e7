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


rule qc_table:
    input:
        eligible_files("results/patients/{patient}/qc.json"),
    output:
        report(
            "results/cohort/qc.tsv",
            caption="../report/qc.rst",
            category="1. Cohort and QC",
        ),
    log:
        "results/logs/qc_table.log",
    benchmark:
        "results/benchmarks/qc_table.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith qc-table --qc {input} --out {output} > {log} 2>&1"
