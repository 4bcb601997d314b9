"""Measured training throughput per device, and the wall time it projects for a config's grid.

A throughput table (CSV, one per device; bench/bench_throughput.py writes it) has one row per
sweep shape: (task, size, d_model, n_layers, n_heads, batch_size, k) and what a training job of
that shape costs on the device that measured it:

    step_ms   one fused training step of all k members, with its share of the training data
    point_ms  one point of the validation curve (val_curve_examples examples per member)
    fixed_s   the rest of the job: process start-up (imports), model, held-out data, the final
              evaluation (the whole val set, greedy decoding of the test set), the records

They come from the phase timings (qlf.train's records) of two in-process trainings of the same
sweep, with the config's validation points and with two (the fewest), plus the measured start-up
of a fresh process. A job of a config's grid is projected as fixed_s + steps · step_ms + its curve
points · point_ms, and a grid on N devices (or CPU job slots) as the longest-job-first schedule
of its jobs on N slots.
"""
from __future__ import annotations

import heapq
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

KEY = ("task", "size", "d_model", "n_layers", "n_heads", "batch_size", "k")
COLUMNS = KEY + ("step_ms", "point_ms", "fixed_s", "start_s", "device", "torch", "threads")


def shape_key(sweep) -> tuple:
    """The table key of a sweep (qlf.sweep.SweepSpec)."""
    s = sweep.first
    return (s.task, s.size, s.d_model, s.n_layers, s.n_heads, s.batch_size, sweep.k)


def start_seconds(repeats: int = 3) -> float:
    """Seconds a fresh Python process takes to import what a training job imports (the fastest
    of `repeats`): the part of a job that an in-process timing does not see."""
    code = "import qlf.train, lightning_fabric"
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t)
    return min(times)


def measure(sweep, start_s: float, steps: int = 50, graphs_dir=None) -> dict:
    """One table row: train `sweep` in this process twice, its members' steps set to `steps`,
    once with the config's validation points and once with two curve points, and split
    the records' timings (qlf.train's Stopwatch) into per step, per point and fixed. Call it once
    on a small sweep first: the first training of a process pays one-off costs (allocator,
    kernels) that a job pays in its start-up."""
    from .sweep import SweepSpec
    from .train import train_sweep, val_steps

    if steps < 10:
        raise ValueError(f"steps: need >= 10 to time the steps, got {steps}")
    vp = sweep.first.val_points
    timings = []
    for points in (vp, 2):
        at = SweepSpec(tuple(replace(m, steps=steps, val_points=points) for m in sweep.members),
                       sweep.fuse)
        with tempfile.TemporaryDirectory() as tmp:
            outs = [Path(tmp) / f"{m.run_id}.json" for m in at.members]
            summary = train_sweep(at, outs, graphs_dir=graphs_dir, progress=False)[0]["summary"]
        # a member's phases are the sweep's divided by k (qlf.train); the sweep's wall is whole
        timings.append({**{p: summary[p] * sweep.k for p in ("train_s", "data_s", "eval_s")},
                        "wall_s": summary["sweep"]["wall_s"],
                        "points": len(val_steps(steps, points))})
    where = summary["provenance"]  # the record says what device, torch and threads timed it
    full, one = timings
    step_s = (full["train_s"] + full["data_s"]) / steps  # a step with its share of the data
    extra_points = full["points"] - one["points"]  # none when the config has <= 2: then in fixed
    point_s = max(0.0, (full["eval_s"] - one["eval_s"]) / extra_points) if extra_points else 0.0
    return dict(zip(KEY, shape_key(sweep)), step_ms=1e3 * step_s, point_ms=1e3 * point_s,
                fixed_s=start_s + full["wall_s"] - steps * step_s - (full["points"] - 1) * point_s,
                start_s=start_s, device=summary["device"], torch=where["torch"],
                threads=where["threads"])


def job_seconds(row: dict, steps: int, val_points: int) -> float:
    """Projected seconds of one training job of a row's shape: fixed + steps + curve points (the
    last validation point is the final evaluation, in fixed)."""
    from .train import val_steps

    return (row["fixed_s"] + steps * row["step_ms"] / 1e3
            + (len(val_steps(steps, val_points)) - 1) * row["point_ms"] / 1e3)


