"""Snakemake script: ablate one feature's probe directions in the target model for every
configured top-k, with both random controls (qlf.ablations)."""
import json
import sys
from pathlib import Path

from qlf.ablations import ablate_weights
from qlf.train import resolve_weights

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
# at the target budget the input is the within-run folder: its last step is the final model
result = ablate_weights(resolve_weights(snakemake.input.weights),
                        Path(snakemake.input.probes) / "probes.npz", snakemake.wildcards.feature,
                        graphs_dir=snakemake.params.graphs_dir,
                        top_k=snakemake.params.top_k,
                        control_top_k=snakemake.params.control_top_k,
                        n_random=snakemake.params.n_random,
                        n_boot=snakemake.params.n_boot, seed=snakemake.params.seed)
# the training seed of the ablated model: the summary keeps one row per seed
result = {"train_seed": int(snakemake.params.train_seed), **result}
Path(snakemake.output[0]).write_text(json.dumps(result, indent=1))
