# Config helpers and input functions; nothing else.
import functools
import math

import qlf.compute
from qlf.tasks import TASKS, GraphTask
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")
try:
    CONFIG = qlf.compute.validate_config(config)
except ValueError as err:  # cross-key rules the schema cannot express (d_model % heads, ...)
    raise WorkflowError(f"config: {err}") from None

TASK_NAMES = list(CONFIG["tasks"])
GRAPHS_DIR = CONFIG["graphs"]["dir"]
RESOURCES = CONFIG["resources"]

RUN_RECORD = "results/runs/{task}/n{size}/C{exp}/{run_id}.json"
RUN_CHECKPOINTS = "results/checkpoints/{task}/n{size}/C{exp}/{run_id}"

wildcard_constraints:
    task="|".join(TASK_NAMES),
    size=r"\d+",
    exp=r"\d+",
    n=r"\d+",
    run_id=r"d\d+_L\d+_H\d+_lr[0-9.e+-]+_B\d+",


def is_graph_task(task):
    return issubclass(TASKS[task], GraphTask)


def graph_file(task):
    return f"{GRAPHS_DIR}/graph{CONFIG['tasks'][task]['size']}c.g6"


@functools.cache
def _plan(task):
    return qlf.compute.plan(CONFIG, tasks=[task])


def task_runs(task):
    """The RunSpecs of one task. Measuring a graph task's ctx needs its graph sample, so then the
    plan waits for the graphs checkpoint; a pinned ctx plans without it."""
    entry = CONFIG["tasks"][task]
    if entry["ctx"] is None and is_graph_task(task):
        checkpoints.graphs.get(n=entry["size"])
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


def train_inputs(wildcards):
    return [graph_file(wildcards.task)] if is_graph_task(wildcards.task) else []


def train_runtime(wildcards):
    """SLURM minutes: start-up plus the run's FLOPs at a conservative throughput, doubled."""
    spec = run_spec(wildcards)
    seconds = RESOURCES.get("startup_s", 60) + spec.flops / RESOURCES.get("flops_per_s", 2e9)
    return max(5, math.ceil(2 * seconds / 60))


def train_mem_mb(wildcards):
    spec = run_spec(wildcards)
    params = 12 * spec.n_layers * spec.d_model**2
    activations = spec.batch_size * spec.n_layers * spec.d_model * 160 * 16
    return 1500 + math.ceil(16 * (params + activations) / 2**20)


def all_targets():
    return ["results/plots/scaling_law.pdf", "results/scaling/transitions.csv"]
