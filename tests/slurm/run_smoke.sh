#!/usr/bin/env bash
# CI: the smoke config through `snakemake --profile slurm` on a one-node SLURM cluster started
# here, checked against a local run of the same config.
#
#   tests/slurm/run_smoke.sh            # as root; installs SLURM and munge if missing
#
# Phases: install, start the cluster, the SLURM unit tests (tests/test_slurm.py), the smoke
# config locally, the smoke config through SLURM, the check (tests/slurm/check_smoke.py: every
# job was a completed SLURM job, the training records equal the local run's). The daemons are
# stopped on every exit; any failure exits non-zero. Environment:
#   QLF_SLURM_WORK      folder for the cluster state and both runs (default: a new temp folder)
#   QLF_SMOKE_LOCAL     a finished local smoke run (its workdir) to compare with, instead of
#                       running one here
#   QLF_SMOKE_TIMEOUT   seconds each Snakemake run may take (default 1800)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SLURM_DIR="$ROOT/tests/slurm"
cd "$ROOT"

WORK="${QLF_SLURM_WORK:-$(mktemp -d /tmp/qlf-slurm-smoke.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
STATE="$WORK/cluster"
TIMEOUT_S="${QLF_SMOKE_TIMEOUT:-1800}"
TIMINGS=()

# Run a phase, timing it: phase NAME COMMAND...
phase() {
  local name="$1" start=$SECONDS; shift
  echo "=== $name"
  local status=0
  "$@" || status=$?
  local line
  line="$(printf '%-14s %5d s' "$name" $((SECONDS - start)))"
  [ $status -eq 0 ] || line+="  FAILED"
  TIMINGS+=("$line")
  return $status
}

finish() {
  local status=$?
  trap - EXIT
  if [ $status -ne 0 ] && [ -f "$STATE/env.sh" ]; then
    echo "=== failed (exit $status); the cluster's queue and node:" >&2
    (source "$STATE/env.sh"; squeue --states=all --format='%i %j %T %r %C %m %l' || true
     sinfo --Node --long || true) >&2
  fi
  [ -d "$STATE/pids" ] && "$SLURM_DIR/stop_cluster.sh" "$STATE" || true
  echo "=== timings"
  printf '%s\n' "${TIMINGS[@]}"
  echo "run_smoke.sh: $([ $status -eq 0 ] && echo passed || echo FAILED); files in $WORK"
  exit $status
}
trap finish EXIT
trap 'exit 130' INT   # a signal ends the script through finish, which stops the daemons
trap 'exit 143' TERM

copy_workflow() {
  mkdir -p "$1"
  cp -r Snakefile workflow config envs slurm "$1/"
}

# Snakemake with a wall-clock limit; its output goes to LOG, the tail to the terminal on failure.
snakemake_in() {
  local dir="$1" log="$2"; shift 2
  if ! (cd "$dir" && timeout --signal=INT --kill-after=60 "$TIMEOUT_S" snakemake "$@" \
        </dev/null >"$log" 2>&1); then
    echo "snakemake $* failed in $dir; the tail of $log:" >&2
    tail -n 60 "$log" >&2
    return 1
  fi
}

phase install "$SLURM_DIR/install.sh"
phase cluster "$SLURM_DIR/start_cluster.sh" "$STATE"
source "$STATE/env.sh"
read -r CPUS MEM_MB < <(sinfo --noheader --Node --format='%c %m' | head -1)
echo "node: $CPUS CPUs, $MEM_MB MB"

phase slurm-tests env QLF_SLURM_STATE="$STATE" python3 -m pytest -q -m slurm tests/test_slurm.py

if [ -n "${QLF_SMOKE_LOCAL:-}" ]; then
  LOCAL="$(cd "$QLF_SMOKE_LOCAL" && pwd)"
  [ -d "$LOCAL/results/runs" ] || { echo "QLF_SMOKE_LOCAL=$LOCAL has no results/runs" >&2; exit 1; }
  echo "=== local: using the finished run in $LOCAL"
else
  LOCAL="$WORK/local"
  copy_workflow "$LOCAL"
  phase local snakemake_in "$LOCAL" "$LOCAL/snakemake.log" \
    --cores "$CPUS" --configfile config/smoke.yaml
fi

# The profile unchanged, plus what only this test needs:
SLURM_TEST_ARGS=(
  --cores "$CPUS"                 # a group job asks for at most the node's CPUs and memory:
  --resources "mem_mb=$MEM_MB"    #   its jobs then run in layers inside the allocation
  --default-resources runtime=10 "mem_mb=$(( MEM_MB / CPUS < 2000 ? MEM_MB / CPUS : 2000 ))"
  --slurm-status-command squeue   # no accounting daemon (sacct); MinJobAge keeps jobs visible
  --slurm-init-seconds-before-status-checks 1
  --seconds-between-status-checks 1
  --slurm-keep-successful-logs    # check_smoke.py reads every job's log
  --retries 0                     # a failed job must fail the test, not be retried away
)
copy_workflow "$WORK/slurm"
phase pipeline snakemake_in "$WORK/slurm" "$WORK/slurm/snakemake.log" \
  --profile slurm --configfile config/smoke.yaml "${SLURM_TEST_ARGS[@]}"

phase check python3 "$SLURM_DIR/check_smoke.py" --workdir "$WORK/slurm" \
  --log "$WORK/slurm/snakemake.log" --jobcomp "$STATE/log/jobcomp.txt" --local "$LOCAL"
