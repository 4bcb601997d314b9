"""Snakemake script: frontiers, transitions and all runs -> results/plots/scaling_law.pdf and
per-task PNGs."""
import sys
from pathlib import Path

import pandas as pd

from qlf.plots import plot_scaling_law

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
read = lambda paths: pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
plot_scaling_law(read(snakemake.input.frontiers), pd.read_csv(snakemake.input.transitions),
                 snakemake.output.pdf, png_dir=Path(snakemake.output.pngs[0]).parent,
                 tasks=snakemake.params.tasks, runs_df=read(snakemake.input.runs),
                 **snakemake.params.options)
