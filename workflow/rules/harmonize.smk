# ComBat's fit. Mode train: the training patients' features and sheet rows only, so a new
# validation or predict patient leaves the estimates alone. Mode transductive: every
# patient's features (never labels), so by definition a new patient refits it.
rule harmonize:
    input:
        unpack(harmonize_fit_inputs),
        icc="results/cohort/radiomics_icc.tsv",
    output:
        # The fitted estimates (JSON, no patient data): what a new patient is harmonised with.
        estimates="results/cohort/combat_estimates.json",
        features="results/cohort/train/radiomics_harmonized.tsv",
    params:
        clinical=harmonize_fit_clinical(),
        batch=config["harmonize"]["batch_column"],
        mode=config["harmonize"]["mode"],
        categorical=config["harmonize"]["covariates"]["categorical"],
        continuous=config["harmonize"]["covariates"]["continuous"],
        constant=config["harmonize"]["constant_in_batch"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/harmonize.log",
    benchmark:
        "results/benchmarks/harmonize.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith harmonize --features {input.features} --icc {input.icc} --split {input.split}"
        " --samples {input.samples:q} {params.clinical} --batch-column {params.batch:q} --mode {params.mode}"
        " --categorical {params.categorical:q} --continuous {params.continuous:q}"
        " --constant-in-batch {params.constant:q} --out-estimates {output.estimates}"
        " --out-features {output.features} > {log} 2>&1"


# The fitted estimates on every patient, and how far the batches differ before and after.
rule harmonize_apply:
    input:
        features="results/cohort/radiomics_features.tsv",
        estimates="results/cohort/combat_estimates.json",
        samples=STUDY_SHEETS["samples"],
        clinical=STUDY_SHEETS["clinical"],
    output:
        features="results/cohort/radiomics_harmonized.tsv",
        smd="results/cohort/harmonization_smd.tsv",
        report=report(
            "results/cohort/harmonization.json",
            caption="../report/harmonization.rst",
            category="4. C-radiomics",
        ),
    params:
        clinical=clinical_options(),
        batch=config["harmonize"]["batch_column"],
        unseen=config["harmonize"]["unseen_batch"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/harmonize_apply.log",
    benchmark:
        "results/benchmarks/harmonize_apply.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith harmonize-apply --features {input.features} --estimates {input.estimates}"
        " --samples {input.samples:q} {params.clinical} --batch-column {params.batch:q}"
        " --unseen-batch {params.unseen} --out-features {output.features} --out-smd {output.smd}"
        " --out-report {output.report} > {log} 2>&1"


# The Rad-score's fit on the training patients' harmonised features.
rule select:
    input:
        features="results/cohort/train/radiomics_harmonized.tsv",
        harmonization="results/cohort/combat_estimates.json",
        split=TRAIN_SHEETS["split"],
        folds="results/cohort/crossfit_folds.tsv",
        clinical=TRAIN_SHEETS["clinical"],
    output:
        scores="results/cohort/train/radscore.tsv",
        signature=report(
            "results/cohort/radiomics_signature.tsv",
            caption="../report/radiomics_signature.rst",
            category="4. C-radiomics",
        ),
        cv="results/cohort/radiomics_lasso_cv.tsv",
        report="results/cohort/radiomics_selection.json",
    params:
        clinical=clinical_options(TRAIN_SHEETS["clinical"]),
        s=config["selection"],
        seed=config["seed"],
    resources:
        mem_mb=1000,
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


# Every patient's Rad-score: out-of-fold from the fit for training patients, the signature's
# for the others.
rule radscore:
    input:
        features="results/cohort/radiomics_harmonized.tsv",
        signature="results/cohort/radiomics_signature.tsv",
        train="results/cohort/train/radscore.tsv",
        split="results/cohort/split.tsv",
        harmonization="results/cohort/combat_estimates.json",
    output:
        report(
            "results/cohort/radscore.tsv",
            caption="../report/radscore.rst",
            category="4. C-radiomics",
        ),
    resources:
        mem_mb=1000,
    log:
        "results/logs/radscore.log",
    benchmark:
        "results/benchmarks/radscore.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith signature-apply --features {input.features} --signature {input.signature}"
        " --train-scores {input.train} --split {input.split} --name rad_score"
        " --harmonization {input.harmonization} --out {output} > {log} 2>&1"
