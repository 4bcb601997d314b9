"""Snakemake script: quiet or loud per task, training seed, feature and position group
(qlf.probes.classify_features), and the verdict across seeds (verdicts_across_seeds)."""
import sys
from pathlib import Path

import pandas as pd

from qlf.probes import classify_features, load_probe_dirs, verdicts_across_seeds
from qlf.provenance import with_provenance

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
transitions = pd.read_csv(snakemake.input.transitions).set_index("task")["transition_budget"]
per_seed = []
for (task, seed), across, examples, random in zip(
        snakemake.params.task_seeds, snakemake.input.across, snakemake.input.across_examples,
        snakemake.input.random):
    _, baseline = load_probe_dirs(sorted(Path(random).glob("seed*")), key="seed")
    verdicts = classify_features(pd.read_csv(across), pd.read_csv(examples), baseline,
                                 transitions.get(task), n_boot=snakemake.params.n_boot,
                                 alpha=snakemake.params.alpha, seed=snakemake.params.seed)
    per_seed.append(verdicts.assign(train_seed=seed))
per_seed = pd.concat(per_seed, ignore_index=True)
with_provenance(per_seed).to_csv(snakemake.output.per_seed, index=False)
with_provenance(verdicts_across_seeds(per_seed)).to_csv(snakemake.output.verdicts, index=False)
