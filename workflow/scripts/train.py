"""Snakemake script: one sweep (qlf.train.train_sweep) from the specs in params to one JSON record
per member; a member whose loss diverges gets a record that says so (a result of the grid)."""
import sys
from pathlib import Path

from qlf.sweep import SweepSpec
from qlf.train import train_sweep

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
sweep = SweepSpec.from_dict(snakemake.params.sweep)
outputs = {Path(path).stem: path for path in snakemake.output}
if set(outputs) != set(sweep.run_ids):
    raise ValueError(f"outputs {sorted(outputs)} are not the sweep's runs {sweep.run_ids}")
train_sweep(sweep, [outputs[run_id] for run_id in sweep.run_ids],
            run_dir=snakemake.params.run_dir, keep_dir=snakemake.params.keep_dir,
            graphs_dir=snakemake.params.graphs_dir)
