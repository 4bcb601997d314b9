"""Snakemake script: the quiet/loud grid and figure (against FLOPs) and the within-run figure
(steps)."""
import sys
from pathlib import Path

import pandas as pd

from qlf.plots import plot_quiet_loud, plot_quiet_loud_grid, plot_within_run
from qlf.probes import load_probe_dirs
from qlf.scaling import val_curves

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
read = lambda paths: pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
baseline = pd.concat([load_probe_dirs(sorted(Path(d).glob("seed*")), key="seed")[0]
                      for d in snakemake.input.random], ignore_index=True)
across, verdicts = read(snakemake.input.across), pd.read_csv(snakemake.input.verdicts)
transitions = pd.read_csv(snakemake.input.transitions)
plot_quiet_loud_grid(across, baseline, verdicts, transitions, snakemake.output.grid)
plot_quiet_loud(across, baseline, verdicts, read(snakemake.input.frontiers), transitions,
                snakemake.output.quiet_loud)
plot_within_run(read(snakemake.input.within), baseline, snakemake.output.within,
                val_df=val_curves(snakemake.input.within_records))
