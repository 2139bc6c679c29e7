# The model bundle: every fitted file a new patient needs, the per-patient stages' settings
# and a sha256 manifest. Its inputs are fit outputs only, so new patients never rebuild it.
rule model_bundle:
    input:
        combat="results/cohort/combat_estimates.json",
        radiomics_signature="results/cohort/radiomics_signature.tsv",
        radiomics_params=radiomics_params_file(),
        ith_models=ith_model_files("model.skops"),
        ith_fitted=ith_model_files("fitted.json"),
        dl_model="results/cohort/dl/refit/model.pt",
        dl_training="results/cohort/dl/refit/training.json",
        dl_f_lasso="results/cohort/dl/dl_f_lasso.tsv",
        survival=expand("results/cohort/survival/{model}/model.json", model=SURVIVAL_MODELS),
    output:
        # The manifest stands for the folder (a directory output would gain Snakemake's
        # timestamp file, which the manifest does not list).
        manifest="results/model_bundle/manifest.json",
    params:
        ith_models=" ".join(f"{m}=results/cohort/ith_model/{m}" for m in ITH_MODELS),
        survival_models=" ".join(f"{m}={d}" for m, d in zip(SURVIVAL_MODELS, survival_model_dirs())),
        main=ITH_MODEL,
        config=shlex.quote(json.dumps(config, sort_keys=True)),
        stages=shlex.quote(json.dumps(bundle_stages(), sort_keys=True)),
    resources:
        mem_mb=1000,
    log:
        "results/logs/model_bundle.log",
    benchmark:
        "results/benchmarks/model_bundle.tsv"
    conda:
        "../../envs/predict.yaml"
    shell:
        "ctith model-bundle --combat {input.combat} --radiomics-signature {input.radiomics_signature}"
        " --radiomics-params {input.radiomics_params:q} --ith-models {params.ith_models}"
        " --ith-signature-model {params.main} --dl-model {input.dl_model} --dl-f-lasso {input.dl_f_lasso}"
        " --survival-models {params.survival_models} --config {params.config} --stages {params.stages}"
        " --out $(dirname {output.manifest}) > {log} 2>&1"


# A patient to predict (sample sheet cohort `predict`): scored by the bundle's frozen models
# from its own per-patient outputs. Its clinical row comes as a parameter, so a row added
# for another patient reruns nothing here.
rule predict:
    input:
        bundle="results/model_bundle/manifest.json",
        ith="results/patients/{patient}/ith/scores.json",
        radiomics="results/patients/{patient}/radiomics/features.tsv",
        dl="results/patients/{patient}/dl/input.npy",
    output:
        prediction="results/predict/{patient}/prediction.json",
        report="results/predict/{patient}/report.pdf",
    params:
        row=predict_row,
    resources:
        mem_mb=2000,
    log:
        "results/logs/predict/{patient}.log",
    benchmark:
        "results/benchmarks/predict/{patient}.tsv"
    conda:
        "../../envs/predict.yaml"
    shell:
        "ctith predict --bundle $(dirname {input.bundle}) --patient-id {wildcards.patient}"
        " --patient-dir results/patients/{wildcards.patient} --clinical-row {params.row}"
        " --out-dir $(dirname {output.prediction}) > {log} 2>&1"
