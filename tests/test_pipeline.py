"""The real Snakemake DAG: the smoke config end to end, the paper grid's dry run, rerun triggers,
config errors. Each test works in a temporary copy of the workflow."""
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")


def copy_workflow(dest: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def snakemake(workdir: Path, *args, check=True, timeout=900):
    proc = subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-5000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: rule -> number of jobs."""
    counts, in_table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


def set_config(workdir: Path, name: str, edit) -> Path:
    path = workdir / "config" / name
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke config run once, end to end, through the real DAG."""
    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    proc = snakemake(work, "--cores", "2", "--configfile", "config/smoke.yaml")
    return work, proc


def test_smoke_pipeline_writes_every_stage(smoke):
    work, _ = smoke
    cfg = yaml.safe_load((work / "config/smoke.yaml").read_text())
    tasks = list(cfg["tasks"])
    for task in tasks:
        rows = list(csv.DictReader(open(work / f"results/scaling/{task}.csv")))
        assert rows and all(r["task"] == task for r in rows)
        frontier = list(csv.DictReader(open(work / f"results/scaling/{task}_frontier.csv")))
        budgets = sorted({float(r["budget"]) for r in rows})
        assert sorted(float(r["budget"]) for r in frontier) == budgets
        for r in frontier:  # the frontier: the lowest mean over seeds of a configuration
            configs = {}
            for x in rows:
                if float(x["budget"]) == float(r["budget"]):
                    key = (x["d_model"], x["n_layers"], x["lr"], x["batch_size"])
                    configs.setdefault(key, []).append(float(x["val_loss"]))
            best = min(sum(v) / len(v) for v in configs.values())
            assert float(r["val_loss"]) == pytest.approx(best, rel=1e-12)
            assert int(r["n_seeds"]) == len(seeds_of(cfg, task))
        assert (work / f"results/plots/scaling_law/{task}.png").stat().st_size > 0
    transitions = list(csv.DictReader(open(work / "results/scaling/transitions.csv")))
    assert sorted(r["task"] for r in transitions) == sorted(tasks)
    pdf = (work / "results/plots/scaling_law.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # every rule left a log and a benchmark
    assert list((work / "logs/train").rglob("*.log")) and list((work / "benchmarks").rglob("*.tsv"))


def seeds_of(cfg, task):
    """A task's training seeds in a raw config (its own `seed`, else the config's)."""
    seed = cfg["tasks"][task].get("seed", cfg.get("seed", 0))
    return seed if isinstance(seed, list) else [seed]


def test_smoke_pipeline_probes_and_ablations(smoke):
    import pandas as pd

    work, _ = smoke
    cfg = yaml.safe_load((work / "config/smoke.yaml").read_text())
    assert len(seeds_of(cfg, "addition")) >= 2  # the smoke exercises seeds
    verdicts = pd.read_csv(work / "results/probes/quiet_loud.csv")
    per_seed = pd.read_csv(work / "results/probes/quiet_loud_seeds.csv")
    summary = pd.read_csv(work / "results/ablations/summary.csv")
    for task in cfg["probes"]["tasks"]:
        seeds = seeds_of(cfg, task)
        mine = verdicts[verdicts.task == task]
        assert mine.verdict.isin(["quiet", "loud", "neither", "no transition", "mixed"]).all()
        assert (mine.n_seeds == len(seeds)).all()
        assert sorted(per_seed[per_seed.task == task].train_seed.unique()) == seeds
        assert sorted(summary[summary.task == task].train_seed.unique()) == seeds
        for seed in seeds:
            check_probes_of_one_seed(work, cfg, task, seed, per_seed, summary)
    for pdf in ("quiet_loud_features", "within_run_probes", "ablations"):
        assert (work / f"results/plots/{pdf}.pdf").read_bytes().startswith(b"%PDF")


def check_probes_of_one_seed(work, cfg, task, seed, per_seed, summary):
    import pandas as pd

    from qlf.tasks import get_task

    features = [f.name for f in get_task(task, cfg["tasks"][task]["size"],
                                        graphs_dir=work / "resources/graphs").features]
    root = work / f"results/probes/{task}/seed{seed}"
    entry = cfg["probes"]["tasks"][task]
    target = entry["target_budget"]
    across = pd.read_csv(root / "across_compute.csv")
    budgets = sorted(float(b) for b in {*pd.read_csv(
        work / f"results/scaling/{task}_frontier.csv").budget} if b <= 10.0 ** target)
    assert sorted(across.budget.unique()) == budgets
    assert set(across.feature) == set(features)
    within = pd.read_csv(root / "within_run.csv")
    assert within.step.min() == 0 and within.step.nunique() >= 3
    mine = per_seed[(per_seed.task == task) & (per_seed.train_seed == seed)]
    assert set(mine.feature) == set(features)
    assert mine.verdict.isin(["quiet", "loud", "neither", "no transition"]).all()
    ablated = summary[(summary.task == task) & (summary.train_seed == seed)]
    assert set(ablated.feature) == set(features)
    # each seed's model is its own run (the seed in its run_id when the task lists seeds)
    if len(seeds_of(cfg, task)) > 1:
        assert ablated.run_id.str.endswith(f"_s{seed}").all()
    # the target budget's model is the within-run retraining's last step, trained and
    # probed once: its across-compute rows are that step's probes
    last = within.step.max()
    info = json.loads((root / f"within/step{last}/info.json").read_text())
    assert Path(info["weights"]).parent.name == "steps" and info["budget"] == 10.0 ** target
    cols = ["feature", "layer", "row", "train_loss", "test_loss"]
    pd.testing.assert_frame_equal(
        across[across.budget == 10.0 ** target][cols].reset_index(drop=True),
        within[within.step == last][cols].reset_index(drop=True))
    assert not list((work / "results/models" / task).rglob(f"C{target}/*/weights_final.pt"))
    assert not (root / f"budgets/C{target}").exists()


def test_smoke_pipeline_early_warning(smoke):
    """One row per monitored task's frontier run and feature; the records carry the curves."""
    import pandas as pd

    from qlf.tasks import get_task

    work, _ = smoke
    cfg = yaml.safe_load((work / "config/smoke.yaml").read_text())
    table = pd.read_csv(work / "results/monitor/early_warning.csv")
    assert set(table.task) == set(cfg["training"]["monitor"])
    for task in cfg["training"]["monitor"]:
        frontier = pd.read_csv(work / f"results/scaling/{task}_frontier.csv")
        features = [f.name for f in get_task(task, cfg["tasks"][task]["size"]).features]
        mine = table[table.task == task]
        assert sorted(map(tuple, mine[["run_id", "feature"]].values)) == sorted(
            (r, f) for r in frontier.run_id for f in features)
        for path in frontier.path:
            monitor = json.loads((work / path).read_text())["summary"]["monitor"]
            assert set(monitor) == set(features)
            steps = [s for s, _ in next(iter(monitor[features[0]].values()))]
            assert steps[0] == 0 and len(steps) >= 2
    assert table.verdict.isin(["probe first", "together", "val first", "probe only",
                               "val only", "neither"]).all()
    assert (work / "results/plots/early_warning.pdf").read_bytes().startswith(b"%PDF")


def test_smoke_report_holds_every_figure_and_table(smoke, tmp_path):
    import base64

    work, _ = smoke
    report = tmp_path / "report.html"
    snakemake(work, "--report", str(report), "--configfile", "config/smoke.yaml")
    html = report.read_text()
    figures = sorted((work / "results/plots").rglob("*.p[dn][fg]"))  # every figure made
    tables = [work / "results/scaling/transitions.csv", work / "results/probes/quiet_loud.csv",
              work / "results/ablations/summary.csv",
              *sorted((work / "results/scaling").glob("*_frontier.csv"))]
    tasks = yaml.safe_load((work / "config/smoke.yaml").read_text())["tasks"]
    named = {f"{name}.pdf" for name in ("scaling_law", "quiet_loud_grid", "quiet_loud_features",
                                        "within_run_probes", "ablations")}
    assert named | {f"{task}.png" for task in tasks} <= {path.name for path in figures}
    for path in figures + tables:  # embedded byte for byte (a data URI), not linked
        assert base64.b64encode(path.read_bytes()).decode() in html, path
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', html)  # self-contained
    for caption in sorted((work / "workflow/report").glob("*.rst")):
        text = caption.read_text()
        assert "**What to look for:**" in text, caption.name  # every caption guides the reader
        assert " ".join(text.split()[:3]) in html, caption.name  # and is in the report


def test_smoke_rerun_is_a_no_op(smoke):
    work, _ = smoke
    out = snakemake(work, "-n", "--configfile", "config/smoke.yaml").stdout
    assert "Nothing to be done" in out


def test_adding_a_learning_rate_reruns_only_that_task_and_trains_only_the_new_runs(smoke,
                                                                                   tmp_path):
    work, _ = smoke
    shutil.copytree(work, tmp_path / "w", symlinks=True)
    w = tmp_path / "w"
    runs = w / "results/runs/addition"
    before = {p: p.read_text() for p in runs.rglob("*.json")}
    # 2 learning rates x 2 seeds per sweep
    assert before and all(json.loads(t)["summary"]["sweep"]["k"] == 4 for t in before.values())

    def add_lr(cfg):
        cfg["tasks"]["addition"]["lr"] = [1.0e-2, 3.0e-3, 1.0e-3]
    set_config(w, "smoke.yaml", add_lr)
    out = snakemake(w, "-n", "--configfile", "config/smoke.yaml").stdout
    counts = job_counts(out)
    assert counts.get("train_addition") == 4  # 2 budgets x 2 widths: every sweep grows
    assert not any(k.startswith("train_") and k != "train_addition" for k in counts)
    assert counts.get("collect_runs") == 1 and counts.get("frontier") == 1
    assert counts.get("transitions") == 1 and counts.get("plot_scaling_law") == 1
    trained = set(re.findall(r"output: (results/runs/\S+)", out))
    assert trained and all(p.startswith("results/runs/addition/") for p in trained)
    # Run the grown sweeps: the kept members' records come back unchanged (timings included),
    # and only the new learning rate was trained, alone.
    snakemake(w, "results/scaling/addition.csv", "--cores", "2", "--configfile",
              "config/smoke.yaml")
    assert {p: p.read_text() for p in before} == before
    new = [json.loads(p.read_text()) for p in runs.rglob("*lr0.001_*.json")]
    assert len(new) == 8 and all(r["summary"]["sweep"]["k"] == 2 for r in new)  # its 2 seeds


def test_changing_a_plot_option_reruns_only_the_plot(smoke, tmp_path):
    work, _ = smoke
    shutil.copytree(work, tmp_path / "w", symlinks=True)
    w = tmp_path / "w"
    set_config(w, "smoke.yaml", lambda cfg: cfg.setdefault("plots", {}).update(png_dpi=72))
    counts = job_counts(snakemake(w, "-n", "--configfile", "config/smoke.yaml").stdout)
    assert counts == {"plot_scaling_law": 1, "all": 1}


def test_forcing_one_record_reruns_its_sweep(smoke):
    work, _ = smoke
    record = next((work / "results/runs/addition").rglob("*.json")).relative_to(work)
    # the target goes before --configfile, which would take it as a second config file
    out = snakemake(work, "-n", str(record), "--force", "--configfile",
                    "config/smoke.yaml").stdout
    assert job_counts(out) == {"train_addition": 1}
    outputs = re.findall(r"output: (results/runs/[^\n]+)", out)[0].split(", ")
    assert len(outputs) == 4 and all(p.endswith(".json") for p in outputs)  # the whole sweep


def test_paper_grid_dry_run_plans_the_reference_run_counts(tmp_path):
    work = copy_workflow(tmp_path)
    out = snakemake(work, "-n", "--configfile", "config/paper.yaml", "--quiet", "rules",
                    timeout=600).stdout
    counts = job_counts(out)
    # 6,660 runs in 1,665 sweeps: a sweep holds the four learning rates of one cell
    assert sum(n for rule, n in counts.items() if rule.startswith("train_")) == 1665
    assert counts["collect_runs"] == 10 and counts["plot_scaling_law"] == 1


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["tasks"].update(no_such_task={"size": 4}), "unknown task 'no_such_task'"),
    (lambda c: c["grid"].update(lr=[-1.0e-3]), "lr"),
    (lambda c: c["grid"].update(d_model=[10]), "d_model"),
    (lambda c: c["grid"].update(budgets=[3]), "budgets"),
    (lambda c: c["probes"]["tasks"]["addition"].update(target_budget=19), "target_budget"),
])
def test_bad_config_stops_before_any_job(tmp_path, edit, key):
    work = copy_workflow(tmp_path)
    set_config(work, "smoke.yaml", edit)
    proc = snakemake(work, "--cores", "1", "--configfile", "config/smoke.yaml", check=False)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (work / "results").exists() and not (work / "resources").exists()


