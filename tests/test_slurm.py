"""The repository's SLURM profile (slurm/config.yaml) on a real one-node SLURM cluster
(tests/slurm/start_cluster.sh): every job runs as a SLURM job, train jobs are grouped into one
allocation that fits the node, a failed job fails the run, and check_smoke.py tells a SLURM run
from a local one.

Skipped unless asked for, since it needs root and SLURM (tests/slurm/install.sh):
    QLF_SLURM=1 pytest -m slurm tests/test_slurm.py          # starts and stops a cluster
    QLF_SLURM_STATE=DIR pytest -m slurm tests/test_slurm.py  # a cluster start_cluster.sh DIR runs
"""
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLURM_DIR = ROOT / "tests" / "slurm"
SNAKEMAKE = shutil.which("snakemake")

# Tests that use the `cluster` fixture carry the mark; the record comparison needs no cluster.
slurm = pytest.mark.slurm
needs_snakemake = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")

_spec = importlib.util.spec_from_file_location("check_smoke", SLURM_DIR / "check_smoke.py")
check_smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_smoke)

N_TRAIN = 4
# A tiny workflow whose rule names meet the profile: `train` jobs fall in its train_runs group.
# Each job writes the SLURM job id it sees; `wide` asks for more threads than the node has.
SNAKEFILE = f"""
rule all:
    input: expand("out/train_{{i}}.txt", i=range({N_TRAIN})), "out/combined.txt", "out/wide.txt"

rule train:
    output: "out/train_{{i}}.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo $SLURM_JOB_ID > {{output}}"

rule combine:
    input: expand("out/train_{{i}}.txt", i=range({N_TRAIN}))
    output: "out/combined.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo $SLURM_JOB_ID > {{output}}"

rule wide:
    output: "out/wide.txt"
    threads: 64
    resources: mem_mb=100, runtime=5
    shell: "echo $SLURM_JOB_ID > {{output}}"
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
    (workdir / "config.yaml").write_text("unused: true\n")  # replaces the profile's configfile
    proc = subprocess.run([SNAKEMAKE, "--configfile", "config.yaml", *args], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)
    return proc, proc.stdout + proc.stderr


@slurm
@needs_snakemake
def test_profile_runs_every_job_in_slurm_with_train_jobs_grouped(cluster, tmp_path):
    state, env, cpus, mem_mb = cluster
    proc, log = run_workflow(tmp_path, SNAKEFILE, env, "--profile", str(ROOT / "slurm"),
                             *slurm_test_args(cpus, mem_mb))
    assert proc.returncode == 0, log[-4000:]
    written_by = check_smoke.check_slurm_run(
        tmp_path, log, (state / "log/jobcomp.txt").read_text())
    outputs = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "out").iterdir())
    assert sorted(written_by) == outputs and len(outputs) == N_TRAIN + 2
    # Inside each job SLURM_JOB_ID is the id Snakemake logged for the job that wrote the file.
    for path, job_id in written_by.items():
        assert (tmp_path / path).read_text().strip() == job_id, path
    # The profile groups train jobs (group-components 50): all of them share one allocation.
    train_ids = {written_by[f"out/train_{i}.txt"] for i in range(N_TRAIN)}
    assert len(train_ids) == 1
    assert written_by["out/combined.txt"] not in train_ids
    assert len(set(written_by.values())) == 3
    _, jobs = check_smoke.submitted_jobs(log)
    assert jobs[train_ids.pop()].parent.name.startswith("group_train_runs")
    # Every allocation fits the node: --cores caps a group's layers and a rule's threads.
    finished = check_smoke.jobcomp_entries((state / "log/jobcomp.txt").read_text())
    assert all(int(finished[j]["ProcCnt"]) <= cpus for j in jobs)
    assert int(finished[written_by["out/wide.txt"]]["ProcCnt"]) == cpus


@slurm
@needs_snakemake
def test_failed_job_fails_the_run_and_the_check(cluster, tmp_path):
    state, env, cpus, mem_mb = cluster
    proc, log = run_workflow(tmp_path, FAILING_SNAKEFILE, env, "--profile", str(ROOT / "slurm"),
                             *slurm_test_args(cpus, mem_mb))
    assert proc.returncode != 0
    _, jobs = check_smoke.submitted_jobs(log)
    assert len(jobs) == 1
    with pytest.raises(AssertionError, match="ended FAILED"):
        check_smoke.check_slurm_run(tmp_path, log, (state / "log/jobcomp.txt").read_text())


@slurm
@needs_snakemake
def test_check_rejects_a_local_run(cluster, tmp_path):
    _, env, _, _ = cluster
    proc, log = run_workflow(tmp_path, SNAKEFILE.replace("$SLURM_JOB_ID", "local"), env,
                             "--cores", "1")
    assert proc.returncode == 0, log[-4000:]
    with pytest.raises(ValueError, match="SLURM run ID"):
        check_smoke.check_slurm_run(tmp_path, log, "")


def write_record(workdir: Path, name: str, val_loss: float, **extra):
    path = workdir / "results/runs/addition/n4/C6" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {"val_loss": val_loss, "test_acc": 0.5, "steps": 3, "wall_s": 1.0, **extra}
    path.write_text(json.dumps({"spec": {"task": "addition", "d_model": 8}, "summary": summary}))
    return str(path.relative_to(workdir))


def test_compare_records_needs_equal_results_and_the_writing_job(tmp_path):
    local, ours = tmp_path / "local", tmp_path / "slurm"
    a = write_record(local, "d8", 1.25)
    b = write_record(local, "d16", 0.75)
    write_record(ours, "d8", 1.25, wall_s=9.0)          # timings may differ
    write_record(ours, "d16", 0.75, slurm_job_id="7")
    assert check_smoke.compare_records(local, ours, {a: "6", b: "7"}) == 2
    with pytest.raises(AssertionError, match="slurm_job_id"):
        check_smoke.compare_records(local, ours, {a: "6", b: "6"})
    write_record(ours, "d8", 1.25 + 1e-12)
    with pytest.raises(AssertionError, match="val_loss"):
        check_smoke.compare_records(local, ours, {a: "6", b: "7"})
    write_record(ours, "d8", 1.25)
    write_record(ours, "d32", 0.5)
    with pytest.raises(AssertionError, match="record sets differ"):
        check_smoke.compare_records(local, ours, {a: "6", b: "7"})
