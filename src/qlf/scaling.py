"""Run records -> tidy table -> compute-optimal frontier -> power-law fit and transition budget.

Selection [KEEP] (pipeline.md §9.3, §12.5): at each (task, size, budget) the compute-optimal run
is the one with the lowest *final* validation loss over every d_model, n_layers, lr and batch
size; its test accuracy is reported as is (accuracy is never optimised separately). Every run
here is a single pass over a never-repeating stream, so the reference's `epoch == 1` filter has
no analogue.

Transition detection (beyond the paper, which reads transitions by eye). On the frontier of one
task, walk the budgets in order. At candidate k (k >= min_fit_points) fit a power law
L(C) = a·C^(-b) by least squares in log-log space to the budgets *before* k and compare it with
the measured loss at k:

    departure_k = ln(fit(C_k)) - ln(L_k)          (> 0: the measured loss is below the fit)

The first k with departure_k > threshold (default 0.5, i.e. the loss is ~40% below the fit's
extrapolation) whose later budgets all stay more than `threshold` below the same fit (`confirm`,
so a single noisy dip is not a transition) is the transition budget. Without one, the whole
frontier is fitted and the transition is NaN. Only drops count: a plateau (loss above the fit) is
not a transition. The slope is constrained to b >= 0 (in expectation more compute never makes
the compute-optimal loss worse), so a noisy, flat start cannot extrapolate upwards and fake a
drop. No irreducible-loss term: with the 3-5 budgets before a break a third parameter is not
identifiable, and the paper's curves sit far above any floor before their transition.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .compute import RunSpec
from .provenance import COLUMNS as PROVENANCE_COLUMNS
from .provenance import table_columns
from .tasks import get_task

CELL = ["task", "size", "budget"]  # one compute-optimal point per cell
RUN_COLUMNS = ["task", "size", "budget", "budget_exp", "d_model", "n_layers", "n_heads", "lr",
               "batch_size", "seed", "steps", "run_id", "val_loss", "test_acc", "train_loss",
               "flops_nominal", "flops_actual", "wall_s", "path", *PROVENANCE_COLUMNS]
SUMMARY_METRICS = ["val_loss", "test_acc", "train_loss", "flops_nominal", "flops_actual",
                   "wall_s"]
TRANSITION_COLUMNS = ["task", "size", "n_points", "fit_a", "fit_b", "fit_from", "fit_to",
                      "fit_points", "transition_budget", "departure", "max_departure",
                      "threshold", "reason"]


# -- records -----------------------------------------------------------------------------------

def _metric(summary: dict, key: str, path: Path) -> float:
    """A summary number; null or absent -> NaN (val_loss's presence is checked by the caller)."""
    value = summary.get(key)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: summary.{key} must be a number, got {value!r}")
    return float(value)


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a valid JSON run record ({err})") from None


def _record_row(path: Path, record: dict) -> dict:
    if not (isinstance(record, dict) and isinstance(record.get("spec"), dict)
            and isinstance(record.get("summary"), dict)):
        raise ValueError(f"{path}: expected a JSON object {{\"spec\": {{...}}, "
                         f"\"summary\": {{...}}}} as written by qlf.train")
    try:
        spec = RunSpec.from_dict(record["spec"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: bad spec: {err}") from None
    summary = record["summary"]
    if "val_loss" not in summary:
        raise ValueError(f"{path}: summary has no val_loss (keys: {sorted(summary)}); the "
                         f"frontier is selected on it, so the run must be redone")
    row = {key: _metric(summary, key, path) for key in SUMMARY_METRICS}
    if not (math.isnan(row["test_acc"]) or 0 <= row["test_acc"] <= 1):
        raise ValueError(f"{path}: summary.test_acc {row['test_acc']} is not in [0, 1]")
    steps = summary.get("steps", spec.steps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{path}: summary.steps must be a count >= 0, got {steps!r}")
    row.update(task=spec.task, size=spec.size, budget=spec.budget,
               budget_exp=int(round(math.log10(spec.budget))), d_model=spec.d_model,
               n_layers=spec.n_layers, n_heads=spec.n_heads, lr=spec.lr,
               batch_size=spec.batch_size, seed=spec.seed, steps=steps, run_id=spec.run_id,
               path=str(path))
    # the record's own provenance (None where a record predates it), never this process's
    made = summary.get("provenance")
    if made is not None and not isinstance(made, dict):
        raise ValueError(f"{path}: summary.provenance must be an object, got {made!r}")
    # NaN, not None, for what is unknown: the table then reads back the same from its CSV
    row.update({k: math.nan if v is None else v for k, v in table_columns(made or {}).items()})
    return row


def load_records(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """One row per run record (RUN_COLUMNS), sorted by task, size, budget, shape, lr, batch;
    the last columns are the record's own summary.provenance (qlf.provenance.COLUMNS), which the
    frontier and every other table of records carries along.

    Raises ValueError naming the file for invalid JSON, a bad spec or a summary without
    val_loss, and naming both files when two records are the same run of the same cell.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows = [_record_row(Path(p), _read_record(Path(p))) for p in paths]
    if not rows:
        raise ValueError("load_records: no run records given")
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    runs = runs.sort_values(CELL + ["d_model", "n_layers", "n_heads", "lr", "batch_size",
                                    "run_id", "path"], kind="mergesort", ignore_index=True)
    key = CELL + ["run_id"]
    dup = runs[runs.duplicated(key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        same = dup[(dup[key] == first[key]).all(axis=1)]
        raise ValueError(f"run {first.run_id} of {first.task} size {first['size']} at budget "
                         f"{first.budget:.3g} has more than one record: {list(same.path)}")
    return runs


def val_curves(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """The validation curves of run records (summary.val_curve, [step, val_loss] pairs): columns
    task, size, run_id, budget, step, val_loss, one row per point."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows = []
    for path in map(Path, paths):
        record = _read_record(path)
        row = _record_row(path, record)  # validates the record
        curve = record["summary"].get("val_curve")
        if not curve:
            raise ValueError(f"{path}: summary has no val_curve")
        rows += [dict(task=row["task"], size=row["size"], run_id=row["run_id"],
                      budget=row["budget"], step=int(step), val_loss=float(loss))
                 for step, loss in curve]
    return pd.DataFrame(rows, columns=["task", "size", "run_id", "budget", "step", "val_loss"])


# -- compute-optimal frontier ------------------------------------------------------------------

def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: the table is empty")


CONFIG_KEYS = ["d_model", "n_layers", "n_heads", "lr", "batch_size"]  # a run minus its seed
SEED_MEANS = ["val_loss", "test_acc", "train_loss"]  # averaged over a configuration's seeds


def frontier(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, size, budget) the configuration (shape, lr, batch) with the lowest final
    val_loss, all its columns plus n_runs (runs that competed).

    With several data seeds (a `seed` column holding more than one value in a cell) a
    configuration's val_loss, test_acc and train_loss are its **means over its seeds**, so the
    frontier is not the luckiest seed; the row names the configuration's run of its smallest seed
    (run_id, path, seed) and adds n_seeds, val_loss_min and val_loss_max over the seeds. A
    configuration with a non-finite val_loss in any seed never wins (nor does any NaN run without
    seeds); ties: smallest run_id. A cell where no configuration qualifies is an error."""
    _require(runs, CELL + ["val_loss", "run_id"], "frontier")
    runs = runs.copy()
    if "seed" not in runs.columns:  # tables written before seeds were a column
        runs["seed"] = 0
    keys = CELL + [k for k in CONFIG_KEYS if k in runs.columns]
    runs = runs.sort_values(keys + ["seed", "run_id"], kind="mergesort")
    grouped = runs.groupby(keys, sort=False, dropna=False)
    configs = grouped.head(1).set_index(keys)  # the smallest seed's run names the configuration
    for column in SEED_MEANS:
        if column in runs.columns:
            configs[column] = grouped[column].mean()
    values = grouped.val_loss
    configs["n_seeds"] = grouped.size()
    configs["val_loss_min"], configs["val_loss_max"] = values.min(), values.max()
    finite_all = values.apply(lambda v: bool(np.isfinite(v.to_numpy(float)).all()))
    configs = configs[finite_all].reset_index()
    n_runs = runs.groupby(CELL).size().rename("n_runs").reset_index()
    ranked = configs.sort_values(CELL + ["val_loss", "run_id"], kind="mergesort")
    best = ranked.groupby(CELL, sort=True).head(1)
    lost = n_runs.merge(best[CELL], how="left", on=CELL, indicator=True)
    lost = lost[lost._merge == "left_only"]
    if len(lost):
        cells = [f"{r.task} size {r.size} budget {r.budget:.3g}" for r in lost.itertuples()]
        raise ValueError(f"frontier: no run with a finite val_loss at {cells}; every run there "
                         f"diverged, so the cell has no compute-optimal point")
    columns = [c for c in runs.columns if c in best.columns] + [
        "n_seeds", "val_loss_min", "val_loss_max"]
    return best[columns].merge(n_runs, on=CELL).reset_index(drop=True)


# -- random-guess baselines --------------------------------------------------------------------

LN2 = math.log(2)
# Loss of a guesser that knows the answer format, per task at size L (bits, values, nodes),
# generalising the reference's constants (pipeline.md §9.4), which they equal at the paper's sizes:
#   addition      (L+2)/(L+3)·ln2   L+3 targets ('=', L+1 sum bits, EOS); the reference charges
#                                   ln2 to L+2 of them (18/19·ln2 at L=16)
#   multiplication 2L/(2L+2)·ln2    2L+2 targets, the 2L product bits at ln2 (32/34·ln2)
#   majority      ln2/3             3 targets ('=', the bit, EOS), the bit at ln2
#   activity selection, maximum subarray: ln20 per target (uniform over 20 tokens)
#   BFS, DFS      n/(n+2)·ln26      n+2 targets, the n visited nodes uniform over 26 letters
#   MST, path, topological sort: ln27 per target
RANDOM_GUESS = {
    "addition": lambda n: (n + 2) / (n + 3) * LN2,
    "multiplication": lambda n: 2 * n / (2 * n + 2) * LN2,
    "majority_of_majority": lambda n: LN2 / 3,
    "activity_selection": lambda n: math.log(20),
    "maximum_subarray": lambda n: math.log(20),
    "graph_breadth_first_search": lambda n: n / (n + 2) * math.log(26),
    "graph_depth_first_search": lambda n: n / (n + 2) * math.log(26),
    "graph_min_spanning_tree_kruskal": lambda n: math.log(27),
    "graph_path": lambda n: math.log(27),
    "graph_topological_sort": lambda n: math.log(27),
}


def random_guess_loss(task: str, size: int) -> float:
    """The random-guess validation loss of `task` at `size`: the formulas above for the paper's
    ten, the task's own `random_guess_loss()` for every other registered task."""
    # unknown task or size out of range: ValueError saying what is allowed. The graph file is
    # read lazily, so this needs none.
    built = get_task(task, size)
    if task in RANDOM_GUESS:
        return float(RANDOM_GUESS[task](int(size)))
    return float(built.random_guess_loss())


# -- power-law fit and transition detection ----------------------------------------------------

def fit_power_law(budgets, losses) -> tuple[float, float]:
    """(a, b) of L = a·C^(-b), least squares on ln L vs ln C with b >= 0 (b < 0 -> refit flat)."""
    x, y = np.log(np.asarray(budgets, float)), np.log(np.asarray(losses, float))
    if len(x) < 1 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"fit_power_law: need >= 1 positive finite point, got {budgets}, "
                         f"{losses}")
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx)) if len(x) > 1 else 0.0
    slope = min(slope, 0.0)
    return float(np.exp(y.mean() - slope * x.mean())), 0.0 - slope  # never -0.0


def power_law(a: float, b: float, budgets) -> np.ndarray:
    return a * np.asarray(budgets, float) ** (-b)


def format_budget(c: float) -> str:
    """1e12 for a power of ten, else 3 significant digits."""
    k = round(math.log10(c))
    return f"1e{k}" if math.isclose(c, 10.0 ** k, rel_tol=1e-9) else f"{c:.3g}"


def _task_transition(task: str, size: int, budgets: np.ndarray, losses: np.ndarray,
                     threshold: float, min_fit_points: int, confirm: bool) -> dict:
    n = len(budgets)
    out = dict(task=task, size=size, n_points=n, transition_budget=math.nan,
               departure=math.nan, max_departure=math.nan, threshold=threshold)
    unconfirmed = None
    for k in range(min_fit_points, n):
        a, b = fit_power_law(budgets[:k], losses[:k])
        dep = np.log(power_law(a, b, budgets[k:])) - np.log(losses[k:])
        out["max_departure"] = float(np.fmax(out["max_departure"], dep[0]))
        if dep[0] <= threshold:
            continue
        if confirm and not (dep[1:] > threshold).all():
            unconfirmed = unconfirmed or budgets[k]
            continue
        later = ("; the last budget, so unconfirmed" if k == n - 1 else
                 f"; all {n - k - 1} later budgets stay below it" if confirm else "")
        out.update(fit_a=a, fit_b=b, fit_from=budgets[0], fit_to=budgets[k - 1], fit_points=k,
                   transition_budget=budgets[k], departure=float(dep[0]),
                   reason=f"loss {losses[k]:.3g} at {format_budget(budgets[k])} is "
                          f"{np.exp(dep[0]):.2g}x below the power law fitted on "
                          f"{format_budget(budgets[0])}..{format_budget(budgets[k - 1])} "
                          f"(log-ratio {dep[0]:.2f} > {threshold}){later}")
        return out
    a, b = fit_power_law(budgets, losses)
    out.update(fit_a=a, fit_b=b, fit_from=budgets[0], fit_to=budgets[-1], fit_points=n)
    if n <= min_fit_points:
        out["reason"] = (f"too few budgets: {n}, need > min_fit_points = {min_fit_points} "
                         f"(fit on the first ones, test the next)")
    else:
        out["reason"] = (f"no budget falls more than log-ratio {threshold} below the power law "
                         f"of the budgets before it (largest {out['max_departure']:.2f})")
        if unconfirmed is not None:
            out["reason"] += (f"; the drop at {format_budget(unconfirmed)} was not confirmed by "
                              f"the later budgets")
    return out


def transitions(frontier_df: pd.DataFrame, threshold: float = 0.5, min_fit_points: int = 3,
                confirm: bool = True, min_loss: float = 1e-9) -> pd.DataFrame:
    """One row per (task, size) of the frontier (TRANSITION_COLUMNS): the power-law fit
    (fit_a, fit_b over budgets fit_from..fit_to, fit_points of them), the transition budget
    (NaN when none), its departure (natural-log ratio fit/measured), the largest departure seen,
    and a `reason`. Losses below `min_loss` (an exactly zero loss) are raised to it for the logs.
    See the module docstring for the rule."""
    if not threshold > 0:
        raise ValueError(f"threshold must be a log-ratio > 0, got {threshold}")
    if isinstance(min_fit_points, bool) or not isinstance(min_fit_points, int) \
            or min_fit_points < 2:
        raise ValueError(f"min_fit_points must be an integer >= 2 (a line needs two points), "
                         f"got {min_fit_points!r}")
    if not min_loss > 0:
        raise ValueError(f"min_loss must be > 0, got {min_loss}")
    _require(frontier_df, CELL + ["val_loss"], "transitions")
    rows = []
    for (task, size), group in frontier_df.groupby(["task", "size"], sort=True):
        group = group.sort_values("budget")
        budgets = group.budget.to_numpy(float)
        losses = group.val_loss.to_numpy(float)
        if len(np.unique(budgets)) != len(budgets):
            raise ValueError(f"transitions: {task} size {size} has more than one frontier point "
                             f"per budget; pass the output of frontier()")
        if not (np.isfinite(losses).all() and (losses >= 0).all()):
            raise ValueError(f"transitions: {task} size {size} has a negative or non-finite "
                             f"val_loss on its frontier: {losses}")
        rows.append(_task_transition(task, int(size), budgets, np.maximum(losses, min_loss),
                                     float(threshold), min_fit_points, bool(confirm)))
    return pd.DataFrame(rows, columns=TRANSITION_COLUMNS)


# -- the models the probes read ------------------------------------------------------------------

def fixed_shape_series(runs: pd.DataFrame, frontier_df: pd.DataFrame, target_budget: float,
                       max_budget: float) -> pd.DataFrame:
    """The probes' "fixed model size, varying compute" series (probes.md §9.1, pipeline.md §9.5).

    The compute-optimal run at `target_budget` fixes the shape (d_model, n_layers); at every
    budget <= max_budget the configuration of that shape with the lowest final val_loss (over lr
    and batch; with several seeds the lowest mean over them, as in frontier) is taken, and the
    series holds that configuration's run of **every seed**: one row per (budget, seed), the runs'
    own columns (run_id, path, val_loss of that seed). Budgets where the shape was pruned from the
    grid are simply absent. Raises when the frontier has no run at the target budget.
    """
    _require(runs, CELL + ["d_model", "n_layers", "val_loss", "run_id"], "runs")
    at_target = frontier_df[np.isclose(frontier_df.budget, target_budget)]
    if at_target.empty:
        raise ValueError(f"no compute-optimal run at budget {format_budget(target_budget)}; the "
                         f"frontier has {sorted(frontier_df.budget.map(format_budget).unique())}")
    best = at_target.iloc[0]
    shape = runs[(runs.d_model == best.d_model) & (runs.n_layers == best.n_layers)
                 & (runs.budget <= max_budget * (1 + 1e-9))].copy()
    if "seed" not in shape.columns:
        shape["seed"] = 0
    keys = CELL + [k for k in CONFIG_KEYS if k in shape.columns]
    chosen = frontier(shape)[keys]
    series = shape.merge(chosen, on=keys).sort_values(["budget", "seed"], kind="mergesort")
    return series.reset_index(drop=True)
