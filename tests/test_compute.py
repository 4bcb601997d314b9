"""Compute accounting, run specs, config validation and the grid plan (pipeline.md §2, §3)."""
import copy
import json
import math
import os
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from qlf import compute
from qlf.compute import (RunSpec, context_length, flops_actual, flops_per_token, load_config,
                         make_spec, max_steps, model_seed_for, plan, plan_table,
                         reference_train_set_size, tokens_for_budget, train_examples,
                         validate_config)
from qlf.data import Layout, Stream
from qlf.graphs import make_graph_file
from qlf.tasks import get_task

CONFIG = Path(__file__).resolve().parents[1] / "config"

# pipeline.md §3.3: runs per budget exponent (all 4 lrs), the reference's grid.
PAPER_COUNTS = {
    "addition": [112, 112, 112, 112, 96, 72, 40],
    "multiplication": [112, 112, 112, 112, 100, 72, 48, 16],
    "activity_selection": [112, 112, 112, 108, 96, 64, 40],
    "maximum_subarray": [112, 112, 112, 112, 104, 76, 48],
    "majority_of_majority": [112, 112, 112, 112, 100, 72, 48],
    "graph_breadth_first_search": [112, 112, 112, 112, 100, 72, 48],
    "graph_depth_first_search": [112, 112, 112, 112, 100, 72, 48],
    "graph_min_spanning_tree_kruskal": [112, 112, 112, 112, 100, 72, 48],
    "graph_topological_sort": [112, 112, 112, 112, 100, 72, 48],
    "graph_path": [112, 112, 112, 112, 100, 72, 40],
}


@pytest.fixture(scope="module")
def paper_runs():
    return plan(CONFIG / "paper.yaml")


@pytest.fixture(scope="module")
def graphs6(tmp_path_factory):
    """A folder with every connected graph on 6 nodes (112), as the smoke config needs."""
    folder = tmp_path_factory.mktemp("graphs")
    make_graph_file(6, folder / "graph6c.g6")
    return folder


def spec_args(**over):
    args = dict(task="addition", size=16, budget=1e12, d_model=64, n_layers=4, n_heads=4,
                lr=1e-3, batch_size=64, ctx=52.0, steps=239)
    args.update(over)
    return args


# -- the FLOPs model: pipeline.md §2.3 worked examples (addition, ctx 52) ---------------------------

def test_worked_example_1e12_d64_L4_B64():
    assert 12 * 4 * 64 * 64 == 196_608
    assert flops_per_token(64, 4, 52) == 209_920
    assert tokens_for_budget(1e12, 64, 4, 52) == pytest.approx(793_953, abs=0.5)
    assert reference_train_set_size(1e12, 64, 4, 52) == 19_086
    assert max_steps(1e12, 64, 4, 52, 64) == 239
    spec = RunSpec(**spec_args())
    assert spec.warmup_steps == 23 and spec.train_examples == 239 * 64


def test_worked_examples_other_budgets():
    assert flops_per_token(512, 16, 52) - 16 * 52 * 512 == 50_331_648
    assert tokens_for_budget(1e15, 512, 16, 52) == pytest.approx(3.28e6, rel=2e-3)
    assert reference_train_set_size(1e15, 512, 16, 52) == 78_932
    assert max_steps(1e15, 512, 16, 52, 64) == 987
    assert tokens_for_budget(1e9, 512, 16, 52) == pytest.approx(3.3, abs=0.05)
    assert reference_train_set_size(1e9, 512, 16, 52) == 1
    assert max_steps(1e9, 512, 16, 52, 64) == 1
    assert RunSpec(**spec_args(budget=1e9, d_model=512, n_layers=16, steps=1)).warmup_steps == 0
    assert reference_train_set_size(1e13, 8, 4, 52) == pytest.approx(8.46e6, rel=1e-3)
    assert max_steps(1e13, 8, 4, 52, 8) == 845_949


