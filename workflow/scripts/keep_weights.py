"""Snakemake script: retrain a grid run deterministically, keeping its final weights
(rule keep_final_weights) or its weights at steps 0, 1, 2, 4, ..., final (rule keep_step_weights)."""
import json
import sys
from pathlib import Path

from qlf.compute import RunSpec, within_run_steps
from qlf.train import train_run

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
spec = RunSpec.from_dict(json.loads(Path(snakemake.input.record).read_text())["spec"])
run_dir = Path(snakemake.output[0]) if snakemake.rule == "keep_step_weights" else \
    Path(snakemake.output[0]).parent
steps = within_run_steps(spec.steps) if snakemake.rule == "keep_step_weights" else ()
record = train_run(spec, run_dir / "record.json", run_dir=run_dir,
                   graphs_dir=snakemake.params.graphs_dir, save_steps=steps,
                   save_final=snakemake.rule == "keep_final_weights")
original = json.loads(Path(snakemake.input.record).read_text())["summary"]
print(f"retrained val_loss {record['summary']['val_loss']!r}, grid run {original['val_loss']!r}")
