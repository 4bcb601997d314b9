"""qlf.scaling: run records, the compute-optimal frontier, random baselines, transitions."""
import itertools
import json
import math
import random
import re

import numpy as np
import pandas as pd
import pytest

from qlf.compute import make_spec
from qlf.scaling import (RANDOM_GUESS, RUN_COLUMNS, TRANSITION_COLUMNS, fit_power_law,
                         fixed_shape_series,
                         format_budget, frontier, load_records, power_law, random_guess_loss,
                         transitions, val_curves)
from qlf.tasks import TASKS

GRID = dict(d_model=[16, 32], n_layers=[4, 8], lr=[1e-2, 1e-3], batch_size=[8, 64])


def write_record(directory, task="addition", size=16, budget=1e10, d_model=16, n_layers=4,
                 lr=1e-3, batch_size=64, name=None, **summary):
    spec = make_spec(task, size, budget, d_model, n_layers, 4, lr, batch_size, ctx=52.0)
    body = {"val_loss": 0.5, "test_acc": 0.25, "train_loss": 0.6, "steps": spec.steps,
            "tokens": spec.steps * batch_size * 52, "flops_nominal": budget,
            "flops_actual": spec.flops, "wall_s": 1.5, "val_curve": [[1, 0.7]]}
    body.update(summary)
    path = directory / (name or f"{task}_{budget:.0e}_{spec.run_id}.json")
    path.write_text(json.dumps({"spec": spec.to_dict(), "summary": body}))
    return path, spec


# -- load_records ------------------------------------------------------------------------------

def test_load_records_columns_values_and_order(tmp_path):
    paths, specs = [], {}
    for budget, d in itertools.product([1e11, 1e9, 1e10], [32, 16]):
        path, spec = write_record(tmp_path, budget=budget, d_model=d, val_loss=budget / d,
                                  test_acc=d / 100)
        paths.append(path)
        specs[str(path)] = spec
    random.Random(0).shuffle(paths)
    runs = load_records(paths)
    assert list(runs.columns) == RUN_COLUMNS
    assert len(runs) == 6
    assert list(runs.budget) == [1e9, 1e9, 1e10, 1e10, 1e11, 1e11]
    assert list(runs.budget_exp) == [9, 9, 10, 10, 11, 11]
    assert list(runs.d_model) == [16, 32] * 3
    for row in runs.itertuples():
        spec = specs[row.path]
        assert row.run_id == spec.run_id and row.steps == spec.steps
        assert row.val_loss == spec.budget / spec.d_model and row.test_acc == spec.d_model / 100
        assert row.flops_actual == spec.flops
    # another input order gives the same table
    assert load_records(sorted(paths)).equals(runs)


def test_load_records_missing_metrics_are_nan_but_val_loss_is_required(tmp_path):
    path, _ = write_record(tmp_path, val_loss=None, test_acc=None, wall_s=None)
    runs = load_records([path])
    assert runs.val_loss.isna().all() and runs.test_acc.isna().all()
    record = json.loads(path.read_text())
    del record["summary"]["val_loss"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=re.escape(f"{path}: summary has no val_loss")):
        load_records([path])


@pytest.mark.parametrize("text, message", [
    ('{"spec": {"task": "addition"', "not a valid JSON"),
    ('[1, 2]', "expected a JSON object"),
    ('{"summary": {"val_loss": 1.0}}', "expected a JSON object"),
])
def test_load_records_bad_file_names_the_file(tmp_path, text, message):
    good, _ = write_record(tmp_path)
    bad = tmp_path / "broken_run.json"
    bad.write_text(text)
    with pytest.raises(ValueError, match=f"broken_run.json.*{message}"):
        load_records([good, bad])


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["spec"].update(d_model=-4), "bad spec.*d_model"),
    (lambda r: r["spec"].update(task="no_such_task"), "bad spec.*unknown task"),
    (lambda r: r["spec"].pop("budget"), "bad spec.*missing"),
    (lambda r: r["summary"].update(val_loss="low"), "val_loss must be a number"),
    (lambda r: r["summary"].update(test_acc=1.5), r"test_acc 1.5 is not in \[0, 1\]"),
])
def test_load_records_bad_content_names_the_file(tmp_path, edit, message):
    path, _ = write_record(tmp_path, name="odd_run.json")
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"odd_run.json.*{message}"):
        load_records([path])


