rule dl_input:
    input:
        image="results/patients/{patient}/image.nii.gz",
        mask="results/patients/{patient}/mask.nii.gz",
    output:
        tensor="results/patients/{patient}/dl/input.npy",
        qc="results/patients/{patient}/dl/qc.json",
        preview="results/patients/{patient}/dl/preview.png",
    params:
        options=shlex.quote(json.dumps(config["dl_input"])),
    priority: training_first(PATIENT_PRIORITY)
    resources:
        mem_mb=1000,
    log:
        "results/logs/dl_input/{patient}.log",
    benchmark:
        "results/benchmarks/dl_input/{patient}.tsv"
    conda:
        "../../envs/dl.yaml"
    shell:
        "ctith dl-input --image {input.image:q} --mask {input.mask:q} --params {params.options}"
        " --patient-id {wildcards.patient} --out-dir $(dirname {output.tensor:q}) > {log} 2>&1"


# GPU-tagged: `resources: gpu` lets a cluster profile send it to a GPU node; on a
# workstation without a GPU it trains on the CPU. One job per fit: `refit` (every training
# patient: the network that scores validation patients) and `fold{k}` (without the training
# patients of cross-fitting fold k: the network that scores them), so a cluster trains the
# folds in parallel.
rule dl_train:
    input:
        unpack(dl_train_inputs),
        tensors=train_files("results/patients/{patient}/dl/input.npy"),
        qc=train_files("results/patients/{patient}/dl/qc.json"),
        split=TRAIN_SHEETS["split"],
        clinical=TRAIN_SHEETS["clinical"],
    output:
        model="results/cohort/dl/{fit}/model.pt",
        loss="results/cohort/dl/{fit}/loss.tsv",
        training="results/cohort/dl/{fit}/training.json",
        # DL_E and DL_F of the net's training patients and, a fold net, of those it held out.
        scores="results/cohort/dl/{fit}/scores.tsv",
    wildcard_constraints:
        fit=DL_FIT_PATTERN,
    params:
        clinical=clinical_options(TRAIN_SHEETS["clinical"]),
        train=dl_train_params(),
        fold=dl_fold_option,
        nets=dl_crossfit_option,
        device=config["dl"]["device"],
        seed=config["seed"],
    threads: config["dl"]["threads"]
    priority: NETWORK_PRIORITY
    resources:
        mem_mb=4000,
        gpu=config["dl"]["gpus"],
    log:
        "results/logs/dl_train/{fit}.log",
    benchmark:
        "results/benchmarks/dl_train/{fit}.tsv"
    conda:
        "../../envs/dl.yaml"
    shell:
        "ctith dl-train --inputs {input.tensors} --split {input.split} {params.clinical} {params.fold} {params.nets}"
        " --params {params.train} --seed {params.seed} --device {params.device} --threads {threads}"
        " --out-dir $(dirname {output.model}) > {log} 2>&1"


# The training patients' DL_E and DL_F: the refit's, and each fold net's for the patients it
# held out (out-of-fold). All that the DL_F signature and the survival models fit on.
rule dl_train_features:
    input:
        refit=multiext("results/cohort/dl/refit/", "training.json", "scores.tsv"),
        folds=dl_fit_files("training.json", folds_only=True) + dl_fit_files("scores.tsv", folds_only=True),
    output:
        dl_e="results/cohort/train/dl_e.tsv",
        dl_f="results/cohort/train/dl_f.tsv",
        fold_features="results/cohort/dl/fold_features.tsv",
    params:
        fold_nets=[f"results/cohort/dl/{fit}" for fit in DL_FITS if fit != "refit"],
    priority: NETWORK_PRIORITY
    resources:
        mem_mb=1000,
    log:
        "results/logs/dl_train_features.log",
    benchmark:
        "results/benchmarks/dl_train_features.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith dl-train-features --refit $(dirname {input.refit[0]:q}) --fold-nets {params.fold_nets}"
        " --out-dl-e {output.dl_e} --out-dl-f {output.dl_f} --out-fold-features {output.fold_features}"
        " > {log} 2>&1"


