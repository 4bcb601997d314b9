#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment after creating it: install qlf from the
# repository (the working directory of the run, or QLF_SOURCE) without touching the conda packages.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${QLF_SOURCE:-.}"