def test_load_records_duplicate_run_names_both_files(tmp_path):
    first, _ = write_record(tmp_path, name="a.json")
    second, _ = write_record(tmp_path, name="b.json", val_loss=0.1)
    with pytest.raises(ValueError, match="a.json.*b.json"):
        load_records([second, first])
    with pytest.raises(ValueError, match="no run records"):
        load_records([])
    with pytest.raises(FileNotFoundError):
        load_records([tmp_path / "absent.json"])


# -- frontier ----------------------------------------------------------------------------------

def test_val_curves_one_row_per_point(tmp_path):
    a, spec_a = write_record(tmp_path, budget=1e10, val_curve=[[1, 1.5], [4, 0.7], [9, 0.01]])
    b, spec_b = write_record(tmp_path, task="multiplication", budget=1e11,
                             val_curve=[[2, 2.0], [5, 1.0]])
    curves = val_curves([a, b])
    assert list(curves.columns) == ["task", "size", "run_id", "budget", "step", "val_loss"]
    assert curves.task.tolist() == ["addition"] * 3 + ["multiplication"] * 2
    assert curves.step.tolist() == [1, 4, 9, 2, 5]
    assert curves.val_loss.tolist() == [1.5, 0.7, 0.01, 2.0, 1.0]
    assert curves.run_id.tolist() == [spec_a.run_id] * 3 + [spec_b.run_id] * 2
    assert val_curves(a).budget.eq(1e10).all()  # one path
    empty, _ = write_record(tmp_path, budget=1e12, val_curve=[])
    with pytest.raises(ValueError, match="no val_curve"):
        val_curves([a, empty])


def brute_force_frontier(rows):
    """Python-loop reference: per cell the finite minimum, ties to the smallest run_id."""
    cells = {}
    for row in rows:
        cells.setdefault((row["task"], row["size"], row["budget"]), []).append(row)
    best = {}
    for cell, members in cells.items():
        finite = [r for r in members if math.isfinite(r["val_loss"])]
        winner = min(finite, key=lambda r: (r["val_loss"], r["run_id"]))
        best[cell] = (winner["run_id"], len(members))
    return best


def synthetic_runs(rng, budgets=(1e9, 1e10, 1e11), tasks=("addition", "multiplication")):
    rows = []
    for task, budget in itertools.product(tasks, budgets):
        for d, n, lr, b in itertools.product(*GRID.values()):
            loss = float(rng.choice([rng.uniform(0.1, 1.0), np.nan], p=[0.9, 0.1]))
            rows.append(dict(task=task, size=16, budget=budget, d_model=d, n_layers=n, lr=lr,
                             batch_size=b, run_id=f"d{d}_L{n}_H4_lr{lr!r}_B{b}", val_loss=loss,
                             test_acc=float(rng.uniform())))
    return rows


def test_frontier_matches_brute_force_and_keeps_all_columns():
    rng = np.random.default_rng(1)
    for _ in range(5):
        rows = synthetic_runs(rng)
        runs = pd.DataFrame(rows).sample(frac=1, random_state=int(rng.integers(1000)))
        best = frontier(runs)
        added = {"n_runs", "seed", "n_seeds", "val_loss_min", "val_loss_max"}
        assert set(runs.columns) | added == set(best.columns)
        assert best.n_seeds.eq(1).all() and best.val_loss_min.eq(best.val_loss).all()
        expected = brute_force_frontier(rows)
        assert len(best) == len(expected)
        for row in best.itertuples():
            assert (row.run_id, row.n_runs) == expected[(row.task, row.size, row.budget)]
        cells = list(zip(best.task, best["size"], best.budget))
        assert cells == sorted(cells)


