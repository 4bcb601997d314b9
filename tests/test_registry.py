"""The task registry (entry-point group `qlf.tasks`) and a task from another package: the example
package tests/plugin_task is installed into a fresh virtualenv and runs `qlf tasks`, `qlf show`
and the whole Snakemake pipeline (plan, train, scaling, probes, ablations, plots) with no edit
to qlf."""
import json
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pandas as pd
import pytest
import yaml

import qlf.tasks
from qlf.tasks import TASKS, RegistryError, get_task, register, unregister
from qlf.tasks.binary import Addition

ROOT = Path(__file__).resolve().parents[1]
PAPER_TASKS = {"addition", "multiplication", "majority_of_majority", "maximum_subarray",
               "activity_selection", "graph_breadth_first_search", "graph_depth_first_search",
               "graph_path", "graph_topological_sort", "graph_min_spanning_tree_kruskal"}
EXTRA_TASKS = {"parity", "majority", "inner_product_mod2_parity", "sorting", "binary_sorting",
               "longest_common_subsequence", "repeated_addition"}


def test_qlf_registers_its_tasks_through_its_entry_points():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = table["project"]["entry-points"]["qlf.tasks"]
    assert PAPER_TASKS | EXTRA_TASKS <= set(declared)
    for name, target in declared.items():  # the registry serves exactly these classes
        module, attr = target.split(":")
        assert TASKS[name] is getattr(__import__(module, fromlist=[attr]), attr)
        assert TASKS.package(name) == "qlf"
    assert list(TASKS) == sorted(TASKS)


def fresh_registry(monkeypatch, *eps):
    """A registry that sees exactly the entry points `eps` (name, value) of group qlf.tasks."""
    points = [EntryPoint(name, value, "qlf.tasks") for name, value in eps]
    monkeypatch.setattr(qlf.tasks, "entry_points", lambda group: points)
    return qlf.tasks._Registry()


@pytest.mark.parametrize("eps, message", [
    ([("addition", "no_such_module:Addition")],
     r"cannot load task 'addition' \(entry point addition = no_such_module:Addition.*"
     r"ModuleNotFoundError"),
    ([("addition", "qlf.tasks.binary:unpack_lsb")], "not a qlf.tasks.Task subclass"),
    ([("sum", "qlf.tasks.binary:Addition")], "name attribute is 'addition'"),
    ([("addition", "qlf.tasks.binary:Addition"), ("addition", "qlf.tasks.bits_extra:Parity")],
     "registered twice"),
    ([], "no tasks registered"),
])
def test_a_broken_entry_point_is_a_loud_error_naming_it(monkeypatch, eps, message):
    registry = fresh_registry(monkeypatch, *eps)
    with pytest.raises(RegistryError, match=message):
        list(registry)


def test_one_package_seen_twice_is_one_task(monkeypatch):
    registry = fresh_registry(monkeypatch, ("addition", "qlf.tasks.binary:Addition"),
                              ("addition", "qlf.tasks.binary:Addition"))
    assert dict(registry) == {"addition": Addition}


def test_in_process_registration_and_unknown_names():
    class Doubled(Addition):
        name = "doubled_addition"

    assert "doubled_addition" not in TASKS
    with pytest.raises(ValueError, match="unknown task 'doubled_addition'; known tasks: "):
        get_task("doubled_addition", 4)
    register(Doubled)
    try:
        assert get_task("doubled_addition", 4).seq_len == 16
        assert TASKS.package("doubled_addition") == "in-process"
        with pytest.raises(RegistryError, match="already registered"):
            register(type("Other", (Addition,), {"name": "addition"}))
        with pytest.raises(RegistryError, match="not a qlf.tasks.Task subclass"):
            register(dict)
    finally:
        unregister("doubled_addition")
    assert "doubled_addition" not in TASKS


def test_the_schema_no_longer_lists_task_names():
    schema = (ROOT / "workflow/schemas/config.schema.yaml").read_text()
    assert "graph_min_spanning_tree_kruskal" not in schema and "- addition" not in schema


