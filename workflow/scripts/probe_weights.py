"""Snakemake script: probe one trained model on its task's probe sets (qlf.probes)."""
import sys

from qlf.probes import probe_weights

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
probe_weights(snakemake.input.weights, snakemake.output[0],
              graphs_dir=snakemake.params.graphs_dir, **snakemake.params.options)