def test_runtime_requests_come_from_a_throughput_table(tmp_path):
    from qlf.sweep import plan_sweeps
    from qlf.throughput import COLUMNS, KEY, job_seconds, shape_key

    work = copy_workflow(tmp_path)

    def addition_only(cfg):
        cfg["tasks"] = {"addition": cfg["tasks"]["addition"]}
        cfg["probes"]["tasks"] = {"addition": cfg["probes"]["tasks"]["addition"]}
        cfg["resources"] = {"throughput": "h200.csv"}
    config = set_config(work, "smoke.yaml", addition_only)
    sweeps = plan_sweeps(yaml.safe_load(config.read_text()))
    shapes = list({shape_key(s): s for s in sweeps})
    rows = [dict(zip(KEY, key), step_ms=50.0, point_ms=100.0, fixed_s=600.0 + 300 * i,
                 start_s=1.0, device="cuda:NVIDIA H200", torch="2.13.0", threads=1)
            for i, key in enumerate(shapes)]
    table = {key: row for key, row in zip(shapes, rows)}
    with open(work / "h200.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        writer.writerows(rows[1:])  # one shape missing: an error naming it
    proc = snakemake(work, "-n", "results/scaling/addition.csv", "--configfile",
                     "config/smoke.yaml", check=False)
    assert proc.returncode != 0 and "lacks the shape" in proc.stdout + proc.stderr
    assert str(shapes[0]) in proc.stdout + proc.stderr
    with open(work / "h200.csv", "a", newline="") as fh:
        csv.DictWriter(fh, COLUMNS).writerow(rows[0])
    out = snakemake(work, "-n", "results/scaling/addition.csv", "--configfile",
                    "config/smoke.yaml").stdout
    requested = sorted(int(m) for m in re.findall(r"rule train_addition:.*?runtime=(\d+)", out,
                                                  re.DOTALL))
    want = sorted(max(5, -int(-2 * job_seconds(table[shape_key(s)], s.first.steps,
                                            s.first.val_points) // 60)) for s in sweeps)
    assert requested == want and len(set(want)) > 1


def test_training_jobs_hold_a_gpu_slot_and_other_jobs_do_not(tmp_path):
    work = copy_workflow(tmp_path)
    set_config(work, "smoke.yaml", lambda cfg: cfg.update(
        tasks={"addition": cfg["tasks"]["addition"]},
        probes={**cfg["probes"], "tasks": {"addition": cfg["probes"]["tasks"]["addition"]}}))
    out = snakemake(work, "-n", "results/scaling/addition_frontier.csv", "--resources",
                    "gpu_slots=1", "--configfile", "config/smoke.yaml").stdout
    blocks = re.split(r"\n(?=(?:local)?rule )", out)
    train = [b for b in blocks if b.startswith("rule train_addition:")]
    collect = [b for b in blocks if re.match(r"(local)?rule collect_runs:", b)]
    assert len(train) == 4 and len(collect) == 1
    assert all(re.search(r"resources: .*\bgpu_slots=1\b", b) for b in train)
    assert "resources:" in collect[0] and "gpu_slots" not in collect[0]
