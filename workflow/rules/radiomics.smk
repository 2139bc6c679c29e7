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
    resources:
        mem_mb=2000,
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


# A re-delineation's features: reader 2's (inter-observer) or reader 1's repeat (intra-observer).
rule radiomics_resegmented:
    input:
        image="results/patients/{patient}/image.nii.gz",
        mask=resegmented_mask,
        params=radiomics_params_file(),
    output:
        features="results/patients/{patient}/radiomics/features_{reading}.tsv",
        diagnostics="results/patients/{patient}/radiomics/diagnostics_{reading}.json",
    params:
        options=radiomics_options(),
        reader=resegmented_options,
    priority: PATIENT_PRIORITY
    wildcard_constraints:
        reading="|".join(RESEGMENTATIONS),
    resources:
        mem_mb=2000,
    log:
        "results/logs/radiomics_{reading}/{patient}.log",
    benchmark:
        "results/benchmarks/radiomics_{reading}/{patient}.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "ctith radiomics --image {input.image:q} --mask {input.mask:q} {params.reader}"
        " {params.options} --patient-id {wildcards.patient} --out {output.features:q}"
        " --diagnostics {output.diagnostics:q} > {log} 2>&1"


rule radiomics_table:
    input:
        reader1=eligible_files("results/patients/{patient}/radiomics/features.tsv"),
        reader2=resegmented_files("results/patients/{patient}/radiomics/features_{reading}.tsv", "reader2"),
        repeat=resegmented_files("results/patients/{patient}/radiomics/features_{reading}.tsv", "reader1_repeat"),
    output:
        reader1="results/cohort/radiomics_features.tsv",
        reader2="results/cohort/radiomics_features_reader2.tsv",
        repeat="results/cohort/radiomics_features_reader1_repeat.tsv",
    resources:
        mem_mb=1000,
    log:
        "results/logs/radiomics_table.log",
    benchmark:
        "results/benchmarks/radiomics_table.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "(ctith radiomics-table --features {input.reader1} --out {output.reader1}"
        " && ctith radiomics-table --features {input.reader2} --out {output.reader2}"
        " && ctith radiomics-table --features {input.repeat} --out {output.repeat}) > {log} 2>&1"


# The training patients' features: what the feature ICC (training cohorts only, the
# default) and ComBat in mode train are fitted on.
rule radiomics_train_table:
    input:
        reader1=train_files("results/patients/{patient}/radiomics/features.tsv"),
        reader2=resegmented_files("results/patients/{patient}/radiomics/features_{reading}.tsv", "reader2", TRAIN),
        repeat=resegmented_files("results/patients/{patient}/radiomics/features_{reading}.tsv", "reader1_repeat",
                                 TRAIN),
    output:
        reader1="results/cohort/train/radiomics_features.tsv",
        reader2="results/cohort/train/radiomics_features_reader2.tsv",
        repeat="results/cohort/train/radiomics_features_reader1_repeat.tsv",
    resources:
        mem_mb=1000,
    log:
        "results/logs/radiomics_train_table.log",
    benchmark:
        "results/benchmarks/radiomics_train_table.tsv"
    conda:
        "../../envs/radiomics.yaml"
    shell:
        "(ctith radiomics-table --features {input.reader1} --out {output.reader1}"
        " && ctith radiomics-table --features {input.reader2} --out {output.reader2}"
        " && ctith radiomics-table --features {input.repeat} --out {output.repeat}) > {log} 2>&1"