def test_steps_equal_exact_rational_arithmetic_on_the_paper_grid():
    """The float formula lands where exact arithmetic does for every paper cell."""
    ctxs = {e["ctx"] for e in load_config(CONFIG / "paper.yaml")["tasks"].values()}
    for ctx in ctxs:
        for k in range(9, 17):
            for b in (8, 64):
                for d in (8, 16, 32, 64, 128, 256, 512):
                    for n in (4, 16):
                        c = Fraction(ctx)
                        exact = Fraction(10**k) / (6 * (12 * n * d * d + n * c * d)) / (b * c)
                        assert max_steps(10.0**k, d, n, ctx, b) == math.ceil(exact)


def test_accounting_relations_hold_on_the_paper_grid():
    """One pass never needs a second epoch of the reference's train set, and the spent FLOPs
    exceed the budget by less than one batch."""
    for ctx in (40.2, 52.0, 61.9140625, 93.2):
        for k in range(9, 16):
            for b in (8, 64):
                for d in (8, 64, 512):
                    steps = max_steps(10.0**k, d, 4, ctx, b)
                    assert math.ceil(reference_train_set_size(10.0**k, d, 4, ctx) / b) >= steps
                    assert train_examples(10.0**k, d, 4, ctx, b) == steps * b
                    spent = flops_actual(steps, b, ctx, d, 4)
                    one_batch = 6 * flops_per_token(d, 4, ctx) * b * ctx
                    assert 10.0**k <= spent < 10.0**k + one_batch


@pytest.mark.parametrize("call", [
    lambda: flops_per_token(0, 4, 52), lambda: flops_per_token(64, 4, 0),
    lambda: tokens_for_budget(0, 64, 4, 52), lambda: max_steps(1e12, 64, 4, 52, 0)])
def test_formulas_reject_bad_input(call):
    with pytest.raises(ValueError):
        call()


# -- the paper grid: pipeline.md §3.3 ------------------------------------------------------------

def test_paper_run_counts_per_task_and_budget(paper_runs):
    counts = Counter((s.task, round(math.log10(s.budget))) for s in paper_runs)
    for task, row in PAPER_COUNTS.items():
        got = [counts[(task, k)] for k in range(9, 9 + len(row))]
        assert got == row, task
    assert {t for t, _ in counts} == set(PAPER_COUNTS)
    graph = sum(n for (t, _), n in counts.items() if t.startswith("graph_"))
    assert (len(paper_runs) - graph, graph, len(paper_runs)) == (3328, 3332, 6660)


def test_paper_addition_1e15_surviving_cells(paper_runs):
    cells = {(s.batch_size, s.d_model, s.n_layers) for s in paper_runs
             if s.task == "addition" and s.budget == 1e15}
    assert cells == {(8, 256, 16), (8, 512, 4), (8, 512, 16), (64, 64, 16), (64, 128, 4),
                     (64, 128, 16), (64, 256, 4), (64, 256, 16), (64, 512, 4), (64, 512, 16)}
    lrs = Counter(s.lr for s in paper_runs if s.task == "addition" and s.budget == 1e15)
    assert lrs == {0.1: 10, 0.01: 10, 0.001: 10, 0.0001: 10}


def test_paper_runs_are_unique_and_carry_the_config(paper_runs):
    ids = [(s.task, s.budget, s.run_id) for s in paper_runs]
    assert len(set(ids)) == len(ids)
    s = paper_runs[0]
    assert (s.precision, s.warmup_ratio, s.beta2, s.n_probe_train, s.seed) == ("32", 0.1, 0.95,
                                                                               10000, 0)
    assert all(1 <= s.steps <= 100_000 for s in paper_runs)


def test_plan_order_is_stable(paper_runs):
    first = [(s.batch_size, s.lr, s.d_model, s.n_layers) for s in paper_runs[:112]]
    assert first == [(b, lr, d, n) for b in (8, 64) for lr in (0.1, 0.01, 0.001, 0.0001)
                     for d in (8, 16, 32, 64, 128, 256, 512) for n in (4, 16)]
    assert [s.task for s in paper_runs[::100]][:2] == ["addition", "addition"]
    assert plan(CONFIG / "paper.yaml") == paper_runs


def test_plan_table_totals():
    table = plan_table(CONFIG / "paper.yaml")
    lines = table.splitlines()
    assert lines[-1].split()[-2] == "6660/7952"
    assert any(l.split()[:1] == ["multiplication"] and "684/896" in l for l in lines)
    row = next(l for l in lines if l.split()[:4] == ["addition", "16", "52.000", "1e15"])
    assert row.split()[4:] == ["40/112", "4.00e+16"]


