"""Snakemake script: all run records of a task -> one tidy CSV (qlf.scaling)."""
import sys

from qlf.scaling import load_records

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
load_records(snakemake.input).to_csv(snakemake.output[0], index=False)
