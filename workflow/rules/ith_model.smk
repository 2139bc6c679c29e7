rule ith_model:
    input:
        scores="results/cohort/ith_scores.tsv",
        split="results/cohort/split.tsv",
        folds="results/cohort/crossfit_folds.tsv",
        clinical=config["clinical"],
    output:
        predictions="results/cohort/ith_model/{model}/predictions.tsv",
        fitted="results/cohort/ith_model/{model}/fitted.json",
        metrics="results/cohort/ith_model/{model}/metrics.json",
        trials="results/cohort/ith_model/{model}/trials.tsv",
        model="results/cohort/ith_model/{model}/model.joblib",
        shap_values="results/cohort/ith_model/{model}/shap_values.tsv",
        shap_summary=report(
            "results/cohort/ith_model/{model}/shap_summary.png",
            caption="../report/ith_shap.rst",
            category="6. ITH model",
            subcategory="{model}",
        ),
        shap_beeswarm=report(
            "results/cohort/ith_model/{model}/shap_beeswarm.png",
            caption="../report/ith_shap.rst",
            category="6. ITH model",
            subcategory="{model}",
        ),
    params:
        options=ith_model_options,
        clinical=clinical_options(),
    log:
        "results/logs/ith_model/{model}.log",
    benchmark:
        "results/benchmarks/ith_model/{model}.tsv"
    wildcard_constraints:
        model="|".join(re.escape(m) for m in ITH_MODELS),
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith ith-model --scores {input.scores} --name {wildcards.model} --split {input.split}"
        " --folds {input.folds}"
        " {params.clinical} {params.options} --out-dir $(dirname {output.predictions}) > {log} 2>&1"


rule table_s2:
    input:
        metrics=ith_model_files("metrics.json"),
        fitted=ith_model_files("fitted.json"),
        main=f"results/cohort/ith_model/{ITH_MODEL}/predictions.tsv",
    output:
        table=report(
            "results/tables/table_s2.tsv",
            caption="../report/table_s2.rst",
            category="6. ITH model",
        ),
        md="results/tables/table_s2.md",
        params="results/tables/table_s2_hyperparameters.tsv",
        signature=report(
            "results/cohort/ith_signature.tsv",
            caption="../report/ith_signature.rst",
            category="6. ITH model",
        ),
    log:
        "results/logs/table_s2.log",
    benchmark:
        "results/benchmarks/table_s2.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith table-s2 --metrics {input.metrics} --fitted {input.fitted} --main-predictions {input.main}"
        " --out-table {output.table} --out-md {output.md} --out-params {output.params}"
        " --out-signature {output.signature} > {log} 2>&1"
