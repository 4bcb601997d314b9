"""The repository's SLURM profile (slurm/config.yaml) on a real one-node SLURM cluster
(tests/slurm/start_cluster.sh): every job runs once, as a SLURM job, train jobs are batched as the
profile says and every allocation fits the node, also when a checkpoint finishes while train
jobs run (as the graphs checkpoint does in the pipeline); a failed job fails the run. And
check_smoke.py, the CI check, tells these apart.

The cluster tests (mark `slurm`) are skipped unless asked for; they need root and SLURM
(tests/slurm/install.sh) and take a few minutes:
    QLF_SLURM=1 pytest -m slurm tests/test_slurm.py          # starts and stops a cluster
    QLF_SLURM_STATE=DIR pytest -m slurm tests/test_slurm.py  # the cluster start_cluster.sh DIR runs
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SLURM_DIR = ROOT / "tests" / "slurm"
PROFILE = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
SNAKEMAKE = shutil.which("snakemake")

slurm = pytest.mark.slurm
needs_snakemake = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")

_spec = importlib.util.spec_from_file_location("check_smoke", SLURM_DIR / "check_smoke.py")
check_smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_smoke)

# Each job writes the id the executor logs for its SLURM job (ARRAYID_TASK for an array task).
JOB_ID_SH = """if [ -n "$SLURM_ARRAY_JOB_ID" ]; then echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
elif [ -n "$SLURM_JOB_ID" ]; then echo "$SLURM_JOB_ID"; else echo local; fi
"""
# A tiny workflow whose rule names meet the profile: `train_addition` jobs (one sweep each in the
# pipeline) are batched as it says;
# `wide` asks for more threads than any test node has.
N_TRAIN = 4
SNAKEFILE = """
rule all:
    input: expand("out/train_{i}.txt", i=range(4)), "out/combined.txt", "out/wide.txt"

rule train_addition:
    output: "out/train_{i}.txt"
    resources: mem_mb=100, runtime=5
    shell: "sh job_id.sh > {output}"

rule combine:
    input: expand("out/train_{i}.txt", i=range(4))
    output: "out/combined.txt"
    resources: mem_mb=100, runtime=5
    shell: "sh job_id.sh > {output}"

rule wide:
    output: "out/wide.txt"
    threads: 64
    resources: mem_mb=100, runtime=5
    shell: "sh job_id.sh > {output}"
"""
# The pipeline's shape around its graphs checkpoint: `a` runs are planned from the start,
# `g` runs only once the checkpoint is done, which happens while the `a` runs still train.
CHECKPOINT_SNAKEFILE = """
rule all:
    input: "collect_a.txt", "collect_g.txt"

checkpoint graphs:
    output: "graphs.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo graphs > {output}"

def runs(wildcards):
    if wildcards.kind == "g":
        checkpoints.graphs.get()
    return expand("out/{kind}_{i}.txt", kind=wildcards.kind, i=range(4))

rule collect:
    input: runs
    output: "collect_{kind}.txt"
    resources: mem_mb=100, runtime=5
    shell: "cat {input} > {output}"

rule train_addition:
    input: lambda wildcards: ["graphs.txt"] if wildcards.kind == "g" else []
    output: "out/{kind}_{i}.txt"
    resources: mem_mb=100, runtime=5
    shell: "sleep 8; sh job_id.sh > {output}"
"""
FAILING_SNAKEFILE = """
rule all:
    input: "out/never.txt"

rule broken:
    output: "out/never.txt"
    resources: mem_mb=100, runtime=5
    shell: "exit 3"
