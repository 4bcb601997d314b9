# Config helpers and input functions; nothing else.
import functools
import json
import math
from pathlib import Path

import pandas as pd
import qlf.compute
import qlf.graphs
import qlf.scaling
import qlf.sweep
import qlf.tasks
import qlf.throughput
from qlf.tasks import TASKS, GraphTask
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")
# cross-key rules the schema cannot express (d_model % heads, probed tasks' budgets, ...)
try:
    CONFIG = qlf.compute.validate_config(config)
except ValueError as err:
    raise WorkflowError(f"config: {err}") from None

TASK_NAMES = list(CONFIG["tasks"])
GRAPHS_DIR = CONFIG["graphs"]["dir"]
# graph file names without .g6 (graph11c, perfect7, planar8c, eulerian9c: qlf.graphs)
GRAPH_FILE_PATTERN = "|".join(c.stem.replace("{n}", r"\d+")
                              for c in qlf.graphs.GRAPH_CLASSES.values())
RESOURCES = CONFIG["resources"]

RUN_RECORD = "results/runs/{task}/n{size}/C{exp}/{run_id}.json"
RUN_CHECKPOINTS = "results/checkpoints/{task}/n{size}/C{exp}/{run_id}"
# A sweep's resume checkpoint, and the finished records kept for reuse when the sweep grows
# (both outside the declared outputs, so Snakemake never deletes them before a rerun).
SWEEP_CHECKPOINTS = "results/checkpoints/{task}/n{size}/C{exp}/{sweep_id}"
KEPT_RECORDS = "results/checkpoints/{task}/n{size}/C{exp}/kept"
FUSE = CONFIG["training"]["fuse"]
SEEDS = qlf.compute.config_seeds(CONFIG)  # the first seeds graph samples and bootstraps
MODEL_FINAL = "results/models/{task}/n{size}/C{exp}/{run_id}/weights_final.pt"
MODEL_STEPS = "results/models/{task}/n{size}/C{exp}/{run_id}/steps"

PROBES = CONFIG["probes"]
PROBE_TASKS = list(PROBES.get("tasks", {}))
PROBE_OPTIONS = {k: PROBES[k] for k in ("max_bytes", "batch_size", "solver") if k in PROBES}
ABLATIONS = CONFIG["ablations"]
# training.monitor: true (every task) or a list of tasks whose runs carry summary.monitor
_MONITOR = CONFIG["training"].get("monitor") or []
MONITOR_TASKS = TASK_NAMES if _MONITOR is True else [t for t in TASK_NAMES if t in _MONITOR]

wildcard_constraints:
    task="|".join(TASK_NAMES),
    size=r"\d+",
    exp=r"\d+",
    n=r"\d+",
    run_id=r"d\d+_L\d+_H\d+_lr[0-9.e+-]+_B\d+(_s\d+)?",
    step=r"\d+",
    d_model=r"\d+",
    n_layers=r"\d+",
    n_heads=r"\d+",
    batch_size=r"\d+",
    lr=r"[0-9.e+-]+",
    seed=r"\d+",


def is_graph_task(task):
    return issubclass(TASKS[task], GraphTask)


def graph_file(task):
    """The task's graph file: its class (TASKS[task].graph_class) on its number of nodes."""
    name = qlf.graphs.graph_file_name(CONFIG["tasks"][task]["size"], TASKS[task].graph_class)
    return f"{GRAPHS_DIR}/{name}"


@functools.cache
def _plan(task):
    return qlf.compute.plan(CONFIG, tasks=[task])


def task_runs(task):
    """The RunSpecs of one task. Measuring a graph task's ctx needs its graph sample, so then the
    plan waits for the graphs checkpoint; a pinned ctx plans without it."""
    entry = CONFIG["tasks"][task]
    if entry["ctx"] is None and is_graph_task(task):
        checkpoints.graphs.get(graph_file=Path(graph_file(task)).stem)
    return _plan(task)


def record_path(spec):
    exp = round(math.log10(spec.budget))
    return RUN_RECORD.format(task=spec.task, size=spec.size, exp=exp, run_id=spec.run_id)


def task_records(wildcards):
    return [record_path(spec) for spec in task_runs(wildcards.task)]


def all_records():
    return [record_path(spec) for task in TASK_NAMES for spec in task_runs(task)]