def test_config_validation_reads_the_registry():
    from qlf.compute import validate_config
    cfg = {"tasks": {"no_such_task": {"size": 4}}}
    with pytest.raises(ValueError, match="tasks.no_such_task: unknown task 'no_such_task'; "
                                         "known tasks: .*parity"):
        validate_config(cfg)
    assert validate_config({"tasks": {"parity": {"size": 4}}})["tasks"]["parity"]["size"] == 4


# -- a task from another package -----------------------------------------------------------------

SNAKEMAKE_OK = shutil.which("snakemake") is not None


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory):
    """The python of a fresh virtualenv (on top of this environment's packages) with
    tests/plugin_task installed from a copy, as a user would install their task package."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(ROOT / "tests/plugin_task", tmp / "src",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    # without its own pip, the venv runs this environment's (a venv's bundled pip and
    # setuptools can be older than the build needs); the build itself is pip's usual isolated one
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    tmp / "venv"], check=True)
    python = tmp / "venv/bin/python"
    proc = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", tmp / "src"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"pip install of the example task failed:\n{proc.stderr}"
    return python


def run(python, *args, cwd=None, timeout=120):
    proc = subprocess.run([python, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc.stdout


def test_plugin_task_is_listed_and_shown(plugin_python):
    assert "prefix_xor" not in TASKS  # this process never installed it
    line = next(l for l in run(plugin_python, "-m", "qlf.cli", "tasks").splitlines()
                if l.startswith("prefix_xor "))
    assert line.split()[1:7] == ["8", "bits", "4", "18", "qlf-example-task", "running_xor,"]
    out = run(plugin_python, "-m", "qlf.cli", "show", "prefix_xor", "--size", "5", "--n", "6",
              "--json", "--layout", "0,0,0,0")
    records = [json.loads(line) for line in out.splitlines()]
    assert len({r["key"] for r in records}) == 6
    for rec in records:
        x = [(rec["key"] >> r) & 1 for r in range(5)]
        y = [sum(x[:r + 1]) % 2 for r in range(5)]
        assert rec["ids"] == x + [2] + y + [3]
        assert rec["loss_mask"] == [0] * 5 + [1] * 7
        assert rec["features"]["running_xor"] == {"positions": list(range(5)), "labels": y,
                                                  "kind": "binary"}
        assert rec["features"]["input_bit"]["positions"] == list(range(5, 10))


PLUGIN_CONFIG = {
    "seed": 0,
    "data": {"n_val": 8, "n_test": 8, "n_probe_train": 32, "n_probe_test": 8},
    "training": {"val_points": 4},
    "grid": {"d_model": [8], "n_layers": [2], "n_heads": 4, "lr": [1.0e-2], "batch_size": [8],
             "budgets": [6]},
    "tasks": {"prefix_xor": {"size": 8}},
    "probes": {"tasks": {"prefix_xor": {"target_budget": 6}}, "random_seeds": [0, 1],
               "n_boot": 200},
    "ablations": {"n_random": 4, "n_boot": 200},
}


@pytest.mark.skipif(not SNAKEMAKE_OK, reason="snakemake is not installed")
def test_plugin_task_runs_every_stage_of_the_pipeline(plugin_python, tmp_path):
    for name in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "config/plugin.yaml").write_text(yaml.safe_dump(PLUGIN_CONFIG))
    # jobs run with the snakemake process's python: the virtualenv's, which sees the plugin
    run(plugin_python, "-m", "snakemake", "--cores", "2", "--configfile", "config/plugin.yaml",
        cwd=tmp_path, timeout=600)
    res = tmp_path / "results"
    runs = pd.read_csv(res / "scaling/prefix_xor.csv")
    assert set(runs.task) == {"prefix_xor"} and set(runs.budget) == {1e6}
    assert len(pd.read_csv(res / "scaling/prefix_xor_frontier.csv")) == 1
    assert (res / "plots/scaling_law.pdf").read_bytes().startswith(b"%PDF")
    verdicts = pd.read_csv(res / "probes/quiet_loud.csv")
    assert set(verdicts.feature) == {"running_xor", "input_bit"}
    summary = pd.read_csv(res / "ablations/summary.csv")
    assert set(summary.task) == {"prefix_xor"}
    assert set(summary.feature) == {"running_xor", "input_bit"}
    assert (res / "plots/ablations.pdf").read_bytes().startswith(b"%PDF")
