"""Snakemake script: a task's runs -> the compute-optimal run per budget (qlf.scaling)."""
import sys

import pandas as pd

from qlf.scaling import frontier

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
frontier(pd.read_csv(snakemake.input[0])).to_csv(snakemake.output[0], index=False)
