# The fit: one Cox model on the training patients' signatures (out-of-fold) and sheet rows.
rule survival_model:
    input:
        unpack(survival_model_inputs),
    output:
        model="results/cohort/survival/{model}/model.json",
    params:
        options=survival_model_options,
        settings=survival_model_settings,
        clinical=clinical_options(TRAIN_SHEETS["clinical"]),
    resources:
        mem_mb=1000,
    log:
        "results/logs/survival/{model}.log",
    benchmark:
        "results/benchmarks/survival/{model}.tsv"
    wildcard_constraints:
        model=SURVIVAL_MODEL_PATTERN,
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith survival-model --name {wildcards.model} {params.settings} {params.options} --split {input.split}"
        " {params.clinical} --out-dir $(dirname {output.model}) > {log} 2>&1"


# The fitted model, frozen, on every patient: predictions, risk groups and metrics per cohort.
rule survival_predict:
    input:
        unpack(survival_predict_inputs),
    output:
        predictions="results/cohort/survival/{model}/predictions.tsv",
        metrics="results/cohort/survival/{model}/metrics.tsv",
        covariates="results/cohort/survival/{model}/covariates.tsv",
    params:
        options=survival_model_options,
        settings=survival_model_settings,
        clinical=clinical_options(),
    resources:
        mem_mb=1000,
    log:
        "results/logs/survival_predict/{model}.log",
    benchmark:
        "results/benchmarks/survival_predict/{model}.tsv"
    wildcard_constraints:
        model=SURVIVAL_MODEL_PATTERN,
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith survival-model --name {wildcards.model} {params.settings} {params.options} --split {input.split}"
        " {params.clinical} --fitted {input.model} --out-dir $(dirname {output.predictions}) > {log} 2>&1"


rule survival_report:
    input:
        models=expand("results/cohort/survival/{model}/{f}", model=SURVIVAL_MODELS,
                      f=["model.json", "predictions.tsv", "metrics.tsv", "covariates.tsv"]),
        split="results/cohort/split.tsv",
        clinical=STUDY_SHEETS["clinical"],
        truth=DEMO_TRUTH,
    output:
        metrics="results/cohort/survival/metrics.tsv",
        s4=report("results/tables/table_s4.tsv", caption="../report/table_s4.rst", category="7. Survival"),
        s4_md="results/tables/table_s4.md",
        models_table=report("results/tables/survival_models.tsv", caption="../report/survival_models.rst",
                            category="7. Survival"),
        models_md="results/tables/survival_models.md",
        calibration_table=report("results/tables/table_s4_calibration.tsv", caption="../report/table_s4_calibration.rst",
                           category="7. Survival"),
        calibration_table_md="results/tables/table_s4_calibration.md",
        differences=report("results/tables/table_s4_differences.tsv", caption="../report/table_s4_differences.rst",
                           category="7. Survival"),
        differences_md="results/tables/table_s4_differences.md",
        s5=report("results/tables/table_s5.tsv", caption="../report/table_s5.rst", category="7. Survival"),
        s5_md="results/tables/table_s5.md",
        km=report("results/figures/survival_km_risk_groups.png", caption="../report/survival_km.rst",
                  category="7. Survival"),
        roc=report("results/figures/survival_td_roc.png", caption="../report/survival_roc.rst",
                   category="7. Survival"),
        calibration=report("results/figures/survival_calibration.png",
                           caption="../report/survival_calibration.rst", category="7. Survival"),
        dca=report("results/figures/survival_decision_curves.png", caption="../report/survival_dca.rst",
                   category="7. Survival"),
        s4_summary=report("results/figures/figure_s4_shap_summary.png", caption="../report/figure_s4.rst",
                          category="7. Survival"),
        s4_beeswarm=report("results/figures/figure_s4_shap_beeswarm.png", caption="../report/figure_s4.rst",
                           category="7. Survival"),
    params:
        models=" ".join(f"{m}={d}" for m, d in zip(SURVIVAL_MODELS, survival_model_dirs())),
        clinical=clinical_options(),
        truth=" ".join(f"--truth {t}" for t in DEMO_TRUTH),
        s=config["survival"],
        seed=config["seed"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/survival_report.log",
    benchmark:
        "results/benchmarks/survival_report.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith survival-report --models {params.models} --split {input.split} {params.clinical} {params.truth}"
        " --figure-model {params.s[figure_model]} --clinical-model {params.s[clinical_model]}"
        " --horizons {params.s[horizons]} --n-bootstrap {params.s[n_bootstrap]} --seed {params.seed}"
        " --out-metrics {output.metrics} --out-s4 {output.s4} --out-s4-md {output.s4_md} --out-s5 {output.s5}"
        " --out-models {output.models_table} --out-models-md {output.models_md}"
        " --out-calibration {output.calibration_table} --out-calibration-md {output.calibration_table_md}"
        " --out-differences {output.differences} --out-differences-md {output.differences_md}"
        " --out-s5-md {output.s5_md} --figures-dir $(dirname {output.km}) > {log} 2>&1"
