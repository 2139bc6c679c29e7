# ctith's workflow is workflow/Snakefile (the snakemake-workflows layout); this file lets
# `snakemake` run it from the repository root. Its default profile is found through the
# `profiles` link beside this file (Snakemake looks for profiles/default next to the
# Snakefile it runs).


include: "workflow/Snakefile"


# An `include` keeps the including file's default target, so name the workflow's own.
rule default:
    input:
        rules.all.input,
    default_target: True
