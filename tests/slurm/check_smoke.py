"""Check a Snakemake run on the test SLURM cluster: every job ran as a SLURM job that completed,
and (with --local) the training records equal those of a local run of the same config.

    python tests/slurm/check_smoke.py --workdir W --log W/snakemake.log \
        --jobcomp STATE_DIR/log/jobcomp.txt [--local LOCAL_WORKDIR]

Evidence that a job ran in SLURM, from three independent places:
- Snakemake's log: the SLURM id of each submitted job, group job or array task
  (array tasks as ARRAYID_TASK, as the executor names them);
- each SLURM job's log (kept with --slurm-keep-successful-logs): the outputs the Snakemake
  process inside the allocation wrote;
- slurmctld's job completion log: the job's final state and name (the Snakemake run id).
Every output that Snakemake's log says a (non-local) job makes must be written inside exactly
one SLURM job, and every submitted job must have COMPLETED.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

# Deterministic fields of a training record; timings and versions may differ between runs.
COMPARED = ("val_loss", "test_acc", "train_loss", "train_loss_last", "steps", "examples",
            "n_params", "val_curve")
SLURM_LOGDIR = ".snakemake/slurm_logs"  # the executor's default, relative to the workdir

RUN_ID = re.compile(r"^SLURM run ID: (\S+)$", re.M)
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", re.M)
SUBMITTED_ARRAY = re.compile(r"Submitted array job with Snakemake IDs [\d,]+ and SLURM job ID "
                             r"(\d+)\. The individual task IDs are (\d+)-(\d+)\.")
JOB_HEADER = re.compile(r"^\s*(local)?(rule|checkpoint) (\w+):\s*$")
OUTPUT = re.compile(r"^\s*output: (.+)$")


def submitted_jobs(log_text: str) -> tuple[str, dict[str, Path | None]]:
    """Snakemake's SLURM run id (every sbatch job's name) and {SLURM job id: its log}; array
    tasks are ARRAYID_TASK with log None (the executor logs a wrong path for them)."""
    run_ids = set(RUN_ID.findall(log_text))
    if len(run_ids) != 1:
        raise ValueError(f"expected one 'SLURM run ID:' line in the Snakemake log, found "
                         f"{sorted(run_ids) or 'none'}; was it run with --executor slurm?")
    found = [(job_id, Path(log)) for job_id, log in SUBMITTED.findall(log_text)]
    for array_id, first, last in SUBMITTED_ARRAY.findall(log_text):
        found += [(f"{array_id}_{task}", None) for task in range(int(first), int(last) + 1)]
    jobs = {}
    for job_id, log in found:
        if job_id in jobs:
            raise ValueError(f"SLURM job id {job_id} reported twice in the Snakemake log")
        jobs[job_id] = log
    return run_ids.pop(), jobs


def job_outputs(log_text: str, local: bool) -> list[str]:
    """The outputs of the jobs a Snakemake log announces, in order: jobs it hands to an executor
    ('rule x:', 'checkpoint x:') or, with local=True, jobs it runs in its own process
    ('localrule x:', 'localcheckpoint x:'). A job's outputs are comma separated."""
    outputs, in_job = [], False
    for line in log_text.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            in_job = bool(header.group(1)) == local
            continue
        found = OUTPUT.match(line)
        if found and in_job:
            outputs.extend(path.strip() for path in found.group(1).split(","))
            in_job = False
    return outputs


