rule radiomics:
    input:
        image="results/patients/{patient}/image.nii.gz",
        mask="results/patients/{patient}/mask.nii.gz",
        params=radiomics_params_file(),
    output:
        features="results/patients/{patient}/radiomics/features.tsv",
        diagnostics="results/patients/{patient}/radiomics/diagnostics.json",
    params:
        options=radiomics_options(),
    priority: PATIENT_PRIORITY
    log:
        "results/logs/radiomics/{patient}.log",
    benchmark:
        "results/benchmarks/radiomics/{patient}.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "ctith radiomics --image {input.image:q} --mask {input.mask:q} --reader 1 {params.options}"
        " --patient-id {wildcards.patient} --out {output.features:q}"
        " --diagnostics {output.diagnostics:q} > {log} 2>&1"


rule radiomics_reader2:
    input:
        image="results/patients/{patient}/image.nii.gz",
        mask=reader2_mask,
        params=radiomics_params_file(),
    output:
        features="results/patients/{patient}/radiomics/features_reader2.tsv",
        diagnostics="results/patients/{patient}/radiomics/diagnostics_reader2.json",
    params:
        options=radiomics_options(),
        label=reader2_options,
    priority: PATIENT_PRIORITY
    log:
        "results/logs/radiomics_reader2/{patient}.log",
    benchmark:
        "results/benchmarks/radiomics_reader2/{patient}.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "ctith radiomics --image {input.image:q} --mask {input.mask:q} --reader 2 {params.label}"
        " {params.options} --patient-id {wildcards.patient} --out {output.features:q}"
        " --diagnostics {output.diagnostics:q} > {log} 2>&1"


rule radiomics_table:
    input:
        reader1=eligible_files("results/patients/{patient}/radiomics/features.tsv"),
        reader2=reader2_files("results/patients/{patient}/radiomics/features_reader2.tsv"),
    output:
        reader1="results/cohort/radiomics_features.tsv",
        reader2="results/cohort/radiomics_features_reader2.tsv",
    log:
        "results/logs/radiomics_table.log",
    benchmark:
        "results/benchmarks/radiomics_table.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "(ctith radiomics-table --features {input.reader1} --out {output.reader1}"
        " && ctith radiomics-table --features {input.reader2} --out {output.reader2}) > {log} 2>&1"


# The training patients' features: what the feature ICC (training cohorts only, the
# default) and ComBat in mode train are fitted on.
rule radiomics_train_table:
    input:
        reader1=train_files("results/patients/{patient}/radiomics/features.tsv"),
        reader2=reader2_files("results/patients/{patient}/radiomics/features_reader2.tsv", TRAIN),
    output:
        reader1="results/cohort/train/radiomics_features.tsv",
        reader2="results/cohort/train/radiomics_features_reader2.tsv",
    log:
        "results/logs/radiomics_train_table.log",
    benchmark:
        "results/benchmarks/radiomics_train_table.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "(ctith radiomics-table --features {input.reader1} --out {output.reader1}"
        " && ctith radiomics-table --features {input.reader2} --out {output.reader2}) > {log} 2>&1"
