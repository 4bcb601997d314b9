"""A device's throughput table for a config: per sweep shape of the config, ms per fused step and
the fixed seconds of a job (qlf.throughput), written as CSV for `qlf plan CONFIG --throughput`.

    python bench/bench_throughput.py CONFIG --out throughput_cpu.csv [--tasks addition,...]
    python bench/bench_throughput.py CONFIG --out T.csv --compare RUN_DIR   # + projection check

Each shape is measured on one sweep of the config, its steps set to --steps, trained in this
process twice (qlf.throughput.measure) on --threads CPU threads (or the GPU when there is one).
Rows already in --out are kept and not measured again, so an interrupted run resumes.
--compare RUN_DIR: RUN_DIR ran this config through Snakemake (e.g. a clone that
bench/default_config.sh made); prints each training job's measured seconds (its benchmarks/train
TSV) against the projection, and the totals.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import torch

from qlf.compute import load_config
from qlf.sweep import plan_sweeps
from qlf.throughput import (COLUMNS, load_table, measure, project, rows_by_key, shape_key,
                            start_seconds)


def representatives(cfg: dict, tasks) -> dict:
    """{shape key: the config's first sweep of that shape}."""
    chosen = {}
    for sweep in plan_sweeps(cfg, tasks):
        chosen.setdefault(shape_key(sweep), sweep)
    return chosen


def compare(cfg: dict, table: pd.DataFrame, run_dir: Path, tasks) -> None:
    jobs, _ = project(cfg, table, 1, tasks)
    measured = []
    for job in jobs.to_dict("records"):
        tsv = (run_dir / "benchmarks/train" / job["task"] / f"n{job['size']}"
               / f"C{round(math.log10(job['budget']))}" / f"{job['sweep_id']}.tsv")
        measured.append(pd.read_csv(tsv, sep="\t").s.iloc[0] if tsv.is_file() else float("nan"))
    jobs["measured_s"] = measured
    jobs["ratio"] = jobs.seconds / jobs.measured_s
    print("\n## projected vs measured seconds per training job (ratio = projected / measured)")
    per_task = jobs.groupby("task").agg(jobs=("seconds", "size"), projected_s=("seconds", "sum"),
                                        measured_s=("measured_s", "sum"),
                                        ratio_min=("ratio", "min"),
                                        ratio_median=("ratio", "median"),
                                        ratio_max=("ratio", "max"))
    per_task.loc["all tasks"] = [len(jobs), jobs.seconds.sum(), jobs.measured_s.sum(),
                                 jobs.ratio.min(), jobs.ratio.median(), jobs.ratio.max()]
    print(per_task.round(2).to_string())
    missing = int(jobs.measured_s.isna().sum())
    if missing:
        print(f"({missing} jobs have no benchmark TSV in {run_dir})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tasks", type=lambda t: t.split(","), default=None)
    p.add_argument("--graphs-dir", type=Path, default=None,
                   help="graph files (default: the config's graphs.dir)")
    p.add_argument("--steps", type=int, default=50, help="steps of each timed training")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compare", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    graphs_dir = args.graphs_dir or Path(cfg["graphs"]["dir"])
    chosen = representatives(cfg, args.tasks)
    done = load_table(args.out) if args.out.is_file() else pd.DataFrame(columns=COLUMNS)
    have = rows_by_key(done)
    todo = [key for key in chosen if key not in have]
    print(f"{len(chosen)} shapes, {len(chosen) - len(todo)} already in {args.out}", flush=True)
    if todo:
        start_s = start_seconds()
        smallest = min(chosen.values(), key=lambda s: (s.first.d_model, s.first.n_layers, s.k))
        measure(smallest, start_s, args.steps, graphs_dir)  # the process's one-off costs
        rows = done.to_dict("records")
        for i, key in enumerate(todo, 1):
            rows.append(measure(chosen[key], start_s, args.steps, graphs_dir))
            pd.DataFrame(rows, columns=COLUMNS).to_csv(args.out, index=False)  # kept on a crash
            r = rows[-1]
            print(f"[{i}/{len(todo)}] {key}: {r['step_ms']:.2f} ms/step, "
                  f"{r['point_ms']:.1f} ms/val point, fixed {r['fixed_s']:.2f} s",
                  file=sys.stderr, flush=True)
    table = load_table(args.out)
    print(table.round(3).to_string(index=False))
    if args.compare is not None:
        compare(cfg, table, args.compare, args.tasks)


if __name__ == "__main__":
    main()