def jobcomp_entries(text: str) -> dict[str, dict[str, str]]:
    """slurmctld's jobcomp/filetxt log, one 'Key=value ...' line a job: {job id: fields}, where
    an array task is also found as ARRAYID_TASK."""
    entries = {}
    for line in text.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields:
            entries[fields["JobId"]] = fields
            if fields.get("ArrayJobId", "0") != "0":
                entries[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = fields
    return entries


def slurm_log_of(workdir: Path, job_id: str, logged: Path | None) -> Path:
    if logged is not None:
        return logged
    matches = list((workdir / SLURM_LOGDIR).rglob(f"{job_id}.log"))
    assert len(matches) == 1, (f"expected one log {job_id}.log under {workdir / SLURM_LOGDIR}, "
                               f"found {len(matches)}")
    return matches[0]


def check_slurm_run(workdir: Path, log_text: str, jobcomp_text: str) -> dict[str, str]:
    """Raise AssertionError unless every job of the run was a completed SLURM job; return
    {output path: SLURM job id that wrote it}."""
    run_id, jobs = submitted_jobs(log_text)
    assert jobs, "the Snakemake log names no sbatch job: nothing ran through SLURM"
    finished = jobcomp_entries(jobcomp_text)
    written_by = {}
    for job_id, logged in jobs.items():
        entry = finished.get(job_id)
        assert entry is not None, f"SLURM job {job_id} is not in the job completion log"
        assert entry["Name"] == run_id, (
            f"SLURM job {job_id} is named {entry['Name']}, not this run's {run_id}")
        assert entry["JobState"] == "COMPLETED", (
            f"SLURM job {job_id} ended {entry['JobState']} (exit {entry.get('ExitCode')}); "
            f"its log: {logged}")
        slurm_log = slurm_log_of(workdir, job_id, logged)
        assert slurm_log.is_file(), (
            f"SLURM log {slurm_log} of job {job_id} is missing (run with "
            f"--slurm-keep-successful-logs)")
        # In the SLURM log, the job step's Snakemake announces jobs ('rule x:') that a
        # Snakemake under srun runs ('localrule x:'); only the latter wrote anything.
        for path in job_outputs(slurm_log.read_text(), local=True):
            assert path not in written_by, (
                f"{path} was written by SLURM jobs {written_by[path]} and {job_id}")
            written_by[path] = job_id
    expected = job_outputs(log_text, local=False)
    assert expected, "the Snakemake log announces no job outputs"
    missing = sorted(set(expected) - set(written_by))
    assert not missing, (f"{len(missing)} outputs were not written inside a SLURM job, e.g. "
                         f"{missing[:3]}")
    absent = sorted(p for p in expected if not (workdir / p).exists())
    assert not absent, f"{len(absent)} outputs do not exist, e.g. {absent[:3]}"
    return written_by


def record_paths(workdir: Path) -> set[str]:
    return {str(p.relative_to(workdir)) for p in (workdir / "results/runs").rglob("*.json")}


def slurm_job_ids(written_by: dict[str, str], jobcomp_text: str) -> dict[str, str]:
    """{output: SLURM_JOB_ID inside the job that wrote it}: an array task's own job id, not
    the executor's ARRAYID_TASK."""
    finished = jobcomp_entries(jobcomp_text)
    return {path: finished[job_id]["JobId"] for path, job_id in written_by.items()}


def compare_records(local: Path, slurm: Path, job_of: dict[str, str]) -> int:
    """Raise AssertionError unless both runs wrote the same records with equal deterministic
    fields, and each SLURM record's host.slurm_job_id (qlf.train reads SLURM_JOB_ID) is the job
    that wrote it (job_of, from slurm_job_ids). Return the number of records."""
    local_paths, slurm_paths = record_paths(local), record_paths(slurm)
    assert local_paths, f"no training records under {local}/results/runs"
    assert local_paths == slurm_paths, (
        f"record sets differ: only local {sorted(local_paths - slurm_paths)[:3]}, "
        f"only SLURM {sorted(slurm_paths - local_paths)[:3]}")
    for path in sorted(local_paths):
        ours = json.loads((slurm / path).read_text())
        theirs = json.loads((local / path).read_text())
        assert ours["spec"] == theirs["spec"], f"{path}: specs differ"
        for key in COMPARED:
            if key in theirs["summary"] or key in ours["summary"]:
                assert ours["summary"].get(key) == theirs["summary"].get(key), (
                    f"{path}: {key} is {ours['summary'].get(key)!r} through SLURM, "
                    f"{theirs['summary'].get(key)!r} locally")
        recorded = (ours["summary"].get("host") or {}).get("slurm_job_id")
        assert recorded is not None and str(recorded) == job_of.get(path), (
            f"{path}: host.slurm_job_id is {recorded!r}, but SLURM job {job_of.get(path)} "
            f"wrote it")
    return len(local_paths)


def job_kinds(workdir: Path, log_text: str) -> Counter:
    """SLURM jobs per executor log folder: rule_<rule> or group_<group>_<rules>."""
    _, jobs = submitted_jobs(log_text)
    kinds = Counter()
    for job_id, logged in jobs.items():
        folder = slurm_log_of(workdir, job_id, logged).relative_to(workdir / SLURM_LOGDIR)
        kinds[folder.parts[0]] += 1
    return kinds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the SLURM run's workdir")
    parser.add_argument("--log", type=Path, required=True, help="its Snakemake log")
    parser.add_argument("--jobcomp", type=Path, required=True,
                        help="the cluster's job completion log (STATE_DIR/log/jobcomp.txt)")
    parser.add_argument("--local", type=Path, help="a local run of the same config to compare")
    args = parser.parse_args(argv)
    for path in (args.workdir, args.log, args.jobcomp, args.local):
        if path is not None and not path.exists():
            parser.error(f"{path} does not exist")
    workdir = args.workdir.resolve()
    log_text = args.log.read_text()
    try:
        jobcomp_text = args.jobcomp.read_text()
        written_by = check_slurm_run(workdir, log_text, jobcomp_text)
        n_records = (compare_records(args.local, workdir, slurm_job_ids(written_by, jobcomp_text))
                     if args.local else None)
    except AssertionError as err:
        print(f"check_smoke: FAILED: {err}", file=sys.stderr)
        return 1
    _, jobs = submitted_jobs(log_text)
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(job_kinds(workdir, log_text).items()))
    print(f"check_smoke: {len(written_by)} outputs written by {len(jobs)} completed SLURM jobs "
          f"({kinds})")
    order = sorted(jobs, key=lambda j: tuple(int(x) for x in j.split("_")))
    print(f"check_smoke: SLURM job ids {' '.join(order)}")
    if n_records is not None:
        print(f"check_smoke: {n_records} training records equal the local run's "
              f"({', '.join(COMPARED)}) and name the SLURM job that wrote them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
