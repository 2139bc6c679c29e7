#!/usr/bin/env bash
# Post-deploy script of every env here (envs/<env>.post-deploy.sh links to it): Snakemake
# runs it once, inside the new env, after creating it. Under --sdm conda Snakemake blocks
# PYTHONPATH in jobs, so the rules' `ctith` command must come from the env itself. The
# install is editable: code changes reach the envs without rebuilding them. CTITH_SOURCE
# (the repository) is set by workflow/rules/common.smk when the workflow is parsed.
set -euo pipefail
: "${CTITH_SOURCE:?not set: run this through snakemake --sdm conda, or set it to the ctith repository}"
# No build isolation: setuptools comes from the env file, so no download is needed here.
python -m pip install --quiet --no-deps --no-build-isolation --editable "$CTITH_SOURCE"
