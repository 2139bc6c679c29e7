# Thumbnails of the per-patient figures for `snakemake --report`, which embeds every file
# it shows: Figure S2 of each patient at the configured width (ctith.report).


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
    log:
        "results/logs/report_thumbnails.log",
    benchmark:
        "results/benchmarks/report_thumbnails.tsv"
    conda:
        "../../envs/imaging.yaml"
    shell:
        "ctith thumbnails --images {input.figures} --names {params.names} --width {params.width}"
        " --out-dir {output} > {log} 2>&1"