def run_spec(wildcards):
    """The spec behind a record path; a path outside the config's plan is an error."""
    for spec in task_runs(wildcards.task):
        if record_path(spec) == RUN_RECORD.format(**wildcards):
            return spec
    raise WorkflowError(f"{RUN_RECORD.format(**wildcards)} is not a run of the config's plan "
                        f"(see `qlf plan`)")


def task_seeds(task):
    """A task's data seeds (its entry's `seed`, else the config's)."""
    return qlf.compute.config_seeds(CONFIG, task)


def sweep_id_pattern(task):
    """A sweep's name as a wildcard pattern: the run_id without its fused parts."""
    named = qlf.compute.seed_in_run_id(CONFIG, task)
    return ("d{d_model}_L{n_layers}_H{n_heads}" + ("" if "lr" in FUSE else "_lr{lr}")
            + "_B{batch_size}" + ("" if "seed" in FUSE or not named else "_s{seed}"))


def sweep_outputs(task):
    """The record paths of one training job of `task`: one per member, the fused values (its
    learning rates, its seeds) written out, everything else a wildcard."""
    lrs = [repr(lr) for lr in CONFIG["tasks"][task]["lr"]] if "lr" in FUSE else ["{lr}"]
    seeds = [""]
    if qlf.compute.seed_in_run_id(CONFIG, task):
        seeds = [f"_s{seed}" for seed in task_seeds(task)] if "seed" in FUSE else ["_s{seed}"]
    return [f"results/runs/{{task}}/n{{size}}/C{{exp}}/d{{d_model}}_L{{n_layers}}_H{{n_heads}}"
            f"_lr{lr}_B{{batch_size}}{seed}.json" for lr in lrs for seed in seeds]


@functools.cache
def _sweeps(task):
    return qlf.sweep.group_sweeps(task_runs(task), FUSE)


def sweep_of(wildcards):
    """The sweep behind a training job; a job outside the config's plan is an error."""
    paths = {p.format(**wildcards) for p in sweep_outputs(wildcards.task)}
    for sweep in _sweeps(wildcards.task):
        if {record_path(m) for m in sweep.members} == paths:
            return sweep
    raise WorkflowError(f"{sorted(paths)[0]} is not a run of the config's plan (see `qlf plan`)")


def sweep_checkpoints(wildcards):
    return SWEEP_CHECKPOINTS.format(sweep_id=sweep_of(wildcards).sweep_id, **wildcards)


def kept_records(wildcards):
    return KEPT_RECORDS.format(**wildcards)


@functools.cache
def throughput_rows():
    """{shape key: row} of resources.throughput (a device's measured table; qlf.throughput)."""
    return qlf.throughput.rows_by_key(qlf.throughput.load_table(RESOURCES["throughput"]))


def sweep_runtime(wildcards):
    """SLURM minutes of a sweep, doubled: its projection from resources.throughput (a shape
    the table lacks is an error), else start-up plus all members' FLOPs at a conservative
    throughput."""
    sweep = sweep_of(wildcards)
    if "throughput" in RESOURCES:
        row = throughput_rows().get(qlf.throughput.shape_key(sweep))
        if row is None:
            raise WorkflowError(f"resources.throughput {RESOURCES['throughput']} lacks the shape "
                                f"{qlf.throughput.shape_key(sweep)} {qlf.throughput.KEY}; "
                                f"measure it with bench/bench_throughput.py")
        seconds = qlf.throughput.job_seconds(row, sweep.first.steps, sweep.first.val_points)
    else:
        seconds = RESOURCES.get("startup_s", 60) + sweep.flops / RESOURCES.get("flops_per_s", 2e9)
    return max(5, math.ceil(2 * seconds / 60))


def sweep_mem_mb(wildcards):
    sweep = sweep_of(wildcards)
    return _mem_mb(sweep.first, sweep.k)


def train_inputs(wildcards):
    return [graph_file(wildcards.task)] if is_graph_task(wildcards.task) else []


def train_runtime(wildcards):
    """SLURM minutes: start-up plus the run's FLOPs at a conservative throughput, doubled."""
    spec = run_spec(wildcards)
    seconds = RESOURCES.get("startup_s", 60) + spec.flops / RESOURCES.get("flops_per_s", 2e9)
    return max(5, math.ceil(2 * seconds / 60))


def train_mem_mb(wildcards):
    return _mem_mb(run_spec(wildcards), 1)


def _mem_mb(spec, members):
    """Parameters with their gradients and AdamW state, and activations, of `members` models."""
    params = 12 * spec.n_layers * spec.d_model**2
    activations = spec.batch_size * spec.n_layers * spec.d_model * 160 * 16
    return 1500 + math.ceil(16 * members * (params + activations) / 2**20)


