# Thumbnails of the per-patient figures for `snakemake --report`, which embeds every file
# it shows: Figure S2 of each patient at the configured width (ctith.report.thumbnails).


rule report_thumbnails:
    input:
        figures=eligible_files("results/patients/{patient}/ith/habitats.png"),
    output:
        report(
            directory("results/report/habitats"),
            patterns=["{patient}.png"],
            caption="../report/habitats.rst",
            category="2. ITH habitats",
            subcategory="Figure S2, per patient",
        ),
    params:
        names=ELIGIBLE,
        width=config["report"]["thumbnail_width"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/report_thumbnails.log",
    benchmark:
        "results/benchmarks/report_thumbnails.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith thumbnails --images {input.figures} --names {params.names} --width {params.width}"
        " --out-dir {output} > {log} 2>&1"


# On the demo cohort only: four demo tumours from low to high true heterogeneity, rendered in
# memory from the generator's specs, under the published method and report.demo_variant.
rule demo_heterogeneity:
    input:
        samples=STUDY_SHEETS["samples"],
    output:
        report(
            "results/figures/demo_heterogeneity.png",
            caption="../report/demo_heterogeneity.rst",
            category="2. ITH habitats",
        ),
    params:
        preset=config["demo"]["preset"],
        demo_seed=config["demo"]["seed"],
        ith=shlex.quote(json.dumps(config["ith"])),
        variant=shlex.quote(json.dumps(config["report"]["demo_variant"])),
        clusters=config["ith"]["figure_clusters"],
        seed=config["seed"],
    resources:
        mem_mb=1500,
    log:
        "results/logs/demo_heterogeneity.log",
    benchmark:
        "results/benchmarks/demo_heterogeneity.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith demo-figure --preset {params.preset} --demo-seed {params.demo_seed} --ith {params.ith}"
        " --variant {params.variant} --clusters {params.clusters} --seed {params.seed}"
        " --out {output} > {log} 2>&1"
