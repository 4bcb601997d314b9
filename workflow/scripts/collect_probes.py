"""Snakemake script: a task's probe folders -> tidy across-compute and within-run tables."""
import sys

from qlf.probes import load_probe_dirs

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
metrics, per_example = load_probe_dirs(snakemake.input.across, key="budget")
metrics.to_csv(snakemake.output.across, index=False)
per_example.to_csv(snakemake.output.across_examples, index=False)
within, _ = load_probe_dirs(snakemake.input.within, key="step")
within.to_csv(snakemake.output.within, index=False)