# Every patient's DL_E (out-of-fold for training patients) and DL_F; Grad-CAM of the
# validation patients; Figures S3 and S5. The refit scores the patients who are not training.
rule dl_predict:
    input:
        tensors=eligible_files("results/patients/{patient}/dl/input.npy"),
        qc=eligible_files("results/patients/{patient}/dl/qc.json"),
        split="results/cohort/split.tsv",
        clinical=STUDY_SHEETS["clinical"],
        model="results/cohort/dl/refit/model.pt",
        training="results/cohort/dl/refit/training.json",
        loss="results/cohort/dl/refit/loss.tsv",
        # The training patients' rows, scored once by dl_train_features (the fold nets' out of
        # fold): only the other patients are scored here.
        train_dl_e="results/cohort/train/dl_e.tsv",
        train_dl_f="results/cohort/train/dl_f.tsv",
    output:
        dl_e=report(
            "results/cohort/dl_e.tsv",
            caption="../report/dl_e.rst",
            category="5. Deep learning",
        ),
        dl_f=report(
            "results/cohort/dl_f.tsv",
            caption="../report/dl_f.rst",
            category="5. Deep learning",
        ),
        gradcam="results/cohort/dl/gradcam.npz",
        loss_figure=report(
            "results/figures/figure_s3_loss_curve.png",
            caption="../report/figure_s3.rst",
            category="5. Deep learning",
        ),
        figure=report(
            "results/figures/figure_s5_gradcam.png",
            caption="../report/figure_s5.rst",
            category="5. Deep learning",
        ),
    params:
        clinical=clinical_options(),
        n=config["dl"]["gradcam_patients"],
    threads: config["dl"]["threads"]
    priority: NETWORK_PRIORITY
    resources:
        mem_mb=2000,
    log:
        "results/logs/dl_predict.log",
    benchmark:
        "results/benchmarks/dl_predict.tsv"
    conda:
        "../../envs/dl.yaml"
    shell:
        "ctith dl-predict --inputs {input.tensors} --split {input.split} {params.clinical}"
        " --model {input.model} --train-dl-e {input.train_dl_e} --train-dl-f {input.train_dl_f} --threads {threads}"
        " --gradcam-patients {params.n} --out-dl-e {output.dl_e} --out-dl-f {output.dl_f}"
        " --loss-figure {output.loss_figure}"
        " --out-gradcam {output.gradcam} --figure {output.figure} > {log} 2>&1"


# DL_F as a signature (Table S4): a LASSO-Cox on the 64 deep features, with the Rad-score's
# settings; cross-fitted in two stages (each fold net's features, each fold's LASSO). The
# fit, on the training patients' features.
rule dl_signature:
    input:
        dl_f="results/cohort/train/dl_f.tsv",
        fold_features="results/cohort/dl/fold_features.tsv",
        folds="results/cohort/crossfit_folds.tsv",
        clinical=TRAIN_SHEETS["clinical"],
    output:
        scores="results/cohort/train/dl_f_signature.tsv",
        signature="results/cohort/dl/dl_f_lasso.tsv",
        report="results/cohort/dl/dl_f_selection.json",
    params:
        clinical=clinical_options(TRAIN_SHEETS["clinical"]),
        s=config["selection"],
        nets=DL_CROSSFIT_FOLDS,
        seed=config["seed"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/dl_signature.log",
    benchmark:
        "results/benchmarks/dl_signature.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith dl-signature --dl-f {input.dl_f} --fold-features {input.fold_features} --folds {input.folds}"
        " --crossfit-folds {params.nets}"
        " {params.clinical} --variance-threshold {params.s[variance_threshold]}"
        " --correlation-cutoff {params.s[correlation_cutoff]} --n-alphas {params.s[n_alphas]}"
        " --alpha-min-ratio {params.s[alpha_min_ratio]} --alpha-rule {params.s[alpha_rule]} --seed {params.seed}"
        " --out-scores {output.scores} --out-signature {output.signature} --out-report {output.report} > {log} 2>&1"


# Every patient's DL_F signature: out-of-fold from the fit for training patients, the
# LASSO's for the others.
rule dl_f_score:
    input:
        features="results/cohort/dl_f.tsv",
        signature="results/cohort/dl/dl_f_lasso.tsv",
        train="results/cohort/train/dl_f_signature.tsv",
        split="results/cohort/split.tsv",
    output:
        report(
            "results/cohort/dl_f_signature.tsv",
            caption="../report/dl_f_signature.rst",
            category="5. Deep learning",
        ),
    resources:
        mem_mb=1000,
    log:
        "results/logs/dl_f_score.log",
    benchmark:
        "results/benchmarks/dl_f_score.tsv"
    conda:
        "../../envs/modeling.yaml"
    shell:
        "ctith signature-apply --features {input.features} --signature {input.signature}"
        " --train-scores {input.train} --split {input.split} --name dl_f_score --out {output} > {log} 2>&1"