# -- model seeds ---------------------------------------------------------------------------------

def test_model_seeds_are_deterministic_and_distinct(paper_runs):
    cell = [s for s in paper_runs if s.task == "addition" and s.budget == 1e9]
    assert len({s.model_seed for s in cell}) == len(cell)
    paper = load_config(CONFIG / "paper.yaml")
    other = plan({**paper, "seed": 1, "tasks": {"addition": paper["tasks"]["addition"]}})
    assert [s.run_id for s in other] == [s.run_id for s in paper_runs[:len(other)]]
    assert sum(a.model_seed == b.model_seed for a, b in zip(paper_runs, other)) < 5
    s = paper_runs[0]
    assert s.model_seed == model_seed_for(0, s.task, s.size, s.budget, s.run_id) < 2**31


def test_model_seed_is_the_same_in_another_process():
    code = ("from qlf.compute import model_seed_for; "
            "print(model_seed_for(3, 'graph_path', 11, 1e12, 'd64_L4_H4_lr0.001_B64'))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert int(out) == model_seed_for(3, "graph_path", 11, 1e12, "d64_L4_H4_lr0.001_B64")


# -- RunSpec -------------------------------------------------------------------------------------

def test_runspec_round_trip_through_json():
    spec = RunSpec(**spec_args(model_seed=77, precision="bf16-mixed", val_points=5))
    back = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and hash(back) == hash(spec)
    assert spec.run_id == "d64_L4_H4_lr0.001_B64"
    assert RunSpec(**spec_args(budget=10**12, steps=239.0)) == RunSpec(**spec_args())


def test_runspec_from_dict_rejects_unknown_and_missing_keys():
    d = RunSpec(**spec_args()).to_dict()
    with pytest.raises(ValueError, match="unknown keys.*dropout"):
        RunSpec.from_dict({**d, "dropout": 0.0})
    del d["steps"]
    with pytest.raises(ValueError, match="missing required keys.*steps"):
        RunSpec.from_dict(d)


@pytest.mark.parametrize("over, message", [
    (dict(task="adition"), "task: unknown task 'adition'"),
    (dict(size=40), "size: addition: size 40 out of range"),
    (dict(task="majority_of_majority", size=5), "size: .*even"),
    (dict(d_model=62), "d_model 62 is not divisible by n_heads 4"),
    (dict(d_model=12, n_heads=4), "head dim"),
    (dict(lr=0.0), "lr: 0.0 is not allowed"),
    (dict(lr=-1e-3), "lr: -0.001"),
    (dict(batch_size=0), "batch_size: 0"),
    (dict(steps=0), "steps: 0"),
    (dict(ctx=-1.0), "ctx: -1.0"),
    (dict(budget=0), "budget: 0.0"),
    (dict(precision="16"), "precision: '16'.*'bf16-mixed'"),
    (dict(warmup_ratio=1.0), "warmup_ratio"),
    (dict(n_val=0), "n_val"),
    (dict(d_model=64.5), "d_model: expected an integer"),
    (dict(batch_size=True), "batch_size: expected an integer"),
])
def test_runspec_validation_names_the_field(over, message):
    with pytest.raises(ValueError, match=message):
        RunSpec(**spec_args(**over))


# -- make_spec ---------------------------------------------------------------------------------

def test_make_spec_computes_ctx_steps_and_seed():
    spec = make_spec("addition", 16, 1e12, 64, 4, 4, 1e-3, 64, seed=5)
    assert (spec.ctx, spec.steps, spec.seed) == (52.0, 239, 5)
    assert spec.model_seed == model_seed_for(5, "addition", 16, 1e12, spec.run_id)
    again = make_spec("addition", 16, 1e12, 64, 4, 4, 1e-3, 64, seed=5, ctx=52.0, weight_decay=0)
    assert again.model_seed == spec.model_seed and again.weight_decay == 0.0


def test_make_spec_step_bounds_and_capacity():
    with pytest.raises(ValueError, match="845949 optimizer steps, more than max_steps_cap"):
        make_spec("addition", 16, 1e13, 8, 4, 4, 1e-3, 8, ctx=52.0)
    assert make_spec("addition", 16, 1e13, 8, 4, 4, 1e-3, 8, ctx=52.0,
                     max_steps_cap=10**6).steps == 845_949
    with pytest.raises(ValueError, match="1 optimizer steps, fewer than min_steps 2"):
        make_spec("addition", 16, 1e9, 512, 16, 4, 1e-3, 64, ctx=52.0, min_steps=2)
    # addition-4: 136 unordered pairs; 1e7 FLOPs at d 8, L 2 buys 8 steps of 8 = 64 examples
    common = dict(ctx=16.0, n_val=8, n_test=8, n_probe_train=32, n_probe_test=8)
    assert make_spec("addition", 4, 1e7, 8, 2, 4, 1e-2, 8, space_size=136, **common).steps == 8
    with pytest.raises(ValueError, match="consumes 64 training examples but addition size 4 "
                                         "has only 100 instances, 56 of them held out"):
        make_spec("addition", 4, 1e7, 8, 2, 4, 1e-2, 8, space_size=100, **common)
    with pytest.raises(ValueError, match="unknown options.*dropout"):
        make_spec("addition", 16, 1e12, 64, 4, 4, 1e-3, 64, ctx=52.0, dropout=0.1)


# -- context length ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, size, expected", [
    ("addition", 16, 52.0), ("multiplication", 16, 67.0), ("majority_of_majority", 32, 67.0),
    ("addition", 4, 16.0), ("multiplication", 3, 15.0), ("majority_of_majority", 2, 7.0)])
