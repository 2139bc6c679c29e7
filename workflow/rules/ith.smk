rule ith:
    input:
        image="results/patients/{patient}/image.nii.gz",
        mask="results/patients/{patient}/mask.nii.gz",
    output:
        scores="results/patients/{patient}/ith/scores.json",
        maps="results/patients/{patient}/ith/label_maps.npz",
        # In the report as a thumbnail (rule report_thumbnails).
        figure="results/patients/{patient}/ith/habitats.png",
    params:
        options=ith_options(),
        clusters=config["ith"]["clusters"],
    priority: PATIENT_PRIORITY
    resources:
        mem_mb=1500,
    log:
        "results/logs/ith/{patient}.log",
    benchmark:
        "results/benchmarks/ith/{patient}.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith ith --image {input.image:q} --mask {input.mask:q} --out-dir $(dirname {output.scores:q})"
        " --patient-id {wildcards.patient} --clusters {params.clusters} {params.options} > {log} 2>&1"


rule ith_cohort:
    input:
        scores=eligible_files("results/patients/{patient}/ith/scores.json"),
    output:
        report(
            "results/cohort/ith_scores.tsv",
            caption="../report/ith_scores.rst",
            category="2. ITH habitats",
        ),
    params:
        clusters=config["ith"]["clusters"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/ith_cohort.log",
    benchmark:
        "results/benchmarks/ith_cohort.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith ith-cohort --scores {input.scores} --clusters {params.clusters} --out-table {output} > {log} 2>&1"


# The training patients' ITH scores: all the ITH models' fits read.
rule ith_train_table:
    input:
        scores=train_files("results/patients/{patient}/ith/scores.json"),
    output:
        "results/cohort/train/ith_scores.tsv",
    params:
        clusters=config["ith"]["clusters"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/ith_train_table.log",
    benchmark:
        "results/benchmarks/ith_train_table.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith ith-cohort --scores {input.scores} --clusters {params.clusters} --out-table {output} > {log} 2>&1"
