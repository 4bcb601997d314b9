"""Compute accounting, run specs, the config format and the grid plan (pipeline.md §1-§3, §13).

FLOPs model [KEEP] (pipeline.md §2.1): a model of width d with L layers, on examples of mean
unpadded length ctx (first-EOS index + 1, prompt included), costs per token, forward only,

    F = 12·L·d² + L·ctx·d          (non-embedding weights + an attention-context term)

and training on T tokens costs C = 6·F·T. A budget C therefore buys T = C / (6·F) tokens, i.e.
ceil(T / (B·ctx)) optimizer steps of batch B. A run takes exactly those steps in one pass over a
never-repeating stream, so it consumes steps·B examples. The grid keeps a (B, lr, d, L) cell iff
min_steps <= steps <= max_steps_cap (the cap 1e5 is the paper's only pruning).

ctx is measured once per (task, size, graph file) on a fixed seeded sample and reused by every
stage [FIX of the reference's three different estimates, §12.6]; a config may pin it instead.

Config format (YAML; `load_config` fills defaults and validates, naming the offending key):

    seed: 0                       # data seed of every run; model seeds are derived from it
    graphs:
      dir: resources/graphs       # where graph{n}c.g6 files live
      keep: {11: 1.0}             # node count -> fraction of connected graphs kept, (0, 1]
    data: {n_val: 1000, n_test: 1000, n_probe_train: 10000, n_probe_test: 1000}
    training: {precision: "32", val_points: 20, max_steps_cap: 100000}   # + optimiser options
    grid:                         # the default grid of every task
      d_model: [8, 16]
      n_layers: [4]
      n_heads: 4
      lr: [1.0e-3]
      batch_size: [64]
      budgets: [9, 10]            # exponents k of budgets 10**k FLOPs, 5 <= k <= 20
    tasks:                        # task name -> entry; size is required, any grid key may be
      addition: {size: 16}        # overridden, and ctx pins the context length
      graph_path: {size: 11, budgets: [9], ctx: 61.9140625}

A pinned ctx means the plan never touches the task's data: it neither samples the task to measure
ctx nor checks that the instance space holds enough examples. Without it, both happen at plan time
(graph tasks then need their graph file).
"""
from __future__ import annotations

import copy
import functools
import hashlib
import math
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from .data import Layout, Stream
from .tasks import DEFAULT_GRAPHS_DIR, TASKS, GraphTask, Task, get_task

CTX_SEED = 42  # data seed of the sample that measures ctx (the reference used 42 too)
CTX_SAMPLE = 4096  # examples in that sample
MIN_BUDGET_EXP, MAX_BUDGET_EXP = 5, 20
PRECISIONS = ("32", "bf16-mixed")


# -- the FLOPs model -------------------------------------------------------------------------------

def _check_shape(d_model, n_layers, ctx) -> None:
    if d_model < 1 or n_layers < 1:
        raise ValueError(f"d_model and n_layers must be >= 1, got {d_model} and {n_layers}")
    if not ctx > 0:
        raise ValueError(f"ctx must be > 0 tokens, got {ctx}")


def flops_per_token(d_model: int, n_layers: int, ctx: float) -> float:
    """F = 12·L·d² + L·ctx·d: forward FLOPs per token (embeddings excluded)."""
    _check_shape(d_model, n_layers, ctx)
    return 12 * n_layers * d_model * d_model + n_layers * ctx * d_model


def tokens_for_budget(budget: float, d_model: int, n_layers: int, ctx: float) -> float:
    """T = C / (6·F): training tokens a budget buys."""
    if not budget > 0:
        raise ValueError(f"budget must be > 0 FLOPs, got {budget}")
    return budget / (6 * flops_per_token(d_model, n_layers, ctx))


