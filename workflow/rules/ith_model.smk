# The fit: the training patients' ITH scores and the training rows of the sheets only, so a
# new validation or predict patient leaves the forest, its threshold and SHAP alone.
rule ith_model:
    input:
        scores="results/cohort/train/ith_scores.tsv",
        split=TRAIN_SHEETS["split"],
        folds="results/cohort/crossfit_folds.tsv",
        clinical=TRAIN_SHEETS["clinical"],
    output:
        fitted="results/cohort/ith_model/{model}/fitted.json",
        oof="results/cohort/ith_model/{model}/oof.tsv",
        trials="results/cohort/ith_model/{model}/trials.tsv",
        model="results/cohort/ith_model/{model}/model.skops",
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
        clinical=clinical_options(TRAIN_SHEETS["clinical"]),
    resources:
        mem_mb=1000,
    log:
        "results/logs/ith_model/{model}.log",
    benchmark:
        "results/benchmarks/ith_model/{model}.tsv"
    wildcard_constraints:
        model=ITH_MODEL_PATTERN,
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith ith-model --scores {input.scores} --name {wildcards.model} --split {input.split}"
        " --folds {input.folds}"
        " {params.clinical} {params.options} --out-dir $(dirname {output.fitted}) > {log} 2>&1"


# The frozen forest on every patient: predictions (out-of-fold for training patients) and
# the metrics per cohort.
rule ith_model_predict:
    input:
        scores="results/cohort/ith_scores.tsv",
        split="results/cohort/split.tsv",
        clinical=STUDY_SHEETS["clinical"],
        fitted="results/cohort/ith_model/{model}/fitted.json",
        oof="results/cohort/ith_model/{model}/oof.tsv",
        model="results/cohort/ith_model/{model}/model.skops",
        qc="results/cohort/qc.tsv",  # no validation metric while one scan sits in two cohorts
    output:
        predictions="results/cohort/ith_model/{model}/predictions.tsv",
        metrics="results/cohort/ith_model/{model}/metrics.json",
    params:
        clinical=clinical_options(),
        n_bootstrap=config["survival"]["n_bootstrap"],
        seed=config["seed"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/ith_model_predict/{model}.log",
    benchmark:
        "results/benchmarks/ith_model_predict/{model}.tsv"
    wildcard_constraints:
        model=ITH_MODEL_PATTERN,
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith ith-model-predict --scores {input.scores} --split {input.split} {params.clinical}"
        " --model-dir $(dirname {input.fitted}) --out-predictions {output.predictions}"
        " --out-metrics {output.metrics} --n-bootstrap {params.n_bootstrap} --seed {params.seed} > {log} 2>&1"


rule table_s2:
    input:
        metrics=ith_model_files("metrics.json"),
        fitted=ith_model_files("fitted.json"),
        main=f"results/cohort/ith_model/{ITH_MODEL}/predictions.tsv",
        truth=DEMO_TRUTH,
        truth_inputs=["results/cohort/split.tsv", STUDY_SHEETS["clinical"]] if DEMO_TRUTH else [],
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
    params:
        truth=(f"--truth {DEMO_TRUTH[0]} --split results/cohort/split.tsv {clinical_options()} --seed {config['seed']}"
               if DEMO_TRUTH else ""),
    resources:
        mem_mb=1000,
    log:
        "results/logs/table_s2.log",
    benchmark:
        "results/benchmarks/table_s2.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith table-s2 --metrics {input.metrics} --fitted {input.fitted} --main-predictions {input.main}"
        " --out-table {output.table} --out-md {output.md} --out-params {output.params}"
        " --out-signature {output.signature} {params.truth} > {log} 2>&1"


# Figure S6: a clinically matched pair, low risk without DM beside high risk with DM by the
# ITH model, and their habitat maps for every K.
rule figure_s6:
    input:
        predictions=f"results/cohort/ith_model/{ITH_MODEL}/predictions.tsv",
        scores=eligible_files("results/patients/{patient}/ith/scores.json"),
        maps=eligible_files("results/patients/{patient}/ith/label_maps.npz"),
        clinical=STUDY_SHEETS["clinical"],
    output:
        figure=report(
            "results/figures/figure_s6_ith_comparison.png",
            caption="../report/figure_s6.rst",
            category="2. ITH habitats",
        ),
        pair="results/cohort/figure_s6_pair.json",
    params:
        clinical=clinical_options(),
        clusters=config["ith"]["clusters"],
        max_age_gap=config["ith_model"]["figure_s6_max_age_gap"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/figure_s6.log",
    benchmark:
        "results/benchmarks/figure_s6.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith figure-s6 --predictions {input.predictions} --scores {input.scores} {params.clinical}"
        " --clusters {params.clusters} --max-age-gap {params.max_age_gap}"
        " --out-figure {output.figure} --out-pair {output.pair} > {log} 2>&1"
