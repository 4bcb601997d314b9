"""Snakemake script: every ablation result -> results/ablations/summary.csv (one row per task,
training seed, feature and k), targets.csv (one row per ablated probe row and layer),
across_seeds.csv (per task, feature and k over training seeds) and ablations.pdf."""
import json
import sys
from pathlib import Path

from qlf.ablations import across_seeds, summary_table, targets_table
from qlf.plots import plot_ablations

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
results = [json.loads(Path(p).read_text()) for p in snakemake.input]
table = summary_table(results)  # provenance columns: each result's own
table.to_csv(snakemake.output.table, index=False)
targets_table(results).to_csv(snakemake.output.targets, index=False)
across_seeds(table).to_csv(snakemake.output.across_seeds, index=False)
plot_ablations(table, snakemake.output.pdf)
