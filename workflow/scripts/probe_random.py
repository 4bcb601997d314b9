"""Snakemake script: probe seeded random initialisations of a model's shape (baselines)."""
import sys

from qlf.probes import probe_random_inits
from qlf.train import resolve_weights

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
probe_random_inits(resolve_weights(snakemake.input.weights), snakemake.params.seeds,
                   snakemake.output[0], graphs_dir=snakemake.params.graphs_dir,
                   **snakemake.params.options)
