#!/usr/bin/env bash
# Stop the cluster that start_cluster.sh started in STATE_DIR: cancel its jobs, then end the
# daemons whose pids it recorded (TERM, then KILL after 15 s). Safe to run twice, or after a
# failed start.
#
#   tests/slurm/stop_cluster.sh STATE_DIR
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 STATE_DIR   (the folder given to start_cluster.sh)" >&2
  exit 2
fi
STATE_DIR="$1"
if [ ! -d "$STATE_DIR/pids" ]; then
  echo "stop_cluster.sh: $STATE_DIR/pids not found; nothing started there" >&2
  exit 0
fi

pid_of() { [ -s "$STATE_DIR/pids/$1.pid" ] && cat "$STATE_DIR/pids/$1.pid"; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Running jobs first, while slurmctld and slurmd can still end their steps.
ctld="$(pid_of slurmctld || true)"
if alive "$ctld" && [ -f "$STATE_DIR/slurm.conf" ]; then
  export SLURM_CONF="$STATE_DIR/slurm.conf"
  if [ -n "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING --format=%i 2>/dev/null)" ]; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 20); do
      [ -z "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING --format=%i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi

status=0
for name in slurmd slurmctld munged; do
  pid="$(pid_of "$name" || true)"
  alive "$pid" || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 30); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    echo "stop_cluster.sh: $name (pid $pid) ignored TERM for 15 s; sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null
    status=1
  fi
  rm -f "$STATE_DIR/pids/$name.pid"
done
# slurmd's config cache link (configless mode) would point into a dead cluster's state.
link="$(readlink /run/slurm/conf 2>/dev/null || true)"
case "$link" in "$(cd "$STATE_DIR" && pwd)"/*) rm -f /run/slurm/conf ;; esac
echo "stop_cluster.sh: stopped the cluster in $STATE_DIR"
exit $status
