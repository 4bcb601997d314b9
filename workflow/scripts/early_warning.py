"""Snakemake script: the early-warning table of the monitored tasks' frontier runs."""
import sys

import pandas as pd

from qlf.monitor import early_warning
from qlf.provenance import with_provenance

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
frontier = pd.concat([pd.read_csv(p) for p in snakemake.input.frontiers], ignore_index=True)
with_provenance(early_warning(frontier)).to_csv(snakemake.output[0], index=False)
