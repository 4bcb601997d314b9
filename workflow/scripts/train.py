"""Snakemake script: one training run (qlf.train) from the spec in params to its JSON record."""
import sys

from qlf.compute import RunSpec
from qlf.train import train_run

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
train_run(RunSpec.from_dict(snakemake.params.spec), snakemake.output[0],
          run_dir=snakemake.params.run_dir, graphs_dir=snakemake.params.graphs_dir)