@pytest.mark.parametrize("field, values", list(GRID.items()))
def test_frontier_minimum_is_over_every_hyperparameter(field, values):
    """The winner differs from the others only in `field`: selection must look at it."""
    rows = synthetic_runs(np.random.default_rng(2), budgets=(1e10,), tasks=("addition",))
    for row in rows:
        row["val_loss"] = 1.0
    winner = next(r for r in rows if r[field] == values[-1]
                  and all(r[f] == v[0] for f, v in GRID.items() if f != field))
    winner["val_loss"] = 0.25
    best = frontier(pd.DataFrame(rows))
    assert len(best) == 1 and best.iloc[0][field] == values[-1]
    assert best.iloc[0].val_loss == 0.25 and best.iloc[0].n_runs == 16


def test_frontier_ties_are_deterministic_and_nan_never_wins():
    rows = synthetic_runs(np.random.default_rng(3), budgets=(1e9,), tasks=("addition",))
    for row in rows:
        row["val_loss"] = 0.5
    rows[3]["val_loss"] = rows[9]["val_loss"] = 0.125
    rows[0]["val_loss"] = math.nan
    expected = min(rows[3]["run_id"], rows[9]["run_id"])
    for seed in range(4):
        shuffled = pd.DataFrame(rows).sample(frac=1, random_state=seed)
        assert frontier(shuffled).iloc[0].run_id == expected
    for row in rows:
        row["val_loss"] = math.inf if row is rows[5] else math.nan
    with pytest.raises(ValueError, match="no run with a finite val_loss.*addition size 16"):
        frontier(pd.DataFrame(rows))
    with pytest.raises(ValueError, match="missing columns.*run_id"):
        frontier(pd.DataFrame(rows).drop(columns="run_id"))


def brute_force_seed_frontier(rows):
    """Python-loop reference with seeds: per cell the configuration whose seeds' mean val_loss
    is lowest among those with every seed finite; ties to the smallest run_id of the smallest
    seed, which names the configuration."""
    configs = {}
    for row in rows:
        key = (row["task"], row["size"], row["budget"], row["d_model"], row["n_layers"],
               row["lr"], row["batch_size"])
        configs.setdefault(key, []).append(row)
    best = {}
    for key, seeds in configs.items():
        losses = [r["val_loss"] for r in seeds]
        if not all(math.isfinite(v) for v in losses):
            continue
        first = min(seeds, key=lambda r: (r["seed"], r["run_id"]))
        candidate = (sum(losses) / len(losses), first["run_id"], min(losses), max(losses))
        best[key[:3]] = min(best.get(key[:3], candidate), candidate)
    return best


def test_frontier_averages_seeds_before_choosing():
    rng = np.random.default_rng(7)
    for _ in range(5):
        rows = []
        for row in synthetic_runs(rng, budgets=(1e9, 1e10), tasks=("addition",)):
            for seed in (3, 0, 1):  # seed order in the table must not matter
                loss = float(rng.choice([rng.uniform(0.1, 1.0), np.nan], p=[0.95, 0.05]))
                rows.append({**row, "seed": seed, "val_loss": loss,
                             "run_id": row["run_id"] + f"_s{seed}"})
        runs = pd.DataFrame(rows).sample(frac=1, random_state=int(rng.integers(1000)))
        best = frontier(runs)
        expected = brute_force_seed_frontier(rows)
        assert len(best) == len(expected)
        for row in best.itertuples():
            mean, run_id, low, high = expected[(row.task, row.size, row.budget)]
            assert row.run_id == run_id and row.seed == 0 and row.n_seeds == 3
            assert row.val_loss == pytest.approx(mean)
            assert (row.val_loss_min, row.val_loss_max) == (low, high)
            assert row.n_runs == 48


