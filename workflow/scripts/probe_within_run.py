"""Snakemake script: probe the weights of one run at every kept step (step{s}/ subfolders)."""
import sys
from pathlib import Path

from qlf.probes import probe_weights

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
for weights in sorted(Path(snakemake.input.steps).glob("weights_step*.pt")):
    step = int(weights.stem.removeprefix("weights_step"))
    print(f"probing step {step}", flush=True)
    probe_weights(weights, Path(snakemake.output[0]) / f"step{step}",
                  graphs_dir=snakemake.params.graphs_dir, **snakemake.params.options)
