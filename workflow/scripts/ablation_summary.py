"""Snakemake script: every ablation result -> results/ablations/summary.csv and ablations.pdf."""
import json
import sys
from pathlib import Path

from qlf.ablations import summary_table
from qlf.plots import plot_ablations

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
table = summary_table(json.loads(Path(p).read_text()) for p in snakemake.input)
table.to_csv(snakemake.output.table, index=False)
plot_ablations(table, snakemake.output.pdf)
