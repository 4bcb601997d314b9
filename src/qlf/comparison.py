"""Our numbers next to the paper's headline numbers (results/paper_comparison.csv).

The paper's numbers live in one data file, `paper_numbers.yaml` (shipped with the package), each
with its source; `load_paper_numbers` turns it into a table. `paper_comparison` puts our value
beside each and says whether they agree, by one stated rule per kind of number:

  transition     our transition budget (qlf.scaling.transitions) agrees iff it is within one
                 decade of the paper's: |log10 ours - log10 paper| <= 1.
  verdict        our quiet/loud verdict agrees iff it equals the paper's. Ours is per (feature,
                 position group); a feature is quiet if any group is quiet, else loud if any
                 group is loud, else mixed, neither, "no transition" in that order (a feature
                 quiet at some positions was decodable before the loss fell, which is the
                 paper's claim). With several training seeds (quiet_loud.csv's seed_verdicts)
                 this is applied per seed and the feature's verdict is the seeds' common one,
                 else "mixed" (as qlf.probes.verdicts_across_seeds combines seeds per group).
  ablation_drop  the paper's accuracy drop agrees iff it lies within our seeds' [min, max]
                 relative drop at k = 1 (one probe layer per position); with one seed, within
                 that seed's bootstrap CI.

Every headline number is a row, also those this config cannot measure ("not measured": the task
is not configured, not probed, or lacks the feature), so the table always lists all of the
paper's numbers and says plainly which this config leaves out. "not reached by this config": no
transition was found and the task's largest configured budget is below the paper's transition
(for a verdict: no transition, so no verdict; for an ablation: the unablated model answers
nothing correctly, so no relative drop).
"""
from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .scaling import format_budget

KINDS = ("transition", "verdict", "ablation_drop")
AGREE = ("yes", "no", "not reached by this config", "not measured")
# in order of precedence when a feature's position groups differ (aggregate_verdict)
VERDICTS = ("quiet", "loud", "mixed", "neither", "no transition")
PAPER_COLUMNS = ["kind", "task", "item", "paper", "paper_size", "source"]
COLUMNS = ["kind", "task", "item", "paper", "ours", "ours_low", "ours_high", "ours_spread",
           "n_seeds", "agree", "rule", "source", "paper_size", "our_size", "note"]
RULES = {
    "transition": "agrees iff |log10 ours - log10 paper| <= 1 (within one decade); several "
                  "seeds: ours is the median (in log10) of the transitions found; not reached: none "
                  "found and the largest configured budget is below the paper's",
    "verdict": "agrees iff equal; ours per feature: quiet if any position group is quiet, else "
               "loud if any is loud, else mixed/neither/no transition; several seeds: that per "
               "seed, then the seeds' common verdict or mixed (not reached: no transition and "
               "the largest configured budget below the paper's transition)",
    "ablation_drop": "relative accuracy drop at k=1; agrees iff the paper's value lies in our "
                     "seeds' [min, max] (one seed: its bootstrap CI); not reached: the unablated "
                     "model answers nothing correctly",
}
TRANSITION_NEEDS = ["task", "size", "transition_budget"]
VERDICT_NEEDS = ["task", "feature", "group", "verdict"]
ACROSS_SEEDS_NEEDS = ["task", "feature", "k", "n_seeds", "drop_rel_mean", "drop_rel_min",
                      "drop_rel_max"]
SUMMARY_NEEDS = ["task", "feature", "k", "drop_rel", "drop_rel_lo", "drop_rel_hi"]


# -- the paper's numbers ---------------------------------------------------------------------------

def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: expected a finite number, got {value!r} (write 1e12 as "
                         f"1.0e+12: YAML reads 1e12 as text)")
    return float(value)


def _section(data: dict, name: str, path) -> dict:
    section = data.get(name)
    if not isinstance(section, dict) or not isinstance(section.get("source"), str):
        raise ValueError(f"{path}: section {name!r} needs a mapping with a 'source' text")
    return section


