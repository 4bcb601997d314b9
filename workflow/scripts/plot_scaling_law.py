"""Snakemake script: frontiers and transitions -> results/plots/scaling_law.pdf and per-task PNGs."""
import sys
from pathlib import Path

import pandas as pd

from qlf.plots import plot_scaling_law

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
frontiers = pd.concat([pd.read_csv(path) for path in snakemake.input.frontiers], ignore_index=True)
plot_scaling_law(frontiers, pd.read_csv(snakemake.input.transitions), snakemake.output.pdf,
                 png_dir=Path(snakemake.output.pngs[0]).parent, tasks=snakemake.params.tasks,
                 **snakemake.params.options)