def probe_target(task):
    return PROBES["tasks"][task]["target_budget"]


def probe_series(task):
    """The probed models of a task: the compute-optimal shape at the target budget and, at every
    budget up to the maximum, its best lr and batch (by the mean val_loss over seeds), one row per
    (budget, seed) (read from the frontier checkpoint; qlf.scaling.fixed_shape_series)."""
    entry = PROBES["tasks"][task]
    frontier = checkpoints.frontier.get(task=task).output[0]
    return qlf.scaling.fixed_shape_series(
        pd.read_csv(f"results/scaling/{task}.csv"), pd.read_csv(frontier),
        10.0 ** entry["target_budget"], 10.0 ** entry.get("max_budget", entry["target_budget"]))


def probe_budgets(task, seed):
    series = probe_series(task)
    return [int(exp) for exp in series[series.seed == int(seed)].budget_exp]


def probe_model(task, exp, seed, pattern=MODEL_FINAL):
    """The weights (MODEL_FINAL), step weights (MODEL_STEPS) or record (RUN_RECORD) of training
    seed `seed`'s probed model at budget 1e{exp}."""
    series = probe_series(task)
    row = series[(series.budget_exp == int(exp)) & (series.seed == int(seed))]
    if row.empty:
        raise WorkflowError(f"probes: {task} has no run of the target shape at budget 1e{exp} "
                            f"with seed {seed}")
    row = row.iloc[0]
    return pattern.format(task=task, size=row["size"], exp=exp, run_id=row.run_id)


def target_weights(task, seed):
    """The target budget's model: the within-run retraining's step folder, whose last step is
    that run's final model (qlf.train.resolve_weights), so the run is trained once."""
    return probe_model(task, probe_target(task), seed, MODEL_STEPS)


def probe_root(task, seed):
    """Every probe result of one training seed's models of a task."""
    return f"results/probes/{task}/seed{seed}"


def probe_dir(task, exp, seed):
    """The probe results of the model at budget 1e{exp}; at the target budget those of the
    within-run retraining's last step (the same model, probed once)."""
    if int(exp) == probe_target(task):
        return f"{probe_root(task, seed)}/within/step{within_steps(task, seed)[-1]}"
    return f"{probe_root(task, seed)}/budgets/C{exp}"


def within_steps(task, seed):
    """The steps of the target budget's run whose weights are kept and probed (0, 1, 2, 4, ...,
    final: qlf.compute.within_run_steps)."""
    record = probe_model(task, probe_target(task), seed, RUN_RECORD)
    spec = qlf.compute.RunSpec.from_dict(json.loads(Path(record).read_text())["spec"])
    return qlf.compute.within_run_steps(spec.steps)


def probe_outputs(pattern):
    """`pattern` ({task}, {seed}) for every probed task and training seed."""
    return [pattern.format(task=task, seed=seed) for task in PROBE_TASKS
            for seed in task_seeds(task)]


def figure_outputs(pattern):
    """`pattern` for every probed task and the first training seed: the probe figures show one
    seed's curves (the verdicts they mark are across seeds)."""
    return [pattern.format(task=task, seed=task_seeds(task)[0]) for task in PROBE_TASKS]


def ablation_features(task):
    """Configured features of a task (default: every feature it declares)."""
    names = ABLATIONS.get("features", {}).get(task)
    if names is None:
        names = [f.name for f in qlf.tasks.get_task(task, CONFIG["tasks"][task]["size"],
                                                   graphs_dir=GRAPHS_DIR).features]
    return names


def monitor_records():
    """The records of the monitored tasks' frontier runs (read from the frontier checkpoints)."""
    return [path for task in MONITOR_TASKS
            for path in pd.read_csv(checkpoints.frontier.get(task=task).output[0]).path]


def all_targets():
    targets = ["results/plots/scaling_law.pdf", "results/scaling/transitions.csv"]
    if PROBE_TASKS:
        targets += ["results/probes/quiet_loud.csv", "results/plots/quiet_loud_features.pdf",
                    "results/plots/within_run_probes.pdf", "results/ablations/summary.csv",
                    "results/plots/ablations.pdf"]
        targets += ["results/paper_comparison.csv", "results/plots/paper_comparison.pdf"]
    if MONITOR_TASKS:
        targets += ["results/monitor/early_warning.csv", "results/plots/early_warning.pdf"]
    return targets