def test_frontier_is_not_the_luckiest_seed():
    base = dict(task="addition", size=16, budget=1e10, d_model=32, n_layers=4, batch_size=64)
    rows = [dict(base, lr=1e-2, seed=0, val_loss=0.05, run_id="a_s0"),  # lucky seed, bad mean
            dict(base, lr=1e-2, seed=1, val_loss=0.95, run_id="a_s1"),
            dict(base, lr=1e-3, seed=0, val_loss=0.40, run_id="b_s0"),
            dict(base, lr=1e-3, seed=1, val_loss=0.40, run_id="b_s1")]
    best = frontier(pd.DataFrame(rows)).iloc[0]
    assert (best.run_id, best.val_loss, best.n_seeds) == ("b_s0", 0.40, 2)
    rows[3]["val_loss"] = math.nan  # a configuration with a diverged seed never wins
    assert frontier(pd.DataFrame(rows)).iloc[0].run_id == "a_s0"


def test_fixed_shape_series_holds_every_seed_of_the_chosen_configuration():
    rows = []
    for budget, (lr_best, seeds) in {1e9: (1e-3, (0, 1)), 1e10: (1e-2, (0, 1))}.items():
        for lr, seed in itertools.product((1e-2, 1e-3), seeds):
            rows.append(dict(task="addition", size=16, budget=budget, d_model=64, n_layers=4,
                             n_heads=4, lr=lr, batch_size=64, seed=seed,
                             val_loss=0.2 + seed * 0.01 if lr == lr_best else 0.5 - seed * 0.3,
                             run_id=f"d64_lr{lr!r}_s{seed}"))
    runs = pd.DataFrame(rows)
    series = fixed_shape_series(runs, frontier(runs), 1e10, 1e10)
    assert list(zip(series.budget, series.seed, series.run_id)) == [
        (1e9, 0, "d64_lr0.001_s0"), (1e9, 1, "d64_lr0.001_s1"),
        (1e10, 0, "d64_lr0.01_s0"), (1e10, 1, "d64_lr0.01_s1")]
    assert list(series.val_loss) == pytest.approx([0.2, 0.21, 0.2, 0.21])  # each seed's own


def test_records_to_frontier_end_to_end(tmp_path):
    paths = [write_record(tmp_path, budget=c, d_model=d, lr=lr, val_loss=loss)[0]
             for c, d, lr, loss in [(1e9, 16, 1e-3, 0.7), (1e9, 32, 1e-2, 0.6),
                                    (1e10, 16, 1e-2, 0.3), (1e10, 32, 1e-3, 0.9)]]
    best = frontier(load_records(paths))
    assert list(best.run_id) == ["d32_L4_H4_lr0.01_B64", "d16_L4_H4_lr0.01_B64"]
    assert list(best.n_runs) == [2, 2] and list(best.budget_exp) == [9, 10]
    # the workflow passes tables through CSV files: same frontier, same transitions
    load_records(paths).to_csv(tmp_path / "runs.csv", index=False)
    again = frontier(pd.read_csv(tmp_path / "runs.csv"))
    pd.testing.assert_frame_equal(again, best, check_dtype=False)
    best.to_csv(tmp_path / "frontier.csv", index=False)
    pd.testing.assert_frame_equal(transitions(pd.read_csv(tmp_path / "frontier.csv")),
                                  transitions(best), check_dtype=False)


# -- random-guess baselines --------------------------------------------------------------------

def test_random_guess_equals_the_reference_table_at_paper_sizes():
    ln2 = math.log(2)
    table = {  # pipeline.md §9.4: constant and its printed rounding
        "addition": (18 / 19 * ln2, 0.657),
        "majority_of_majority": (ln2 / 3, 0.231),
        "activity_selection": (math.log(20), 2.996),
        "maximum_subarray": (math.log(20), 2.996),
        "multiplication": (32 / 34 * ln2, 0.652),
        "graph_breadth_first_search": (11 / 13 * math.log(26), 2.757),
        "graph_depth_first_search": (11 / 13 * math.log(26), 2.757),
        "graph_min_spanning_tree_kruskal": (math.log(27), 3.296),
        "graph_path": (math.log(27), 3.296),
        "graph_topological_sort": (math.log(27), 3.296),
    }
    assert set(table) == set(RANDOM_GUESS)
    for task, (exact, printed) in table.items():
        value = random_guess_loss(task, TASKS[task].default_size)
        assert value == pytest.approx(exact, rel=1e-12)
        assert round(value, 3) == printed


