"""Snakemake script: probe the weights of the within-run retraining at one kept step."""
import sys

from qlf.probes import probe_weights
from qlf.train import weights_path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
probe_weights(weights_path(snakemake.input.steps, int(snakemake.wildcards.step)),
              snakemake.output[0], graphs_dir=snakemake.params.graphs_dir,
              **snakemake.params.options)