def test_context_length_of_binary_tasks_is_exact(name, size, expected):
    assert context_length(get_task(name, size)) == expected


def test_context_length_agrees_with_the_loss_mask_route():
    """Mean of (first '=' position + number of loss-mask ones), the reference's third estimate
    (pipeline.md §2.2), on the same sample."""
    task = get_task("maximum_subarray", 8)
    ex = Stream(task, seed=compute.CTX_SEED, layout=Layout(0, 0, 0, 0)).examples(
        "train", count=compute.CTX_SAMPLE, features=False)
    via_mask = np.mean(np.argmax(ex.loss_mask, axis=1) + ex.loss_mask.sum(axis=1))
    assert context_length(task) == pytest.approx(via_mask, abs=1e-12)
    assert 9 < context_length(task) < task.seq_len  # a ragged task: not the padded length


def test_context_length_is_cached_per_graph_file(tmp_path, monkeypatch):
    full, half = tmp_path / "full", tmp_path / "half"
    make_graph_file(6, full / "graph6c.g6")
    make_graph_file(6, half / "graph6c.g6", keep=0.5, seed=1)
    a = context_length(get_task("graph_path", 6, graphs_dir=full))
    b = context_length(get_task("graph_path", 6, graphs_dir=half))
    assert a != b  # different files, different samples (112 vs ~56 graphs)
    monkeypatch.setattr(compute, "Stream", None)  # a cache miss would now fail
    assert context_length(get_task("graph_path", 6, graphs_dir=full)) == a


# -- config ------------------------------------------------------------------------------------

def minimal(**over):
    raw = {"tasks": {"addition": {"size": 16, "ctx": 52}}}
    raw.update(over)
    return raw


def test_defaults_and_idempotence():
    cfg = validate_config(minimal())
    assert cfg["grid"]["d_model"] == [8, 16, 32, 64, 128, 256, 512]
    assert cfg["training"]["max_steps_cap"] == 100_000 and cfg["data"]["n_val"] == 1000
    assert cfg["tasks"]["addition"]["budgets"] == [9, 10, 11, 12, 13, 14, 15]
    assert validate_config(copy.deepcopy(cfg)) == cfg
    paper = load_config(CONFIG / "paper.yaml")
    assert validate_config(copy.deepcopy(paper)) == paper


def test_yaml_numbers_written_as_text_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("grid: {lr: [1e-3, 1e-2], budgets: [9]}\ntraining: {max_steps_cap: 1e5, "
                    "precision: 32}\ntasks: {addition: {size: 8}}\n")
    cfg = load_config(path)
    assert cfg["grid"]["lr"] == [1e-3, 1e-2] and cfg["training"]["max_steps_cap"] == 100_000
    assert cfg["training"]["precision"] == "32"


