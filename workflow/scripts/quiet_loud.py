"""Snakemake script: quiet or loud per task, feature and position group (qlf.probes)."""
import sys
from pathlib import Path

import pandas as pd

from qlf.probes import classify_features, load_probe_dirs

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
transitions = pd.read_csv(snakemake.input.transitions).set_index("task")["transition_budget"]
verdicts = []
for task, across, examples, random in zip(snakemake.params.tasks, snakemake.input.across,
                                          snakemake.input.across_examples, snakemake.input.random):
    _, baseline = load_probe_dirs(sorted(Path(random).glob("seed*")), key="seed")
    verdicts.append(classify_features(pd.read_csv(across), pd.read_csv(examples), baseline,
                                      transitions.get(task), n_boot=snakemake.params.n_boot,
                                      alpha=snakemake.params.alpha, seed=snakemake.params.seed))
pd.concat(verdicts, ignore_index=True).to_csv(snakemake.output[0], index=False)
