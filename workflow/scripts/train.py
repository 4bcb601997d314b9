"""Snakemake script: one training run (qlf.train) from the spec in params to its JSON record.
A run whose loss diverges is a result of the grid (lr too high): its record says so."""
import sys

from qlf.compute import RunSpec
from qlf.train import DivergedError, train_run, write_diverged_record

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
spec = RunSpec.from_dict(snakemake.params.spec)
try:
    train_run(spec, snakemake.output[0], run_dir=snakemake.params.run_dir,
              graphs_dir=snakemake.params.graphs_dir)
except DivergedError as err:
    print(f"diverged: {err}")
    write_diverged_record(spec, snakemake.output[0], err)