def test_random_guess_generalises_with_size_and_checks_input():
    assert random_guess_loss("addition", 8) == pytest.approx(10 / 11 * math.log(2))
    assert random_guess_loss("multiplication", 4) == pytest.approx(8 / 10 * math.log(2))
    assert random_guess_loss("graph_depth_first_search", 7) == pytest.approx(
        7 / 9 * math.log(26))
    assert random_guess_loss("majority_of_majority", 8) == pytest.approx(math.log(2) / 3)
    with pytest.raises(ValueError, match="unknown task"):
        random_guess_loss("no_such_task", 8)
    with pytest.raises(ValueError, match="out of range"):
        random_guess_loss("addition", 0)


def test_random_guess_of_other_tasks_is_their_declared_format_guess():
    # tasks outside the paper's ten declare it: a one-bit answer is ln2 on 1 of 3 targets, ...
    assert random_guess_loss("parity", 8) == pytest.approx(math.log(2) / 3)
    assert random_guess_loss("binary_sorting", 3) == pytest.approx(12 / 14 * math.log(2))
    assert random_guess_loss("repeated_addition", 4) == pytest.approx(6 / 7 * math.log(2))
    # ... and the default is uniform over every token but '=' (vocabulary of 13 tokens)
    assert random_guess_loss("sorting", 8) == pytest.approx(math.log(12))


# -- power-law fit and transitions -------------------------------------------------------------

BUDGETS = 10.0 ** np.arange(9, 16)


def frontier_of(losses, task="addition", budgets=BUDGETS):
    return pd.DataFrame(dict(task=task, size=16, budget=budgets[:len(losses)],
                             val_loss=np.asarray(losses, float)))


def test_fit_power_law_matches_polyfit_and_never_rises():
    rng = np.random.default_rng(4)
    losses = 5.0 * BUDGETS ** -0.12 * np.exp(rng.normal(0, 0.05, len(BUDGETS)))
    a, b = fit_power_law(BUDGETS, losses)
    slope, intercept = np.polyfit(np.log(BUDGETS), np.log(losses), 1)
    assert b == pytest.approx(-slope) and math.log(a) == pytest.approx(intercept)
    rising = np.array([0.5, 0.6, 0.7])
    a, b = fit_power_law(BUDGETS[:3], rising)
    assert b == 0.0 and math.copysign(1, b) == 1  # b >= 0: refit flat at the geometric mean
    assert a == pytest.approx(float(np.exp(np.log(rising).mean())))
    assert power_law(2.0, 0.5, [4.0, 100.0]) == pytest.approx([1.0, 0.2])


@pytest.mark.parametrize("a, b", [(3.0, 0.05), (40.0, 0.2), (0.7, 0.0), (1e6, 0.6)])
def test_pure_power_law_has_no_transition(a, b):
    out = transitions(frontier_of(power_law(a, b, BUDGETS))).iloc[0]
    assert math.isnan(out.transition_budget) and math.isnan(out.departure)
    assert out.fit_a == pytest.approx(a, rel=1e-6) and out.fit_b == pytest.approx(b, abs=1e-9)
    assert (out.fit_from, out.fit_to, out.fit_points, out.n_points) == (1e9, 1e15, 7, 7)
    assert abs(out.max_departure) < 1e-9 and "no budget falls" in out.reason


