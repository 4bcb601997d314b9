"""Snakemake script: the early-warning figure (qlf.plots.plot_early_warning)."""
import sys

import pandas as pd

from qlf.plots import plot_early_warning

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
plot_early_warning(pd.read_csv(snakemake.input[0]), snakemake.output[0])
