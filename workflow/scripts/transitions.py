"""Snakemake script: every task's frontier -> power-law fits and transition budgets."""
import sys

import pandas as pd

from qlf.provenance import with_provenance
from qlf.scaling import transitions

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
frontiers = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
# computed here, so this process's provenance (the frontiers' per-run columns are not carried)
with_provenance(transitions(frontiers, **snakemake.params.options)).to_csv(snakemake.output[0],
                                                                           index=False)