def test_flat_then_drop_gives_the_drop_budget():
    """The paper's addition shape: flat ~0.65 for 1e9..1e11, then 0.05 from 1e12 on."""
    losses = [0.66, 0.65, 0.655, 0.05, 0.03, 0.02, 0.015]
    out = transitions(frontier_of(losses)).iloc[0]
    assert out.transition_budget == 1e12
    assert (out.fit_from, out.fit_to, out.fit_points) == (1e9, 1e11, 3)
    predicted = power_law(out.fit_a, out.fit_b, 1e12)
    assert out.departure == pytest.approx(math.log(predicted / 0.05))
    assert out.departure == pytest.approx(math.log(0.655 / 0.05), abs=0.03)
    assert "1e12" in out.reason and "1e9..1e11" in out.reason
    assert list(transitions(frontier_of(losses)).columns) == TRANSITION_COLUMNS


def test_noise_does_not_fake_a_transition_but_the_rule_is_live():
    rng = np.random.default_rng(5)
    found = {0.5: 0, 0.05: 0}
    for trial in range(200):
        b = rng.uniform(0.0, 0.3)
        losses = 2.0 * BUDGETS ** -b * np.exp(rng.normal(0, 0.08, len(BUDGETS)))
        for threshold in found:
            out = transitions(frontier_of(losses), threshold=threshold).iloc[0]
            found[threshold] += not math.isnan(out.transition_budget)
    assert found[0.5] == 0
    assert found[0.05] > 20  # a threshold at the noise level does fire: the test can fail
    # and a real drop is still found through the same noise
    for trial in range(50):
        losses = np.array([0.65] * 3 + [0.05] * 4) * np.exp(rng.normal(0, 0.08, 7))
        assert transitions(frontier_of(losses)).iloc[0].transition_budget == 1e12


def test_single_dip_needs_confirmation_and_last_budget_stands_alone():
    losses = power_law(3.0, 0.05, BUDGETS)
    losses[4] /= 2.5  # 1e13 dips, later budgets return to the law
    confirmed = transitions(frontier_of(losses)).iloc[0]
    assert math.isnan(confirmed.transition_budget)
    assert "1e13 was not confirmed" in confirmed.reason
    assert confirmed.max_departure == pytest.approx(math.log(2.5))
    eager = transitions(frontier_of(losses), confirm=False).iloc[0]
    assert eager.transition_budget == 1e13
    last = power_law(3.0, 0.05, BUDGETS)
    last[-1] /= 3
    out = transitions(frontier_of(last)).iloc[0]
    assert out.transition_budget == 1e15 and "unconfirmed" in out.reason


def test_plateau_and_short_frontiers_are_not_transitions():
    plateau = [2.0, 1.0, 0.5, 0.5, 0.5, 0.5]  # loss above the extrapolation: not a drop
    assert math.isnan(transitions(frontier_of(plateau)).iloc[0].transition_budget)
    short = transitions(frontier_of([0.65, 0.6, 0.05])).iloc[0]
    assert math.isnan(short.transition_budget) and "too few budgets" in short.reason
    two = transitions(frontier_of([0.65, 0.6, 0.05]), min_fit_points=2).iloc[0]
    assert two.transition_budget == 1e11
    zero = transitions(frontier_of([0.65, 0.65, 0.65, 0.0, 0.0])).iloc[0]
    assert zero.transition_budget == 1e12 and np.isfinite(zero.departure)


def test_transitions_one_row_per_task_and_bad_input():
    both = pd.concat([frontier_of([0.66, 0.65, 0.65, 0.05, 0.01], task="multiplication"),
                      frontier_of(power_law(3.0, 0.1, BUDGETS), task="addition")])
    out = transitions(both.sample(frac=1, random_state=0))
    assert list(out.task) == ["addition", "multiplication"]
    assert math.isnan(out.transition_budget[0]) and out.transition_budget[1] == 1e12
    with pytest.raises(ValueError, match="threshold"):
        transitions(both, threshold=0)
    with pytest.raises(ValueError, match="min_fit_points"):
        transitions(both, min_fit_points=1)
    with pytest.raises(ValueError, match="more than one frontier point per budget"):
        transitions(pd.concat([both, both]))
    with pytest.raises(ValueError, match="non-finite"):
        transitions(frontier_of([0.5, np.nan, 0.4, 0.3]))
    with pytest.raises(ValueError, match="missing columns"):
        transitions(both.drop(columns="val_loss"))