def max_steps(budget: float, d_model: int, n_layers: int, ctx: float, batch_size: int) -> int:
    """ceil(T / (B·ctx)): optimizer steps of a run (the reference's formula order, so ceil()
    lands where it did)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return math.ceil(tokens_for_budget(budget, d_model, n_layers, ctx) / (batch_size * ctx))


def train_examples(budget: float, d_model: int, n_layers: int, ctx: float,
                   batch_size: int) -> int:
    """Examples a run consumes: steps·B (every step a full batch of fresh examples)."""
    return max_steps(budget, d_model, n_layers, ctx, batch_size) * batch_size


def reference_train_set_size(budget: float, d_model: int, n_layers: int, ctx: float) -> int:
    """The reference's train-set size int(ceil(T/ctx)·1.25), for comparison only: it wrote 25%
    more examples than a run uses (and fewer than one batch at tiny budgets)."""
    return int(math.ceil(tokens_for_budget(budget, d_model, n_layers, ctx) / ctx) * 1.25)


def flops_actual(steps: int, batch_size: int, ctx: float, d_model: int, n_layers: int) -> float:
    """6·F·steps·B·ctx: the FLOPs a run really spends (>= the budget, because of the ceil)."""
    return 6 * flops_per_token(d_model, n_layers, ctx) * steps * batch_size * ctx


# -- context length --------------------------------------------------------------------------------

_CTX_CACHE: dict[tuple, float] = {}


def _data_identity(task: Task) -> tuple:
    """What a task's examples depend on beyond (name, size): the graph file's identity."""
    if not isinstance(task, GraphTask):
        return ()
    path = task.graph_path.resolve()  # the file of the task's graph class
    stat = path.stat()  # a missing file raises FileNotFoundError here, loudly
    return (str(path), stat.st_size, stat.st_mtime_ns)


def context_length(task: Task, n: int = CTX_SAMPLE) -> float:
    """Mean unpadded length (last scored position + 1, prompt included: the first EOS + 1 for a
    one-answer task, the last segment's EOS + 1 for repeated_addition) over a fixed seeded sample
    of min(n, space_size) distinct classes; computed once per (task, size, graph file)."""
    key = (task.name, task.size, _data_identity(task), n)
    if key not in _CTX_CACHE:
        count = min(n, task.space_size)
        ex = Stream(task, seed=CTX_SEED, layout=Layout(0, 0, 0, 0)).examples(
            "train", count=count, features=False)
        is_eos = ex.ids == task.eos_id
        if not is_eos.any(axis=1).all():
            raise RuntimeError(f"{task.name} size {task.size}: an example has no EOS token")
        last_scored = ex.loss_mask.shape[1] - 1 - np.argmax(ex.loss_mask[:, ::-1], axis=1)
        _CTX_CACHE[key] = float(np.mean(np.maximum(np.argmax(is_eos, axis=1), last_scored) + 1.0))
    return _CTX_CACHE[key]


# -- value checks shared by RunSpec and the config -------------------------------------------------

def _as_int(value: Any, key: str) -> int:
    """An integer (integral floats and numeric strings such as '1e5' from YAML accepted)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    return int(value)


def _as_bool(value: Any, key: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    return bool(value)


def _as_str(value: Any, key: str) -> str:
    """Text (an unquoted YAML number such as precision 32 accepted as its digits)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{key}: expected text, got {value!r}")
    return str(value)


def _as_float(value: Any, key: str) -> float:
    """A finite real (numeric strings such as '1e-3', which YAML leaves as text, accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, np.integer,
                                                         np.floating)):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{key}: expected a finite number, got {value!r}")
    return out


# field -> (converter, predicate, what is allowed); RunSpec fields and the training options.
_RULES: dict[str, tuple] = {
    "size": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "budget": (_as_float, lambda v: v > 0, "a number of FLOPs > 0"),
    "d_model": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "n_layers": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "n_heads": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "lr": (_as_float, lambda v: v > 0, "a learning rate > 0"),
    "batch_size": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "seed": (_as_int, lambda v: v >= 0, "an integer >= 0"),
    "model_seed": (_as_int, lambda v: v >= 0, "an integer >= 0"),
    "ctx": (_as_float, lambda v: v > 0, "a mean example length > 0 tokens"),
    "steps": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "warmup_ratio": (_as_float, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "warmup_start": (_as_float, lambda v: 0 < v <= 1, "a fraction of the peak lr in (0, 1]"),
    "min_lr_ratio": (_as_float, lambda v: 0 <= v <= 1, "a fraction of the peak lr in [0, 1]"),
    "weight_decay": (_as_float, lambda v: v >= 0, "a number >= 0"),
    "beta1": (_as_float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (_as_float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "grad_clip": (_as_float, lambda v: v >= 0, "a gradient norm >= 0 (0 = no clipping)"),
    "precision": (_as_str, lambda v: v in PRECISIONS, f"one of {PRECISIONS}"),
    "norm_eps": (_as_float, lambda v: v >= 0, "a number >= 0"),
    "n_val": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "n_test": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "n_probe_train": (_as_int, lambda v: v >= 0, "an integer >= 0"),
    "n_probe_test": (_as_int, lambda v: v >= 0, "an integer >= 0"),
    "val_points": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "val_curve_examples": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "min_steps": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "max_steps_cap": (_as_int, lambda v: v >= 1, "an integer >= 1"),
    "name_seed": (_as_bool, lambda v: True, "true or false"),
    "monitor": (_as_bool, lambda v: True, "true or false"),
}


def _check(field: str, value: Any, key: str | None = None) -> Any:
    """Convert and check one value by its rule; errors name `key` (default: the field)."""
    key = key or field
    convert, ok, allowed = _RULES[field]
    value = convert(value, key)
    if not ok(value):
        raise ValueError(f"{key}: {value!r} is not allowed; expected {allowed}")
    return value


def _check_heads(d_model: int, n_heads: int, key: str) -> None:
    if d_model % n_heads:
        raise ValueError(f"{key}: d_model {d_model} is not divisible by n_heads {n_heads}")
    if (d_model // n_heads) % 2:
        raise ValueError(f"{key}: head dim d_model/n_heads = {d_model // n_heads} must be even "
                         f"(rotary embeddings rotate pairs of dimensions)")


@functools.lru_cache(maxsize=None)
def _check_task_size(task: str, size: int) -> None:
    """The task's own size rules (range, evenness); graph tasks open no file here."""
    try:
        get_task(task, size)
    except ValueError as err:
        raise ValueError(f"size: {err}") from None


# -- one training run ------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything one training run needs: task, compute, shape, optimiser, schedule, data sizes.

    seed is the data seed (held-out sets and training stream, shared by all runs of a task);
    model_seed initialises the weights. ctx and steps are the accounting results, stored so a
    run never recomputes them differently. name_seed puts the seed in run_id (configs that list
    several seeds); monitor fits the quiet-feature probes during training (qlf.monitor).
    """

    task: str
    size: int
    budget: float
    d_model: int
    n_layers: int
    n_heads: int
    lr: float
    batch_size: int
    ctx: float
    steps: int
    seed: int = 0
    model_seed: int = 0
    warmup_ratio: float = 0.1
    warmup_start: float = 0.01
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    precision: str = "32"
    norm_eps: float = 1e-5
    n_val: int = 1000
    n_test: int = 1000
    n_probe_train: int = 10000
    n_probe_test: int = 1000
    val_points: int = 20
    val_curve_examples: int = 256  # val examples of the curve's points before the last
    name_seed: bool = False
    monitor: bool = False

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; known tasks: {', '.join(TASKS)}")
        for f in fields(self):
            if f.name != "task":  # normalise types, so equal specs compare and hash equal
                object.__setattr__(self, f.name, _check(f.name, getattr(self, f.name)))
        _check_task_size(self.task, self.size)
        _check_heads(self.d_model, self.n_heads, "d_model")

    @property
    def run_id(self) -> str:
        """Unique among runs of one (task, size, budget), e.g. d64_L4_H4_lr0.001_B64 (with
        name_seed: d64_L4_H4_lr0.001_B64_s1)."""
        return (f"d{self.d_model}_L{self.n_layers}_H{self.n_heads}_lr{self.lr!r}"
                f"_B{self.batch_size}" + (f"_s{self.seed}" if self.name_seed else ""))

    @property
    def warmup_steps(self) -> int:
        """int(warmup_ratio·steps), as the reference (0 when steps < 10)."""
        return int(self.warmup_ratio * self.steps)

    @property
    def train_examples(self) -> int:
        return self.steps * self.batch_size

    @property
    def flops(self) -> float:
        """FLOPs actually spent by the planned steps (nominal budget: `budget`)."""
        return flops_actual(self.steps, self.batch_size, self.ctx, self.d_model, self.n_layers)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"RunSpec: unknown keys {unknown}; allowed keys: {names}")
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"RunSpec: missing required keys {missing}")
        return cls(**d)


# RunSpec fields that make_spec takes as **options (the rest are its own arguments or computed)
_OPTION_FIELDS = {f.name for f in fields(RunSpec)} - {
    "task", "size", "budget", "d_model", "n_layers", "n_heads", "lr", "batch_size", "seed",
    "model_seed", "ctx", "steps"}


def model_seed_for(seed: int, task: str, size: int, budget: float, run_id: str) -> int:
    """A stable 31-bit weight-init seed from the config seed and the run's identity (blake2b, so
    the same on every machine and Python process; never the salted hash())."""
    text = f"{seed}|{task}|{size}|{float(budget)!r}|{run_id}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & 0x7FFFFFFF


def make_spec(task: str, size: int, budget: float, d_model: int, n_layers: int, n_heads: int,
              lr: float, batch_size: int, seed: int = 0, *, ctx: float | None = None,
              graphs_dir: str | Path | None = None, min_steps: int = 1,
              max_steps_cap: int = 100_000, space_size: int | None = None,
              model_seed: int | None = None, **options) -> RunSpec:
    """The RunSpec of one run: measures ctx (unless given), computes steps, derives model_seed
    (unless given). options: the other RunSpec fields (warmup_ratio, precision, n_val, ...).

    Raises ValueError when the steps fall outside [min_steps, max_steps_cap], or, when the
    task's `space_size` is given, when the run would consume more examples than the training
    stream holds (space minus the held-out and probe sets).
    """
    unknown = sorted(set(options) - _OPTION_FIELDS)
    if unknown:
        raise ValueError(f"make_spec: unknown options {unknown}; allowed: {sorted(_OPTION_FIELDS)}")
    if ctx is None:
        ctx = context_length(get_task(task, size, graphs_dir=graphs_dir))
    steps = max_steps(budget, d_model, n_layers, ctx, batch_size)
    where = (f"{task} size {size}, budget {budget:.3g} FLOPs, d_model {d_model}, "
             f"n_layers {n_layers}, batch {batch_size}, ctx {ctx:g}")
    if steps < min_steps:
        raise ValueError(f"{where}: the budget buys {steps} optimizer steps, fewer than "
                         f"min_steps {min_steps}; raise the budget or shrink the model")
    if steps > max_steps_cap:
        raise ValueError(f"{where}: the budget buys {steps} optimizer steps, more than "
                         f"max_steps_cap {max_steps_cap}; lower the budget or grow the model")
    spec = RunSpec(task=task, size=size, budget=budget, d_model=d_model, n_layers=n_layers,
                   n_heads=n_heads, lr=lr, batch_size=batch_size, ctx=ctx, steps=steps,
                   seed=seed, model_seed=0 if model_seed is None else model_seed, **options)
    if space_size is not None:
        held_out = spec.n_val + spec.n_test + spec.n_probe_train + spec.n_probe_test
        if spec.train_examples > space_size - held_out:
            raise ValueError(
                f"{where}: the run consumes {spec.train_examples} training examples but "
                f"{task} size {size} has only {space_size} instances, {held_out} of them held "
                f"out; lower the budget, raise the size or shrink the held-out sets")
    if model_seed is None:
        spec = replace(spec, model_seed=model_seed_for(seed, task, spec.size, spec.budget,
                                                       spec.run_id))
    return spec


# -- config ----------------------------------------------------------------------------------------

TRAINING_KEYS = ("warmup_ratio", "warmup_start", "min_lr_ratio", "weight_decay", "beta1",
                 "beta2", "grad_clip", "precision", "norm_eps", "val_points",
                 "val_curve_examples", "min_steps", "max_steps_cap")
# Config sections that the Snakemake stages read (resources, options of the scaling fit and the
# plots, probes, ablations); qlf.compute only passes them through.
PIPELINE_SECTIONS = ("resources", "scaling", "plots", "probes", "ablations")
DATA_KEYS = ("n_val", "n_test", "n_probe_train", "n_probe_test")
GRID_LISTS = ("d_model", "n_layers", "lr", "batch_size", "budgets")
GRID_KEYS = GRID_LISTS[:3] + ("n_heads",) + GRID_LISTS[3:]

DEFAULTS: dict = {
    "seed": 0,
    "graphs": {"dir": str(DEFAULT_GRAPHS_DIR), "keep": {}},
    "data": {"n_val": 1000, "n_test": 1000, "n_probe_train": 10000, "n_probe_test": 1000},
    "training": {"warmup_ratio": 0.1, "warmup_start": 0.01, "min_lr_ratio": 0.1,
                 "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0,
                 "precision": "32", "norm_eps": 1e-5, "val_points": 20,
                 "val_curve_examples": 256, "min_steps": 1,
                 "max_steps_cap": 100_000, "fuse": ["lr", "seed"], "monitor": False},
    "grid": {"d_model": [8, 16, 32, 64, 128, 256, 512], "n_layers": [4, 16], "n_heads": 4,
             "lr": [1e-1, 1e-2, 1e-3, 1e-4], "batch_size": [8, 64],
             "budgets": [9, 10, 11, 12, 13, 14, 15]},
}


SWEEP_KEYS = ("fuse", "monitor")  # training keys that are not RunSpec fields
FUSABLE = ("lr", "seed")  # what the members of one sweep may differ in (qlf.sweep)


def _seeds_value(value: Any) -> int | list[int]:
    """`seed`: one data seed, or a list of distinct seeds (each run then once per seed, the seed
    in its run_id)."""
    if not isinstance(value, (list, tuple)):
        return _check("seed", value, "seed")
    seeds = [_check("seed", v, "seed") for v in value]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seed: expected one seed or a non-empty list of distinct seeds, got "
                         f"{value!r}")
    return seeds


def config_seeds(cfg: dict, task: str | None = None) -> list[int]:
    """The data seeds of a validated config (the first also seeds the graph sample), or of one
    of its tasks (a task entry's `seed` overrides the config's)."""
    seed = cfg["seed"] if task is None else _task_seed(cfg, task)
    return seed if isinstance(seed, list) else [seed]


def _task_seed(cfg: dict, task: str) -> int | list[int]:
    own = cfg["tasks"][task].get("seed")
    return cfg["seed"] if own is None else own


def seed_in_run_id(cfg: dict, task: str) -> bool:
    """Whether a task's run_ids end in _s{seed}: its seeds are given as a list."""
    return isinstance(_task_seed(cfg, task), list)


def _sweep_value(name: str, value: Any) -> Any:
    key = f"training.{name}"
    if name == "fuse":
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(v not in FUSABLE for v in items) or len(set(items)) != len(items):
            raise ValueError(f"{key}: expected a list of distinct names out of {FUSABLE} "
                             f"(what one training job trains together), got {value!r}")
        return [v for v in FUSABLE if v in items]
    if isinstance(value, (list, tuple)):  # monitor: a list of task names, or true / false
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key}: expected true, false or a list of task names, got "
                             f"{value!r}")
        return list(value)
    return _as_bool(value, key)


def _mapping(value: Any, key: str, allowed: tuple | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected a mapping, got {value!r}")
    if allowed is not None:
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ValueError(f"{key}: unknown key {unknown[0]!r}; allowed keys: "
                             f"{', '.join(map(str, allowed))}")
    return value


def _grid_value(name: str, value: Any, key: str) -> Any:
    """One grid key: a non-empty list without repeats (a scalar means a one-item list)."""
    if name == "n_heads":
        return _check("n_heads", value, key)
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{key}: the list is empty")
    if name == "budgets":
        out = [_as_int(v, key) for v in items]
        for k in out:
            if not MIN_BUDGET_EXP <= k <= MAX_BUDGET_EXP:
                raise ValueError(f"{key}: budget exponent {k} out of range; allowed "
                                 f"{MIN_BUDGET_EXP}..{MAX_BUDGET_EXP} (budgets 10**k FLOPs)")
    else:
        out = [_check(name, v, key) for v in items]
    if len(set(out)) != len(out):
        raise ValueError(f"{key}: repeated values in {out}")
    return out


def validate_config(raw: dict) -> dict:
    """Defaults filled, values checked and normalised; every error names its key.

    Each task entry of the result holds the resolved grid (its overrides over `grid`) and `ctx`
    (None unless pinned). Idempotent: validate_config(validate_config(c)) == validate_config(c).
    """
    raw = _mapping(raw, "config", ("seed", "graphs", "data", "training", "grid", "tasks")
                   + PIPELINE_SECTIONS)
    cfg = copy.deepcopy(DEFAULTS)
    for section in PIPELINE_SECTIONS:  # read by the pipeline stages, which check them
        cfg[section] = copy.deepcopy(_mapping(raw.get(section), section))
    cfg["seed"] = _seeds_value(raw.get("seed", cfg["seed"]))

    graphs = _mapping(raw.get("graphs"), "graphs", ("dir", "keep"))
    cfg["graphs"]["dir"] = str(graphs.get("dir", cfg["graphs"]["dir"]))
    for n, frac in _mapping(graphs.get("keep"), "graphs.keep").items():
        nodes = _as_int(n, f"graphs.keep.{n}")
        frac = _as_float(frac, f"graphs.keep.{n}")
        if not 0 < frac <= 1:
            raise ValueError(f"graphs.keep.{n}: keep fraction {frac} not in (0, 1]")
        cfg["graphs"]["keep"][nodes] = frac

    for section, keys in (("data", DATA_KEYS), ("training", TRAINING_KEYS)):
        allowed = keys + (SWEEP_KEYS if section == "training" else ())
        for k, v in _mapping(raw.get(section), section, allowed).items():
            cfg[section][k] = _sweep_value(k, v) if k in SWEEP_KEYS else \
                _check(k, v, f"{section}.{k}")
    training = cfg["training"]
    if training["max_steps_cap"] < training["min_steps"]:
        raise ValueError(f"training.max_steps_cap: {training['max_steps_cap']} is below "
                         f"training.min_steps {training['min_steps']}")

    grid = cfg["grid"]
    for k, v in _mapping(raw.get("grid"), "grid", GRID_KEYS).items():
        grid[k] = _grid_value(k, v, f"grid.{k}")
    for d in grid["d_model"]:
        _check_heads(d, grid["n_heads"], "grid.d_model")

    tasks = _mapping(raw.get("tasks"), "tasks")
    if not tasks:
        raise ValueError("tasks: the config lists no tasks; add e.g. `tasks: {addition: "
                         "{size: 16}}`")
    cfg["tasks"] = {name: _task_entry(name, entry, cfg) for name, entry in tasks.items()}
    monitored = training["monitor"]
    if isinstance(monitored, list) and set(monitored) - set(cfg["tasks"]):
        raise ValueError(f"training.monitor: {sorted(set(monitored) - set(cfg['tasks']))} are "
                         f"not among the configured tasks {list(cfg['tasks'])}")
    _check_probed_tasks(cfg)
    return cfg


def _check_probed_tasks(cfg: dict) -> None:
    """The probes and ablations sections against the tasks (their own value ranges are checked by
    the workflow's schema): a probed task is configured and its target and maximum budgets are
    among its budgets; ablated features are features of a probed task."""
    probed = _mapping(cfg["probes"].get("tasks"), "probes.tasks")
    for name, entry in probed.items():
        key = f"probes.tasks.{name}"
        if name not in cfg["tasks"]:
            raise ValueError(f"{key}: not one of the configured tasks {list(cfg['tasks'])}")
        entry = _mapping(entry, key)
        if "target_budget" not in entry:
            raise ValueError(f"{key}.target_budget: missing; it picks the probed model shape")
        budgets = cfg["tasks"][name]["budgets"]
        for k in ("target_budget", "max_budget"):
            if entry.get(k, entry["target_budget"]) not in budgets:
                raise ValueError(f"{key}.{k}: 1e{entry[k]} is not among the task's budgets "
                                 f"{budgets}")
    for name, features in _mapping(cfg["ablations"].get("features"),
                                   "ablations.features").items():
        key = f"ablations.features.{name}"
        if name not in probed:
            raise ValueError(f"{key}: ablations need the task's probes; probed tasks: "
                             f"{list(probed)}")
        task = get_task(name, cfg["tasks"][name]["size"], graphs_dir=cfg["graphs"]["dir"])
        for feature in features:
            try:
                task.feature(feature)
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from None


def _task_entry(name: str, entry: Any, cfg: dict) -> dict:
    key = f"tasks.{name}"
    if name not in TASKS:
        raise ValueError(f"{key}: unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    entry = _mapping(entry, key, ("size",) + GRID_KEYS + ("ctx", "seed"))
    if "size" not in entry:
        raise ValueError(f"{key}.size: missing; every task needs its size "
                         f"(the paper's is {TASKS[name].default_size})")
    out = {"size": _check("size", entry["size"], f"{key}.size")}
    for k in GRID_KEYS:
        out[k] = (_grid_value(k, entry[k], f"{key}.{k}") if k in entry
                  else copy.deepcopy(cfg["grid"][k]))
    if "d_model" in entry or "n_heads" in entry:
        for d in out["d_model"]:
            _check_heads(d, out["n_heads"], f"{key}.d_model")
    try:
        task = get_task(name, out["size"], graphs_dir=cfg["graphs"]["dir"])
    except ValueError as err:
        raise ValueError(f"{key}.size: {err}") from None
    if isinstance(task, GraphTask) and out["size"] not in cfg["graphs"]["keep"]:
        raise ValueError(f"{key}.size: graph tasks on {out['size']} nodes need a keep fraction "
                         f"in graphs.keep (e.g. `{out['size']}: 1.0` for all graphs)")
    # a task may list its own seeds (e.g. several for a probed task only); None: the config's
    out["seed"] = _seeds_value(entry["seed"]) if entry.get("seed") is not None else None
    out["ctx"] = None
    if entry.get("ctx") is not None:
        out["ctx"] = _check("ctx", entry["ctx"], f"{key}.ctx")
        if out["ctx"] > task.seq_len:
            raise ValueError(f"{key}.ctx: {out['ctx']} exceeds the task's sequence length "
                             f"{task.seq_len}")
    return out


def load_config(path: str | Path) -> dict:
    """Read a YAML config, fill defaults and validate it (see the module docstring)."""
    path = Path(path)
    with path.open() as fh:
        raw = yaml.safe_load(fh)
    try:
        return validate_config(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _as_config(config: dict | str | Path) -> dict:
    return validate_config(config) if isinstance(config, dict) else load_config(config)


# -- the plan --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """The runs of one (task, budget): how many combinations were enumerated, which are kept."""

    task: str
    size: int
    exponent: int
    ctx: float
    enumerated: int
    runs: tuple[RunSpec, ...]


def _cells(cfg: dict, tasks: list[str] | None = None) -> Iterator[Cell]:
    training, data = cfg["training"], cfg["data"]
    options = {k: training[k] for k in TRAINING_KEYS if k not in ("min_steps", "max_steps_cap")}
    options.update(data)
    held_out = sum(data.values())
    for name, entry in cfg["tasks"].items():
        if tasks is not None and name not in tasks:
            continue
        seeds = config_seeds(cfg, name)
        options["name_seed"] = seed_in_run_id(cfg, name)
        size, ctx, space = entry["size"], entry["ctx"], None
        if ctx is None:  # measure; the instance space is at hand then, so check it too
            task = get_task(name, size, graphs_dir=cfg["graphs"]["dir"])
            space = task.space_size
            if held_out > space:
                raise ValueError(f"data: the held-out and probe sets ({held_out} examples) do "
                                 f"not fit {name} size {size}, which has {space} instances")
            ctx = context_length(task)
        combos = [(b, lr, d, n, seed) for b in entry["batch_size"] for lr in entry["lr"]
                  for d in entry["d_model"] for n in entry["n_layers"] for seed in seeds]
        monitor = training["monitor"] is True or (isinstance(training["monitor"], list)
                                                  and name in training["monitor"])
        for k in entry["budgets"]:
            budget = float(10 ** k)
            runs = tuple(
                make_spec(name, size, budget, d, n, entry["n_heads"], lr, b, seed,
                          ctx=ctx, space_size=space, monitor=monitor, **options)
                for b, lr, d, n, seed in combos
                if training["min_steps"] <= max_steps(budget, d, n, ctx, b)
                <= training["max_steps_cap"])
            if not runs:
                raise ValueError(
                    f"tasks.{name}: budget 1e{k} leaves no (batch, lr, d_model, n_layers) "
                    f"combination with {training['min_steps']}..{training['max_steps_cap']} "
                    f"steps; drop the budget or change the grid")
            yield Cell(name, size, k, ctx, len(combos), runs)


def plan(config: dict | str | Path, tasks: list[str] | None = None) -> list[RunSpec]:
    """Every run of a config (or of the listed tasks only), in a stable order: tasks as listed,
    budgets as listed, then batch × lr × d_model × n_layers × seed in list order; only cells
    with min_steps..cap steps."""
    cfg = _as_config(config)
    for name in tasks or ():
        if name not in cfg["tasks"]:
            raise ValueError(f"task {name!r} is not in the config's tasks {list(cfg['tasks'])}")
    return [spec for cell in _cells(cfg, tasks) for spec in cell.runs]


def plan_table(config: dict | str | Path) -> str:
    """The `qlf plan` table: runs kept / enumerated and nominal FLOPs per task and budget, with
    totals per task and overall."""
    header = f"{'task':<32} {'size':>4} {'ctx':>8} {'budget':>6} {'runs':>11} {'FLOPs':>9}"
    lines, per_task = [header, "-" * len(header)], {}
    for cell in _cells(_as_config(config)):
        kept, flops = len(cell.runs), len(cell.runs) * 10.0 ** cell.exponent
        lines.append(f"{cell.task:<32} {cell.size:>4} {cell.ctx:>8.3f} {'1e%d' % cell.exponent:>6}"
                     f" {f'{kept}/{cell.enumerated}':>11} {flops:>9.2e}")
        total = per_task.setdefault(cell.task, [0, 0, 0.0])
        total[0], total[1], total[2] = total[0] + kept, total[1] + cell.enumerated, total[2] + flops
    lines.append("-" * len(header))
    for name, (kept, enumerated, flops) in per_task.items():
        lines.append(f"{name:<32} {'':>4} {'':>8} {'total':>6} {f'{kept}/{enumerated}':>11} "
                     f"{flops:>9.2e}")
    kept, enumerated, flops = (sum(t[i] for t in per_task.values()) for i in range(3))
    lines.append(f"{'all tasks':<32} {'':>4} {'':>8} {'total':>6} {f'{kept}/{enumerated}':>11} "
                 f"{flops:>9.2e}")
    return "\n".join(lines)


def within_run_steps(steps: int) -> list[int]:
    """Steps whose weights the within-run probes read: 0 (the initialisation), every power of
    two up to `steps`, and `steps` itself (probes.md §9.2, with the init added)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return sorted({0, steps} | {1 << p for p in range(steps.bit_length()) if 1 << p <= steps})