@pytest.mark.parametrize("raw, message", [
    (minimal(tasks={"additon": {"size": 16}}), "tasks.additon: unknown task"),
    (minimal(grid={"lr": [1e-3, 0]}), r"grid.lr: 0.0 is not allowed; expected a learning rate"),
    (minimal(tasks={"addition": {"size": 16, "lr": [-1]}}), "tasks.addition.lr: -1.0"),
    (minimal(grid={"d_model": [8, 30]}), "grid.d_model: d_model 30 is not divisible by n_heads"),
    (minimal(tasks={"addition": {"size": 16, "n_heads": 3}}), "tasks.addition.d_model: d_model 8"
                                                              " is not divisible by n_heads 3"),
    (minimal(grid={"budgets": [9, 21]}), "grid.budgets: budget exponent 21 out of range; "
                                         "allowed 5..20"),
    (minimal(tasks={"addition": {"size": 16, "budgets": [4]}}), "tasks.addition.budgets: budget "
                                                                "exponent 4"),
    (minimal(grid={"budgets": [9, 9]}), "grid.budgets: repeated"),
    (minimal(grid={"lr": []}), "grid.lr: the list is empty"),
    (minimal(grid={"heads": 4}), "grid: unknown key 'heads'"),
    (minimal(model={}), "config: unknown key 'model'"),
    (minimal(training={"lr": 1}), "training: unknown key 'lr'"),
    (minimal(training={"precision": "fp16"}), "training.precision: 'fp16'"),
    (minimal(training={"min_steps": 5, "max_steps_cap": 4}), "training.max_steps_cap: 4 is below"),
    (minimal(data={"n_val": -1}), "data.n_val: -1"),
    (minimal(seed=-3), "seed: -3"),
    (minimal(tasks={}), "tasks: the config lists no tasks"),
    (minimal(tasks={"addition": {"budgets": [9]}}), "tasks.addition.size: missing"),
    (minimal(tasks={"addition": {"size": 99}}), "tasks.addition.size: .*out of range"),
    (minimal(tasks={"addition": {"size": 16, "ctx": 60}}), "tasks.addition.ctx: 60.0 exceeds"),
    (minimal(tasks={"addition": {"size": 16, "dropout": 0}}), "tasks.addition: unknown key"),
    (minimal(tasks={"graph_path": {"size": 9}}), "tasks.graph_path.size: graph tasks on 9 nodes "
                                                 "need a keep fraction in graphs.keep"),
    (minimal(graphs={"keep": {11: 1.5}}), r"graphs.keep.11: keep fraction 1.5 not in \(0, 1\]"),
    (minimal(probes={"tasks": {"multiplication": {"target_budget": 12}}}),
     r"probes.tasks.multiplication: not one of the configured tasks \['addition'\]"),
    (minimal(probes={"tasks": {"addition": {}}}), "probes.tasks.addition.target_budget: missing"),
    (minimal(probes={"tasks": {"addition": {"target_budget": 19}}}),
     "probes.tasks.addition.target_budget: 1e19 is not among the task's budgets"),
    (minimal(probes={"tasks": {"addition": {"target_budget": 12, "max_budget": 19}}}),
     "probes.tasks.addition.max_budget: 1e19"),
    (minimal(ablations={"features": {"addition": ["carry"]}}),
     "ablations.features.addition: ablations need the task's probes"),
    (minimal(probes={"tasks": {"addition": {"target_budget": 12}}},
             ablations={"features": {"addition": ["carry", "cary"]}}),
     "ablations.features.addition: addition has no feature 'cary'"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        validate_config(raw)


def test_load_config_prefixes_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks: {addition: {size: 16}}\ngrid: {lr: [0.1, -0.1]}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: grid.lr: -0.1"):
        load_config(path)


def test_budget_without_any_run_is_an_error():
    with pytest.raises(ValueError, match="tasks.addition: budget 1e20 leaves no"):
        plan(minimal(grid={"budgets": [20], "d_model": [8]}))


def test_measured_ctx_checks_the_instance_space():
    raw = {"data": {"n_val": 8, "n_test": 8, "n_probe_train": 32, "n_probe_test": 8},
           "grid": {"d_model": [8], "n_layers": [2], "lr": [1e-2], "batch_size": [8],
                    "budgets": [7, 8]}, "tasks": {"addition": {"size": 4}}}
    with pytest.raises(ValueError, match="consumes .* training examples but addition size 4"):
        plan(raw)
    raw["data"]["n_probe_train"] = 200
    with pytest.raises(ValueError, match="held-out and probe sets .* do not fit addition size 4"):
        plan(raw)


# -- the shipped configs -----------------------------------------------------------------------

def test_smoke_config_plans_every_task_within_its_space(graphs6):
    cfg = load_config(CONFIG / "smoke.yaml")
    cfg["graphs"]["dir"] = str(graphs6)
    runs = plan(cfg)
    assert {s.task for s in runs} == set(cfg["tasks"]) >= set(PAPER_COUNTS)  # + extra tasks
    for s in runs:  # also checked inside plan; here against the data layer itself
        task = get_task(s.task, s.size, graphs_dir=graphs6)
        layout = Layout(s.n_val, s.n_test, s.n_probe_train, s.n_probe_test)
        assert s.train_examples <= Stream(task, s.seed, layout).n_available("train")
    assert max(s.steps for s in runs) > 1  # the schedule gets exercised somewhere


def test_default_config_is_valid_and_covers_all_tasks():
    cfg = load_config(CONFIG / "config.yaml")
    assert set(cfg["tasks"]) == set(PAPER_COUNTS)
    # addition reaches the paper's threshold (1e12) with batch 8 and three training seeds
    addition = cfg["tasks"]["addition"]
    assert addition["budgets"][-1] >= 12 and 8 in addition["batch_size"]
    assert compute.config_seeds(cfg, "addition") == [0, 1, 2]
    assert all(t["ctx"] is None for t in cfg["tasks"].values())  # measured, not pinned
    non_graph = {k: v for k, v in cfg["tasks"].items() if not k.startswith("graph_")}
    runs = plan({**cfg, "tasks": non_graph})
    assert all(1 <= s.steps <= 100_000 for s in runs) and len(runs) > 0


def test_ctx_of_a_two_answer_task_runs_to_its_last_scored_token():
    """repeated_addition scores both segments: ctx is the whole sequence up to the last EOS, not
    the first (for one-answer tasks the two are the same)."""
    for name, size in (("repeated_addition", 4), ("addition", 4)):
        task = get_task(name, size)
        ex = Stream(task, seed=42, layout=Layout(0, 0, 0, 0)).examples(
            "train", count=min(4096, task.space_size), features=False)
        want = np.mean([max(i for i, m in enumerate(row) if m) + 1 for row in ex.loss_mask])
        assert context_length(task) == pytest.approx(want)
    first_eos = np.argmax(ex.ids == task.eos_id, axis=1) + 1  # addition: the first EOS
    assert context_length(get_task("addition", 4)) == pytest.approx(first_eos.mean())


def test_a_task_may_list_its_own_seeds():
    """tasks.<name>.seed overrides the config's seed for that task only: its runs come once per
    seed with the seed in run_id; the other tasks keep the config's seed and plain run_ids."""
    cfg = {"seed": 5, "grid": {"d_model": [32], "n_layers": [2], "lr": [1e-3],
                               "batch_size": [64], "budgets": [10]},
           "tasks": {"addition": {"size": 8, "seed": [0, 2]}, "multiplication": {"size": 8}}}
    runs = plan(cfg)
    addition = [s for s in runs if s.task == "addition"]
    assert [(s.seed, s.run_id) for s in addition] == [(0, "d32_L2_H4_lr0.001_B64_s0"),
                                                      (2, "d32_L2_H4_lr0.001_B64_s2")]
    assert [(s.seed, s.run_id) for s in runs if s.task == "multiplication"] == [
        (5, "d32_L2_H4_lr0.001_B64")]
    assert compute.config_seeds(validate_config(cfg), "addition") == [0, 2]
    assert compute.config_seeds(validate_config(cfg), "multiplication") == [5]
    with pytest.raises(ValueError, match="distinct seeds"):
        validate_config({**cfg, "tasks": {"addition": {"size": 8, "seed": [1, 1]}}})