"""


def slurm_test_args(cpus: int, mem_mb: int) -> list[str]:
    """What a test adds to the unchanged profile (the same as tests/slurm/run_smoke.sh)."""
    return ["--cores", str(cpus), "--resources", f"mem_mb={mem_mb}",
            "--default-resources", "runtime=10", f"mem_mb={min(mem_mb // cpus, 2000)}",
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
            "--seconds-between-status-checks", "1", "--slurm-keep-successful-logs",
            "--retries", "0"]


def train_batching() -> str:
    """How the profile batches train_addition jobs: 'group', 'array' or 'none'."""
    if "train_addition" in (PROFILE.get("groups") or {}):
        return "group"
    arrays = re.split(r"[,;\s]+", str(PROFILE.get("slurm-array-jobs") or ""))
    return "array" if "train_addition" in arrays or "all" in arrays else "none"


@pytest.fixture(scope="module")
def cluster():
    """(state dir, environment with SLURM_CONF, node CPUs, node memory in MB)."""
    state = os.environ.get("QLF_SLURM_STATE")
    started = None
    if state:
        if not (Path(state) / "slurm.conf").is_file():
            pytest.fail(f"QLF_SLURM_STATE={state} holds no slurm.conf from start_cluster.sh")
    elif os.environ.get("QLF_SLURM") == "1":
        state = started = tempfile.mkdtemp(prefix="qlf-slurm-")
        subprocess.run([str(SLURM_DIR / "start_cluster.sh"), state], check=True, timeout=180)
    else:
        pytest.skip("needs a SLURM cluster: QLF_SLURM=1 (root; tests/slurm/install.sh) or "
                    "QLF_SLURM_STATE=DIR of tests/slurm/start_cluster.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env["SLURM_CONF"] = str(Path(state) / "slurm.conf")
    try:
        node = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%c %m"], env=env,
                              capture_output=True, text=True, check=True, timeout=30)
        cpus, mem_mb = map(int, node.stdout.split()[:2])
        yield Path(state), env, cpus, mem_mb
    finally:
        if started:
            subprocess.run([str(SLURM_DIR / "stop_cluster.sh"), started], timeout=120)
            shutil.rmtree(started, ignore_errors=True)


def run_workflow(workdir: Path, snakefile: str, env: dict, *args: str):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text(snakefile)
    (workdir / "job_id.sh").write_text(JOB_ID_SH)
    (workdir / "config.yaml").write_text("unused: true\n")  # replaces the profile's configfile
    proc = subprocess.run([SNAKEMAKE, "--configfile", "config.yaml", *args], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)
    return proc, proc.stdout + proc.stderr


def run_with_profile(cluster, workdir: Path, snakefile: str, cores: int | None = None):
    state, env, cpus, mem_mb = cluster
    proc, log = run_workflow(workdir, snakefile, env, "--profile", str(ROOT / "slurm"),
                             *slurm_test_args(cores or cpus, mem_mb))
    return proc, log, (state / "log" / "jobcomp.txt").read_text()


@slurm
@needs_snakemake
def test_profile_runs_every_job_once_in_slurm_within_the_node(cluster, tmp_path):
    proc, log, jobcomp = run_with_profile(cluster, tmp_path, SNAKEFILE)
    assert proc.returncode == 0, log[-4000:]
    written_by = check_smoke.check_slurm_run(tmp_path, log, jobcomp)
    outputs = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "out").iterdir())
    assert sorted(written_by) == outputs and len(outputs) == N_TRAIN + 2
    # Inside each job, SLURM's environment names the job Snakemake logged for that output.
    for path, job_id in written_by.items():
        assert (tmp_path / path).read_text().strip() == job_id, path
    train_ids = [written_by[f"out/train_{i}.txt"] for i in range(N_TRAIN)]
    _, jobs = check_smoke.submitted_jobs(log)
    batching = train_batching()
    if batching == "group":  # one allocation for all of them (group-components >= 4)
        assert len(set(train_ids)) == 1
        assert jobs[train_ids[0]].parent.name.startswith("group_train_runs")
    elif batching == "array":  # one array job, one task a run
        assert len(set(train_ids)) == N_TRAIN and len({j.split("_")[0] for j in train_ids}) == 1
    else:
        assert len(set(train_ids)) == N_TRAIN
    assert written_by["out/combined.txt"] not in train_ids
    # Every allocation fits the node: --cores caps a group's layers and a rule's threads.
    cpus = cluster[2]
    finished = check_smoke.jobcomp_entries(jobcomp)
    assert all(int(finished[j]["ProcCnt"]) <= cpus for j in jobs)
    assert int(finished[written_by["out/wide.txt"]]["ProcCnt"]) == cpus


@slurm
@needs_snakemake
def test_profile_runs_each_job_once_when_a_checkpoint_finishes_mid_run(cluster, tmp_path):
    """Snakemake 9.27 with plugin 2.8 and job groups fails here: the running group is submitted
    again (its runs train twice) or Snakemake stops with a KeyError."""
    cpus = cluster[2]
    if cpus < 2:
        pytest.skip("needs a node with 2 CPUs: the checkpoint must run beside the train jobs")
    # With a core less than the node has, a train batch leaves room for the checkpoint.
    proc, log, jobcomp = run_with_profile(cluster, tmp_path, CHECKPOINT_SNAKEFILE, cpus - 1)
    assert proc.returncode == 0, log[-4000:]
    written_by = check_smoke.check_slurm_run(tmp_path, log, jobcomp)
    runs = [f"out/{kind}_{i}.txt" for kind in "ag" for i in range(4)]
    assert set(runs) <= set(written_by)
    for path in runs:
        assert (tmp_path / path).read_text().strip() == written_by[path], path


@slurm
@needs_snakemake
def test_failed_job_fails_the_run_and_the_check(cluster, tmp_path):
    proc, log, jobcomp = run_with_profile(cluster, tmp_path, FAILING_SNAKEFILE)
    assert proc.returncode != 0
    _, jobs = check_smoke.submitted_jobs(log)
    assert len(jobs) == 1
    with pytest.raises(AssertionError, match="ended FAILED"):
        check_smoke.check_slurm_run(tmp_path, log, jobcomp)


@needs_snakemake
def test_check_rejects_a_local_run(tmp_path):
    proc, log = run_workflow(tmp_path, SNAKEFILE, dict(os.environ), "--cores", "1")
    assert proc.returncode == 0, log[-4000:]
    assert (tmp_path / "out/wide.txt").read_text().strip() == "local"
    with pytest.raises(ValueError, match="SLURM run ID"):
        check_smoke.check_slurm_run(tmp_path, log, "")


def write_record(workdir: Path, name: str, val_loss: float, job_id=None, **extra) -> str:
    path = workdir / "results/runs/addition/n4/C6" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {"val_loss": val_loss, "test_acc": 0.5, "steps": 3, "wall_s": 1.0,
               "host": {"name": "node", "slurm_job_id": job_id}, **extra}
    path.write_text(json.dumps({"spec": {"task": "addition", "d_model": 8}, "summary": summary}))
    return str(path.relative_to(workdir))


def test_compare_records_needs_equal_results_from_the_writing_job(tmp_path):
    local, ours = tmp_path / "local", tmp_path / "slurm"
    a = write_record(local, "d8", 1.25)
    b = write_record(local, "d16", 0.75)
    write_record(ours, "d8", 1.25, "6", wall_s=9.0)     # timings may differ
    write_record(ours, "d16", 0.75, "7")
    assert check_smoke.compare_records(local, ours, {a: "6", b: "7"}) == 2
    with pytest.raises(AssertionError, match="slurm_job_id is '7'"):
        check_smoke.compare_records(local, ours, {a: "6", b: "6"})
    write_record(ours, "d16", 0.75, None)                # ran outside SLURM
    with pytest.raises(AssertionError, match="slurm_job_id is None"):
        check_smoke.compare_records(local, ours, {a: "6", b: "7"})
    write_record(ours, "d16", 0.75, "7")
    write_record(ours, "d8", 1.25 + 1e-12, "6")
    with pytest.raises(AssertionError, match="val_loss"):
        check_smoke.compare_records(local, ours, {a: "6", b: "7"})
    write_record(ours, "d8", 1.25, "6")
    write_record(ours, "d32", 0.5, "8")
    with pytest.raises(AssertionError, match="record sets differ"):
        check_smoke.compare_records(local, ours, {a: "6", b: "7"})


def test_array_tasks_are_found_by_their_own_job_id():
    # Two lines as slurmctld's jobcomp/filetxt writes them (shortened): an array task, a job.
    jobcomp = ("JobId=31 UserId=root(0) Name=run JobState=COMPLETED ProcCnt=1 "
               "ArrayJobId=20 ArrayTaskId=5 DerivedExitCode=0:0 ExitCode=0:0 \n"
               "JobId=19 UserId=root(0) Name=run JobState=COMPLETED ProcCnt=2 "
               "DerivedExitCode=0:0 ExitCode=0:0 \n")
    entries = check_smoke.jobcomp_entries(jobcomp)
    assert sorted(entries) == ["19", "20_5", "31"] and entries["20_5"] is entries["31"]
    assert check_smoke.slurm_job_ids({"x.json": "20_5", "y.csv": "19"}, jobcomp) == {
        "x.json": "31", "y.csv": "19"}
