rule dl_input:
    input:
        image="results/patients/{patient}/image.nii.gz",
        mask="results/patients/{patient}/mask.nii.gz",
    output:
        tensor="results/patients/{patient}/dl/input.npy",
        qc="results/patients/{patient}/dl/qc.json",
        preview=report(
            "results/patients/{patient}/dl/preview.png",
            caption="../report/dl_input.rst",
            category="Deep learning",
            subcategory="inputs",
        ),
    params:
        options=shlex.quote(json.dumps(config["dl_input"])),
    priority: PATIENT_PRIORITY
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
# workstation without a GPU it trains on the CPU.
rule dl_train:
    input:
        tensors=eligible_files("results/patients/{patient}/dl/input.npy"),
        qc=eligible_files("results/patients/{patient}/dl/qc.json"),
        split="results/cohort/split.tsv",
        clinical=config["clinical"],
    output:
        model="results/cohort/dl/model.pt",
        loss="results/cohort/dl/loss.tsv",
        training="results/cohort/dl/training.json",
        figure=report(
            "results/figures/figure_s3_loss_curve.png",
            caption="../report/figure_s3.rst",
            category="Deep learning",
        ),
    params:
        clinical=clinical_options(),
        train=dl_train_params(),
        device=config["dl"]["device"],
        seed=config["seed"],
    threads: config["dl"]["threads"]
    resources:
        gpu=config["dl"]["gpus"],
    log:
        "results/logs/dl_train.log",
    benchmark:
        "results/benchmarks/dl_train.tsv"
    conda:
        "../../envs/dl.yaml"
    shell:
        "ctith dl-train --inputs {input.tensors} --split {input.split} {params.clinical}"
        " --params {params.train} --seed {params.seed} --device {params.device} --threads {threads}"
        " --out-dir $(dirname {output.model}) --figure {output.figure} > {log} 2>&1"


rule dl_predict:
    input:
        tensors=eligible_files("results/patients/{patient}/dl/input.npy"),
        qc=eligible_files("results/patients/{patient}/dl/qc.json"),
        split="results/cohort/split.tsv",
        clinical=config["clinical"],
        model="results/cohort/dl/model.pt",
        training="results/cohort/dl/training.json",
    output:
        dl_e=report(
            "results/cohort/dl_e.tsv",
            caption="../report/dl_e.rst",
            category="Deep learning",
        ),
        dl_f=report(
            "results/cohort/dl_f.tsv",
            caption="../report/dl_f.rst",
            category="Deep learning",
        ),
        gradcam="results/cohort/dl/gradcam.npz",
        figure=report(
            "results/figures/figure_s5_gradcam.png",
            caption="../report/figure_s5.rst",
            category="Deep learning",
        ),
    params:
        clinical=clinical_options(),
        n=config["dl"]["gradcam_patients"],
    threads: config["dl"]["threads"]
    log:
        "results/logs/dl_predict.log",
    benchmark:
        "results/benchmarks/dl_predict.tsv"
    conda:
        "../../envs/dl.yaml"
    shell:
        "ctith dl-predict --inputs {input.tensors} --split {input.split} {params.clinical}"
        " --model {input.model} --training {input.training} --threads {threads}"
        " --gradcam-patients {params.n} --out-dl-e {output.dl_e} --out-dl-f {output.dl_f}"
        " --out-gradcam {output.gradcam} --figure {output.figure} > {log} 2>&1"