def load_paper_numbers(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's numbers (PAPER_COLUMNS), one row per number, in the file's order; `path`
    defaults to the packaged paper_numbers.yaml. Bad entries raise naming the file and entry."""
    if path is None:
        text = resources.files("qlf").joinpath("paper_numbers.yaml").read_text()
        path = "qlf/paper_numbers.yaml"
    else:
        text = Path(path).read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections {list(KINDS)} and 'sizes'")
    sizes = _section(data, "sizes", path).get("values", {})
    rows = []

    def add(kind, task, item, value, source):
        size = sizes.get(task)
        rows.append(dict(kind=kind, task=task, item=item, paper=value,
                         paper_size=np.nan if size is None else int(size), source=source))

    section = _section(data, "transition", path)
    for task, value in section.get("values", {}).items():
        value = _number(value, f"{path}: transition.{task}")
        if value <= 0:
            raise ValueError(f"{path}: transition.{task} must be > 0 FLOPs, got {value}")
        add("transition", task, "transition_budget", value, section["source"])
    section = _section(data, "verdict", path)
    for verdict in ("quiet", "loud"):
        for task, features in section.get(verdict, {}).items():
            if not isinstance(features, list):
                raise ValueError(f"{path}: verdict.{verdict}.{task} must be a list of features")
            for feature in features:
                add("verdict", task, str(feature), verdict, section["source"])
    section = _section(data, "ablation_drop", path)
    for task, features in section.get("values", {}).items():
        for feature, value in features.items():
            value = _number(value, f"{path}: ablation_drop.{task}.{feature}")
            if not 0 <= value <= 1:
                raise ValueError(f"{path}: ablation_drop.{task}.{feature} is a fraction in "
                                 f"[0, 1], got {value}")
            add("ablation_drop", task, str(feature), value, section["source"])
    paper = pd.DataFrame(rows, columns=PAPER_COLUMNS)
    _check_paper(paper, str(path))
    return paper


def _check_paper(paper: pd.DataFrame, what: str) -> None:
    _require(paper, PAPER_COLUMNS, what)
    bad = sorted(set(paper.kind) - set(KINDS))
    if bad:
        raise ValueError(f"{what}: unknown kind {bad}; known: {list(KINDS)}")
    dup = paper[paper.duplicated(["kind", "task", "item"], keep=False)]
    if len(dup):
        raise ValueError(f"{what}: more than one paper number for "
                         f"{dup[['kind', 'task', 'item']].values.tolist()}")


# -- helpers -----------------------------------------------------------------------------------------

def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; it has {list(df.columns)}")


def _budgets(config: dict, task: str) -> list[float]:
    """The task's configured budgets in FLOPs (its own `budgets`, else grid.budgets)."""
    exps = config["tasks"][task].get("budgets") or config.get("grid", {}).get("budgets")
    if not exps:
        raise ValueError(f"config: task {task!r} has no budgets and the config no grid.budgets")
    return [10.0 ** e for e in exps]


def _decades(ours: float, paper: float) -> float:
    return abs(math.log10(ours) - math.log10(paper))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def aggregate_verdict(group_verdicts) -> str:
    """One feature's verdict from its position groups' (the rule in the module docstring)."""
    found = set(group_verdicts)
    unknown = found - set(VERDICTS)
    if unknown or not found:
        raise ValueError(f"verdicts must be among {list(VERDICTS)}, got {sorted(found)}")
    return next(v for v in VERDICTS if v in found)


def parse_seed_verdicts(text) -> dict:
    """Seed -> verdict from quiet_loud.csv's seed_verdicts: 's0:quiet s1:no transition' gives
    {0: 'quiet', 1: 'no transition'}; unlabelled 'quiet loud' gives {0: 'quiet', 1: 'loud'}."""
    if not isinstance(text, str):
        return {}
    verdict = r"(no[ _]transition|quiet|loud|neither)"
    labelled = re.findall(r"s(\d+):" + verdict, text)
    if labelled:
        return {int(seed): v.replace("_", " ") for seed, v in labelled}
    return {i: v.replace("_", " ") for i, v in enumerate(re.findall(verdict, text))}


def feature_verdict(groups: pd.DataFrame, what: str) -> tuple[str, str, int]:
    """(verdict, spread text, n_seeds) of one feature from its quiet_loud.csv rows (the rule in
    the module docstring)."""
    n_seeds = int(groups.n_seeds.max()) if "n_seeds" in groups else 1
    if "seed_verdicts" not in groups or n_seeds < 2:
        return aggregate_verdict(groups.verdict), "", n_seeds
    per_group = [parse_seed_verdicts(t) for t in groups.seed_verdicts]
    seeds = set(per_group[0])
    if any(set(g) != seeds for g in per_group) or len(seeds) != n_seeds:
        raise ValueError(f"quiet_loud: seed_verdicts of {what} do not name the same {n_seeds} "
                         f"seeds in every group: {list(groups.seed_verdicts)}")
    per_seed = [aggregate_verdict([g[s] for g in per_group]) for s in sorted(seeds)]
    common = set(per_seed)
    counts = pd.Series(per_seed).value_counts()
    spread = ", ".join(f"{v} {counts[v]}/{len(per_seed)}" for v in VERDICTS if v in counts)
    return (common.pop() if len(common) == 1 else "mixed"), spread, n_seeds


# -- one row per kind ----------------------------------------------------------------------------------

def _row(paper_row, config: dict, **values) -> dict:
    entry = config["tasks"].get(paper_row.task)
    row = dict(kind=paper_row.kind, task=paper_row.task, item=paper_row.item,
               paper=paper_row.paper, ours=np.nan, ours_low=np.nan, ours_high=np.nan,
               ours_spread="", n_seeds=0, agree="not measured", rule=RULES[paper_row.kind],
               source=paper_row.source, paper_size=paper_row.paper_size,
               our_size=np.nan if entry is None else entry.get("size", np.nan), note="")
    row.update(values)
    return row


def _transition_row(p, transitions: pd.DataFrame, config: dict) -> dict:
    if p.task not in config["tasks"]:
        return _row(p, config, note="task not in the config")
    size = config["tasks"][p.task].get("size")
    rows = transitions[(transitions.task == p.task)
                       & ((transitions["size"] == size) if size is not None else True)]
    if rows.empty:
        raise ValueError(f"transitions: no row for the configured task {p.task!r} (size {size}); "
                         f"was it computed from this config's frontiers?")
    n = len(rows)
    found = rows.transition_budget.to_numpy(float)
    found = found[np.isfinite(found)]
    largest = max(_budgets(config, p.task))
    if len(found) == 0:
        agree = "not reached by this config" if largest < p.paper * (1 - 1e-9) else "no"
        return _row(p, config, n_seeds=n, agree=agree,
                    note=f"no transition found up to {format_budget(largest)}")
    # budgets are compared in decades: the median of their logs (one seed: its own value)
    ours = float(found[0]) if len(found) == 1 else float(10 ** np.median(np.log10(found)))
    values = dict(ours=ours, n_seeds=n,
                  agree="yes" if _decades(ours, p.paper) <= 1 + 1e-9 else "no",
                  note=f"{_decades(ours, p.paper):.2g} decades from the paper's")
    if n > 1:
        values.update(ours_low=float(found.min()), ours_high=float(found.max()),
                      ours_spread=f"{format_budget(found.min())}..{format_budget(found.max())} "
                                  f"over {n} seeds ({len(found)} found one)")
    return _row(p, config, **values)


def _verdict_row(p, quiet_loud: pd.DataFrame | None, config: dict, probed,
                 paper_transition: float) -> dict:
    if p.task not in config["tasks"] or p.task not in probed:
        return _row(p, config, note="task not probed by this config")
    if quiet_loud is None:
        raise ValueError(f"task {p.task!r} is probed but no quiet_loud table was given")
    rows = quiet_loud[(quiet_loud.task == p.task) & (quiet_loud.feature == p.item)]
    if rows.empty:
        return _row(p, config, note=f"no {p.item!r} rows in quiet_loud.csv (the task at this "
                                    f"size may not have the feature)")
    ours, spread, n_seeds = feature_verdict(rows, f"{p.task} {p.item}")
    if ours in ("quiet", "loud"):
        agree = "yes" if ours == p.paper else "no"
    elif ours == "no transition" and max(_budgets(config, p.task)) < paper_transition * (1 - 1e-9):
        agree = "not reached by this config"
    else:
        agree = "no"
    note = "groups: " + ", ".join(f"{g} {v}" for g, v in zip(rows.group, rows.verdict))
    return _row(p, config, ours=ours, ours_spread=spread, n_seeds=n_seeds, agree=agree, note=note)


def _seed_column(df: pd.DataFrame) -> str | None:
    return next((c for c in ("train_seed", "seed") if c in df.columns), None)


def _ablation_row(p, ablations: pd.DataFrame | None, config: dict, probed) -> dict:
    if p.task not in config["tasks"] or p.task not in probed:
        return _row(p, config, note="task not probed by this config")
    if ablations is None:
        raise ValueError(f"task {p.task!r} is probed but no ablation table was given")
    rows = ablations[(ablations.task == p.task) & (ablations.feature == p.item)
                     & (ablations.k == 1)]
    if rows.empty:
        return _row(p, config, note=f"no k=1 ablation of {p.item!r}")
    if "drop_rel_min" in ablations.columns:  # across seeds: one row per (task, feature, k)
        if len(rows) > 1:
            raise ValueError(f"ablations (across seeds): {len(rows)} rows for {p.task} "
                             f"{p.item} k=1; expected one")
        r = rows.iloc[0]
        n = int(r.n_seeds)
        ours, low, high = float(r.drop_rel_mean), float(r.drop_rel_min), float(r.drop_rel_max)
        if n == 1:
            if "drop_rel_lo" not in rows:
                raise ValueError("ablations (across seeds): one seed needs its bootstrap CI "
                                 "(drop_rel_lo, drop_rel_hi); pass results/ablations/summary.csv")
            low, high = float(r.drop_rel_lo), float(r.drop_rel_hi)
        undefined = 0 if math.isfinite(ours) else n
    else:  # one row per seed
        seed = _seed_column(rows)
        if len(rows) > 1 and (seed is None or rows[seed].duplicated().any()):
            raise ValueError(f"ablations: {len(rows)} rows for {p.task} {p.item} k=1 and no "
                             f"train_seed/seed column telling them apart")
        n = len(rows)
        drops = rows.drop_rel.to_numpy(float)
        finite = np.isfinite(drops)
        undefined = int((~finite).sum())
        if finite.sum() == 1:  # one seed with a drop: its bootstrap CI
            i = int(np.flatnonzero(finite)[0])
            ours = float(drops[i])
            low, high = float(rows.drop_rel_lo.iloc[i]), float(rows.drop_rel_hi.iloc[i])
        elif finite.any():
            ours = float(drops[finite].mean())
            low, high = float(drops[finite].min()), float(drops[finite].max())
        else:
            ours = low = high = math.nan
    if not math.isfinite(ours):
        return _row(p, config, n_seeds=n, agree="not reached by this config",
                    note="relative drop undefined: the unablated model answers nothing correctly")
    spread = (f"{_fmt(low)}..{_fmt(high)} over {n - undefined} seeds" if n - undefined > 1 else
              f"bootstrap CI {_fmt(low)}..{_fmt(high)} (one seed)")
    note = f"{undefined} of {n} seeds undefined (no correct answer unablated)" if undefined else ""
    agree = "yes" if low - 1e-12 <= p.paper <= high + 1e-12 else "no"
    return _row(p, config, ours=ours, ours_low=low, ours_high=high, ours_spread=spread,
                n_seeds=n - undefined, agree=agree, note=note)


# -- the table -----------------------------------------------------------------------------------------

def paper_comparison(paper: pd.DataFrame, transitions: pd.DataFrame,
                     quiet_loud: pd.DataFrame | None, ablations: pd.DataFrame | None,
                     config: dict) -> pd.DataFrame:
    """One row (COLUMNS) per paper number (load_paper_numbers), in the paper table's order
    within KINDS' order; the rules are in the module docstring and each row's `rule`.

    transitions: results/scaling/transitions.csv (task, size, transition_budget; several rows
        per task and size = several seeds). quiet_loud: results/probes/quiet_loud.csv (task,
        feature, group, verdict; optional n_seeds and seed_verdicts), None without probes.
    ablations: results/ablations/summary.csv (one row per seed: task, feature, k, drop_rel,
        drop_rel_lo, drop_rel_hi, optional train_seed/seed) or across_seeds.csv (task, feature,
        k, n_seeds, drop_rel_mean, drop_rel_min, drop_rel_max), None without probes.
    config: the Snakemake config (tasks with size and budgets, grid.budgets, probes.tasks).
    """
    _check_paper(paper, "paper")
    _require(transitions, TRANSITION_NEEDS, "transitions")
    if quiet_loud is not None:
        _require(quiet_loud, VERDICT_NEEDS, "quiet_loud")
        bad = sorted(set(quiet_loud.verdict) - set(VERDICTS))
        if bad:
            raise ValueError(f"quiet_loud: column verdict has {bad}; known: {list(VERDICTS)}")
    if ablations is not None:
        _require(ablations, ACROSS_SEEDS_NEEDS if "drop_rel_min" in ablations.columns
                 else SUMMARY_NEEDS, "ablations")
    if not isinstance(config.get("tasks"), dict):
        raise ValueError("config: no 'tasks' mapping")
    probed = set(((config.get("probes") or {}).get("tasks") or {}))
    # a verdict without a transition is "not reached" only below the paper's transition
    paper_transitions = paper[paper.kind == "transition"].set_index("task").paper
    rows = []
    for kind in KINDS:
        for p in paper[paper.kind == kind].itertuples(index=False):
            if kind == "transition":
                rows.append(_transition_row(p, transitions, config))
            elif kind == "verdict":
                rows.append(_verdict_row(p, quiet_loud, config, probed,
                                         float(paper_transitions.get(p.task, math.inf))))
            else:
                rows.append(_ablation_row(p, ablations, config, probed))
    return pd.DataFrame(rows, columns=COLUMNS)
