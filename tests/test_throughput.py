"""Throughput tables and the wall time they project (qlf.throughput, `qlf plan --throughput`):
a measured row adds up to the training it timed, a job's projection follows the row, the
schedule's makespan is checked against brute force, and bad tables are clear errors."""
import itertools
import math

import pandas as pd
import pytest
import yaml

from qlf.cli import main
from qlf.compute import flops_actual, load_config, make_spec
from qlf.sweep import SweepSpec, plan_sweeps
from qlf.throughput import (COLUMNS, KEY, job_seconds, load_table, measure, project,
                            projection_text, rows_by_key, shape_key)
from qlf.train import val_steps

SMOKE = "config/smoke.yaml"
TASKS = ["addition", "multiplication", "parity", "maximum_subarray"]  # no graph files needed


def table_for(config, tasks, device="cpu:x86_64 (1 threads)") -> pd.DataFrame:
    """A made-up table with one row per shape of the config, its numbers varying by shape."""
    rows = []
    for i, sweep in enumerate({shape_key(s): s for s in plan_sweeps(config, tasks)}.values()):
        rows.append(dict(zip(KEY, shape_key(sweep)), step_ms=2.0 + i, point_ms=30.0 + 5 * i,
                         fixed_s=1.5 + 0.25 * i, start_s=1.0, device=device,
                         torch="2.13.0+cpu", threads=1))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_a_measured_row_is_the_sweeps_shape_with_its_costs():
    # two learning rates of a tiny addition shape (as tests/test_sweep), budget for 40 steps
    tiny = dict(task="addition", size=6, d_model=32, n_layers=2, n_heads=4, batch_size=32,
                ctx=20.0, n_val=128, n_test=128, n_probe_train=0, n_probe_test=0, val_points=5)
    budget = 0.999 * flops_actual(40, 32, 20.0, 32, 2)
    sweep = SweepSpec(tuple(make_spec(budget=budget, lr=lr, seed=0, **tiny) for lr in (3e-3, 1e-3)))
    row = measure(sweep, start_s=0.5, steps=12)
    assert list(row) == list(COLUMNS)
    assert tuple(row[k] for k in KEY) == shape_key(sweep)
    assert row["step_ms"] > 0 and row["point_ms"] >= 0 and row["start_s"] == 0.5
    assert row["fixed_s"] > row["start_s"]  # the final evaluation and records cost something
    assert row["device"].startswith("cpu:") and row["threads"] >= 1


def test_a_job_is_fixed_cost_plus_its_steps_plus_its_curve_points():
    row = dict(fixed_s=2.0, step_ms=10.0, point_ms=100.0)
    # 500 steps with 5 curve points: the last point is the final evaluation, in fixed_s
    assert len(val_steps(500, 5)) == 5
    assert job_seconds(row, 500, 5) == pytest.approx(2.0 + 5.0 + 4 * 0.1)
    assert job_seconds(row, 1, 5) == pytest.approx(2.0 + 0.01 + (len(val_steps(1, 5)) - 1) * 0.1)


def test_projection_covers_every_sweep_with_its_own_shape():
    cfg = load_config(SMOKE)
    table = table_for(cfg, TASKS)
    jobs, makespan = project(cfg, table, 1, TASKS)
    sweeps = plan_sweeps(cfg, TASKS)
    assert sorted(jobs.sweep_id) == sorted(s.sweep_id for s in sweeps)
    rows = rows_by_key(table)
    for sweep, job in zip(sweeps, jobs.itertuples()):  # in the plan's order
        assert (job.task, job.budget, job.sweep_id) == (sweep.first.task, sweep.first.budget,
                                                        sweep.sweep_id)
        row = rows[shape_key(sweep)]
        expected = (row["fixed_s"] + sweep.first.steps * row["step_ms"] / 1000
                    + (len(val_steps(sweep.first.steps, sweep.first.val_points)) - 1)
                    * row["point_ms"] / 1000)
        assert job.seconds == pytest.approx(expected)
    assert makespan == pytest.approx(jobs.seconds.sum())  # one slot: one after another


@pytest.mark.parametrize("slots", [2, 3])
def test_the_schedule_is_within_grahams_bound_of_the_best_one(slots):
    cfg = load_config(SMOKE)
    jobs, makespan = project(cfg, table_for(cfg, TASKS), slots, TASKS)
    seconds = list(jobs.seconds)
    assert len(seconds) <= 12  # brute force below stays small
    best = min(max(sum(s for s, slot in zip(seconds, assign) if slot == j) for j in range(slots))
               for assign in itertools.product(range(slots), repeat=len(seconds)))
    assert best <= makespan + 1e-9
    assert makespan <= (4 / 3 - 1 / (3 * slots)) * best + 1e-9  # longest-first guarantee
    assert makespan >= max(seconds) and makespan >= sum(seconds) / slots - 1e-9
    # as many slots as jobs: the longest job alone
    one_each = project(cfg, table_for(cfg, TASKS), len(seconds), TASKS)[1]
    assert one_each == pytest.approx(max(seconds))


def test_a_shape_missing_from_the_table_is_named():
    cfg = load_config(SMOKE)
    table = table_for(cfg, TASKS)
    dropped = table.iloc[0]
    with pytest.raises(ValueError, match=r"lacks 1 sweep shapes.*'addition', 4, 8"):
        project(cfg, table.iloc[1:], 1, TASKS)
    assert dropped.task == "addition" and dropped.d_model == 8
    with pytest.raises(ValueError, match="slots: need >= 1"):
        project(cfg, table, 0, TASKS)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["point_ms"]), r"missing columns \['point_ms'\]"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "rows share a key"),
    (lambda t: t.assign(device=["cpu:a"] + ["cpu:b"] * (len(t) - 1)), "several devices"),
    (lambda t: t.assign(step_ms=[0.0] + list(t.step_ms[1:])), "step_ms must be > 0"),
])
def test_a_bad_table_is_a_clear_error(tmp_path, change, message):
    path = tmp_path / "bad.csv"
    change(table_for(load_config(SMOKE), TASKS)).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        load_table(path)


def test_plan_prints_the_projection_per_task_and_a_total_line(tmp_path, capsys):
    cfg = load_config(SMOKE)
    cfg["tasks"] = {t: v for t, v in cfg["tasks"].items() if t in TASKS}
    cfg["probes"]["tasks"] = {t: v for t, v in cfg["probes"]["tasks"].items() if t in TASKS}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    table = tmp_path / "h200.csv"
    table_for(cfg, None, device="cuda:NVIDIA H200").to_csv(table, index=False)
    assert main(["plan", str(config), "--throughput", str(table), "--gpus", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    _, makespan = project(cfg, load_table(table), 2)
    assert out[-1] == f"total: {makespan / 3600:.2f} h on 2 GPU"
    projection = out[next(i for i, line in enumerate(out) if line.startswith("throughput of")):]
    per_task = {line.split()[0]: line.split() for line in projection
                if line.split()[0] in TASKS}
    jobs, _ = project(cfg, load_table(table), 1)
    for task, group in jobs.groupby("task"):
        assert int(per_task[task][1]) == len(group)
        assert float(per_task[task][3]) == pytest.approx(group.seconds.sum() / 3600, abs=0.006)
    cpu = table_for(cfg, None)
    assert projection_text(cfg, cpu, 3).endswith("h on 3 CPU job slots")
    assert math.isfinite(project(cfg, cpu, 3)[1])
