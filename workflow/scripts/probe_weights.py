"""Snakemake script: probe one trained model on its task's probe sets (qlf.probes)."""
import sys

from qlf.probes import probe_weights
from qlf.train import resolve_weights

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
# at the target budget the input is the within-run folder: its last step is the final model
probe_weights(resolve_weights(snakemake.input.weights), snakemake.output[0],
              graphs_dir=snakemake.params.graphs_dir, **snakemake.params.options)