def load_table(path):
    """The throughput CSV as a DataFrame; raises ValueError on missing columns, duplicate keys or
    non-positive step times."""
    import pandas as pd

    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a throughput table, missing columns {missing} "
                         f"(bench/bench_throughput.py writes one)")
    duplicated = table[table.duplicated(list(KEY), keep=False)]
    if len(duplicated):
        raise ValueError(f"{path}: {len(duplicated)} rows share a key {KEY}, e.g. "
                         f"{tuple(duplicated.iloc[0][list(KEY)])}")
    if table.device.nunique() > 1:
        raise ValueError(f"{path}: rows from several devices {sorted(table.device.unique())}; "
                         f"one table per device")
    bad = table[~(table.step_ms > 0)]
    if len(bad):
        raise ValueError(f"{path}: step_ms must be > 0 (a noisy measurement?), e.g. row "
                         f"{tuple(bad.iloc[0][list(KEY)])}: {bad.iloc[0].step_ms}")
    return table


def rows_by_key(table) -> dict:
    """{shape key (KEY): row dict} of a throughput table."""
    return {tuple(r[k] for k in KEY): r for r in table.to_dict("records")}


def project(config, table, slots: int = 1, tasks=None):
    """(jobs, makespan_s): one row per training job (sweep) of the config with its projected
    seconds, and the projected wall time of all of them on `slots` devices (longest job first,
    each to the slot free first). Raises ValueError naming the shapes the table lacks."""
    import pandas as pd

    from .sweep import plan_sweeps

    if slots < 1:
        raise ValueError(f"slots: need >= 1, got {slots}")
    rows = rows_by_key(table)
    jobs, missing = [], set()
    for sweep in plan_sweeps(config, tasks):
        key = shape_key(sweep)
        row = rows.get(key)
        if row is None:
            missing.add(key)
            continue
        s = sweep.first
        jobs.append(dict(zip(KEY, key), budget=s.budget, steps=s.steps, sweep_id=sweep.sweep_id,
                         fixed_s=row["fixed_s"], seconds=job_seconds(row, s.steps, s.val_points)))
    if missing:
        shown = ", ".join(str(k) for k in sorted(missing)[:5])
        raise ValueError(f"the throughput table lacks {len(missing)} sweep shapes {KEY} of this "
                         f"config, e.g. {shown}; measure them with bench/bench_throughput.py")
    free = [0.0] * slots
    for seconds in sorted((j["seconds"] for j in jobs), reverse=True):
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return pd.DataFrame(jobs), max(free)


def projection_text(config, table, slots: int = 1) -> str:
    """The `qlf plan --throughput` report: jobs and device-hours per task, then the last line
    `total: <hours> h on <N> GPU` (CPU tables: `on <N> CPU job slots`)."""
    jobs, makespan = project(config, table, slots)
    unit = "GPU" if str(table.device.iloc[0]).startswith("cuda") else "CPU job slots"
    lines = [f"throughput of {table.device.iloc[0]} (torch {table.torch.iloc[0]}, "
             f"{int(table.threads.iloc[0])} threads)",
             f"{'task':<32} {'jobs':>5} {'steps':>10} {'device h':>9} {'longest job s':>14}"]
    for task, group in jobs.groupby("task", sort=False):
        lines.append(f"{task:<32} {len(group):>5} {int(group.steps.sum()):>10} "
                     f"{group.seconds.sum() / 3600:>9.2f} {group.seconds.max():>14.1f}")
    lines.append(f"{'all tasks':<32} {len(jobs):>5} {int(jobs.steps.sum()):>10} "
                 f"{jobs.seconds.sum() / 3600:>9.2f} {jobs.seconds.max():>14.1f}")
    fixed_share = jobs.fixed_s.sum() / jobs.seconds.sum()
    lines.append(f"of the device hours, {fixed_share:.0%} is the jobs' fixed cost (start-up, "
                 f"evaluation), the rest their steps and curve points")
    lines.append(f"total: {makespan / 3600:.2f} h on {slots} {unit}")
    return "\n".join(lines)