def test_format_budget():
    assert format_budget(1e12) == "1e12" and format_budget(3e9) == "3e+09"


# -- provenance ----------------------------------------------------------------------------------

MADE = [dict(qlf_source_sha256="ab12cd34ef56ab78", git_commit="c0ffee" * 6 + "beef",
             git_dirty=True, torch="2.13.0", threads=4),
        dict(qlf_source_sha256="0123456789abcdef", git_commit=None, git_dirty=None,
             torch="2.3.1+cu121", threads=16)]


def test_load_records_carry_each_records_own_provenance(tmp_path):
    from qlf.provenance import COLUMNS
    a, _ = write_record(tmp_path, budget=1e9, provenance=MADE[0])
    b, _ = write_record(tmp_path, budget=1e10, provenance=MADE[1])
    c, _ = write_record(tmp_path, budget=1e11)  # a record from before provenance
    runs = load_records([c, b, a]).set_index("budget")
    assert list(runs.columns[-len(COLUMNS):]) == list(COLUMNS)
    for budget, made in ((1e9, MADE[0]), (1e10, MADE[1])):
        for key in COLUMNS:  # unknown (None) is NaN in the table
            got = runs.loc[budget, key]
            assert pd.isna(got) if made[key] is None else got == made[key], (key, got)
    assert runs.loc[1e11, list(COLUMNS)].isna().all()
    bad, _ = write_record(tmp_path, budget=1e12, provenance="yesterday")
    with pytest.raises(ValueError, match=r"summary.provenance must be an object"):
        load_records([bad])


def test_scripts_write_record_and_process_provenance(tmp_path, monkeypatch):
    """collect_runs and frontier: each row the provenance of its own record; transitions: the
    provenance of the process that computed it."""
    from qlf.provenance import COLUMNS, provenance
    from script_runner import run_script
    paths, made = [], {}
    for i, (budget, d) in enumerate(itertools.product([1e9, 1e10, 1e11, 1e12], [16, 32])):
        path, spec = write_record(tmp_path, budget=budget, d_model=d,
                                  val_loss=1.0 / (budget * d) ** 0.1, provenance=MADE[i % 2])
        paths.append(path)
        made[str(path)] = MADE[i % 2]
    runs_csv, frontier_csv, transitions_csv = (tmp_path / n for n in
                                               ("runs.csv", "frontier.csv", "transitions.csv"))
    run_script("collect_runs", monkeypatch, tmp_path, input=paths, output=[runs_csv])
    run_script("frontier", monkeypatch, tmp_path, input=[runs_csv], output=[frontier_csv])
    strings = {"qlf_source_sha256": str, "git_commit": str, "torch": str}
    for csv in (runs_csv, frontier_csv):
        table = pd.read_csv(csv, dtype=strings)
        assert set(COLUMNS) <= set(table.columns)
        for row in table.itertuples():
            want = made[row.path]
            for key in COLUMNS:
                got = getattr(row, key)
                assert (pd.isna(got) if want[key] is None else got == want[key]), (key, got)
    assert len(pd.read_csv(frontier_csv)) == 4
    run_script("transitions", monkeypatch, tmp_path, input=[frontier_csv],
               output=[transitions_csv], params=dict(options={}))
    table = pd.read_csv(transitions_csv, dtype={c: str for c in COLUMNS})
    assert list(table.columns) == TRANSITION_COLUMNS + list(COLUMNS)
    process = provenance()
    for key in COLUMNS:
        assert set(table[key]) == {str(process[key])}, key
