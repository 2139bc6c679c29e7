rule harmonize:
    input:
        features="results/cohort/radiomics_features.tsv",
        icc="results/cohort/radiomics_icc.tsv",
        split="results/cohort/split.tsv",
        samples=config["samples"],
        clinical=config["clinical"],
    output:
        features="results/cohort/radiomics_harmonized.tsv",
        smd="results/cohort/harmonization_smd.tsv",
        # The fitted estimates (JSON, no patient data): what a new patient is harmonised with.
        estimates="results/cohort/combat_estimates.json",
        report=report(
            "results/cohort/harmonization.json",
            caption="../report/harmonization.rst",
            category="4. C-radiomics",
        ),
    params:
        clinical=clinical_options(),
        batch=config["harmonize"]["batch_column"],
        mode=config["harmonize"]["mode"],
        categorical=config["harmonize"]["covariates"]["categorical"],
        continuous=config["harmonize"]["covariates"]["continuous"],
        constant=config["harmonize"]["constant_in_batch"],
    log:
        "results/logs/harmonize.log",
    benchmark:
        "results/benchmarks/harmonize.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith harmonize --features {input.features} --icc {input.icc} --split {input.split}"
        " --samples {input.samples:q} {params.clinical} --batch-column {params.batch} --mode {params.mode}"
        " --categorical {params.categorical} --continuous {params.continuous}"
        " --constant-in-batch {params.constant} --out-features {output.features} --out-smd {output.smd}"
        " --out-report {output.report} --out-estimates {output.estimates} > {log} 2>&1"


rule select:
    input:
        features="results/cohort/radiomics_harmonized.tsv",
        harmonization="results/cohort/harmonization.json",
        split="results/cohort/split.tsv",
        folds="results/cohort/crossfit_folds.tsv",
        clinical=config["clinical"],
    output:
        scores=report(
            "results/cohort/radscore.tsv",
            caption="../report/radscore.rst",
            category="4. C-radiomics",
        ),
        signature=report(
            "results/cohort/radiomics_signature.tsv",
            caption="../report/radiomics_signature.rst",
            category="4. C-radiomics",
        ),
        cv="results/cohort/radiomics_lasso_cv.tsv",
        report="results/cohort/radiomics_selection.json",
    params:
        clinical=clinical_options(),
        s=config["selection"],
        seed=config["seed"],
    log:
        "results/logs/select.log",
    benchmark:
        "results/benchmarks/select.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith select --features {input.features} --harmonization {input.harmonization} --split {input.split}"
        " {params.clinical} --variance-threshold {params.s[variance_threshold]}"
        " --correlation-cutoff {params.s[correlation_cutoff]} --folds {input.folds}"
        " --n-alphas {params.s[n_alphas]} --alpha-min-ratio {params.s[alpha_min_ratio]}"
        " --alpha-rule {params.s[alpha_rule]} --seed {params.seed} --out-scores {output.scores}"
        " --out-signature {output.signature} --out-cv {output.cv} --out-report {output.report} > {log} 2>&1"
