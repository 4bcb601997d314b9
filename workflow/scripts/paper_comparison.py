"""Snakemake script: the paper's headline numbers next to ours -> results/paper_comparison.csv
and its figure (qlf.comparison)."""
import sys

import pandas as pd

from qlf.comparison import load_paper_numbers, paper_comparison
from qlf.plots import plot_paper_comparison
from qlf.provenance import with_provenance

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
table = paper_comparison(load_paper_numbers(), pd.read_csv(snakemake.input.transitions),
                         pd.read_csv(snakemake.input.quiet_loud),
                         pd.read_csv(snakemake.input.ablations), snakemake.params.config)
with_provenance(table).to_csv(snakemake.output.table, index=False)
plot_paper_comparison(table, snakemake.output.pdf)
