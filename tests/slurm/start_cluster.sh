#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost: munged, slurmctld and slurmd, with state, logs,
# the munge key and slurm.conf under STATE_DIR; wait until the node is idle.
#
#   tests/slurm/start_cluster.sh STATE_DIR [TIMEOUT_S]
#   source STATE_DIR/env.sh        # SLURM_CONF for sinfo, sbatch, squeue, snakemake
#   tests/slurm/stop_cluster.sh STATE_DIR
#
# Needs root and the Debian packages (install.sh). One cluster per machine: munged listens on
# the default socket (/run/munge) and slurmd caches its config in /run/slurm, the two places
# where daemons and srun inside a job look without SLURM_CONF. The daemons' pids are in
# STATE_DIR/pids/; stop_cluster.sh stops exactly those.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MUNGE_SOCKET=/run/munge/munge.socket.2
SLURMD_CONF_CACHE=/run/slurm/conf

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 STATE_DIR [TIMEOUT_S]   (STATE_DIR: a new or empty folder)" >&2
  exit 2
fi
STATE_DIR="$1"
TIMEOUT_S="${2:-90}"
if ! [[ "$TIMEOUT_S" =~ ^[0-9]+$ ]] || [ "$TIMEOUT_S" -lt 1 ]; then
  echo "start_cluster.sh: TIMEOUT_S must be a positive whole number of seconds, got '$TIMEOUT_S'" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start_cluster.sh: must run as root (slurmd starts jobs as their user)" >&2
  exit 1
fi
for cmd in munged mungekey munge slurmctld slurmd sinfo scontrol; do
  command -v "$cmd" >/dev/null 2>&1 || {
    echo "start_cluster.sh: '$cmd' not found; run tests/slurm/install.sh first" >&2; exit 1; }
done
if munge --no-input --socket="$MUNGE_SOCKET" >/dev/null 2>&1; then
  echo "start_cluster.sh: a munged already answers on $MUNGE_SOCKET (another cluster?);" \
       "stop it first (tests/slurm/stop_cluster.sh ITS_STATE_DIR)" >&2
  exit 1
fi
# slurmd links /run/slurm/conf to STATE_DIR/slurmd/conf-cache; is that cluster's slurmd alive?
other="$(readlink "$SLURMD_CONF_CACHE" 2>/dev/null || true)"
other="${other%/slurmd/conf-cache}"
if [ -n "$other" ] && [ -s "$other/pids/slurmd.pid" ] && kill -0 "$(cat "$other/pids/slurmd.pid")" 2>/dev/null; then
  echo "start_cluster.sh: the cluster in $other is running; stop it first" \
       "(tests/slurm/stop_cluster.sh $other)" >&2
  exit 1
fi
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
if [ -n "$(ls -A "$STATE_DIR")" ]; then
  echo "start_cluster.sh: STATE_DIR $STATE_DIR is not empty; give a new or empty folder" >&2
  exit 2
fi
mkdir -p "$STATE_DIR"/{munge,ctld,slurmd,log,pids}
chmod 700 "$STATE_DIR/munge"   # munged refuses a key that others could read or replace

fail() {
  echo "start_cluster.sh: $*" >&2
  for log in "$STATE_DIR"/log/*; do
    [ -s "$log" ] && { echo "--- tail of $log" >&2; tail -n 15 "$log" >&2; }
  done
  "$HERE/stop_cluster.sh" "$STATE_DIR" >&2 || true
  exit 1
}

# The node as this machine reports it. RealMemory must not exceed what slurmd measures
# (MemTotal in MiB), or the node is drained.
CPUS="$(nproc)"
MEM_MB="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
[ "$CPUS" -ge 1 ] && [ "$MEM_MB" -ge 256 ] || fail "odd machine: nproc=$CPUS, MemTotal=${MEM_MB} MiB"
# Two free TCP ports, so the cluster cannot collide with another service on SLURM's defaults.
read -r CTLD_PORT SLURMD_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

sed -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" \
    -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
    -e "s|@DEF_MEM_PER_CPU@|$((MEM_MB / CPUS))|g" "$HERE/slurm.conf.in" > "$STATE_DIR/slurm.conf"
unfilled="$(grep -v '^#' "$STATE_DIR/slurm.conf" | grep -o '@[A-Z_]*@' | head -1 || true)"
[ -z "$unfilled" ] || fail "slurm.conf.in has a field this script does not fill: $unfilled"
export SLURM_CONF="$STATE_DIR/slurm.conf"
echo "export SLURM_CONF='$SLURM_CONF'" > "$STATE_DIR/env.sh"

# Start a daemon in the foreground (-D/-F), in its own session, and record its pid.
start() {
  local name="$1"; shift
  setsid "$@" </dev/null >"$STATE_DIR/log/$name.out" 2>&1 &
  echo $! > "$STATE_DIR/pids/$name.pid"
}
alive() { kill -0 "$(cat "$STATE_DIR/pids/$1.pid")" 2>/dev/null; }
# Wait up to 10 s for a readiness command; fail if the daemon exits first.
await() {
  local name="$1" what="$2"; shift 2
  for _ in $(seq 50); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$name" || fail "$name exited during start-up"
    sleep 0.2
  done
  fail "$name: $what not ready after 10 s"
}

mkdir -p "$(dirname "$MUNGE_SOCKET")"
mungekey --create --keyfile="$STATE_DIR/munge/munge.key" --bits=1024
start munged munged --foreground --key-file="$STATE_DIR/munge/munge.key" \
  --socket="$MUNGE_SOCKET" --pid-file="$STATE_DIR/munge/munged.pid" \
  --seed-file="$STATE_DIR/munge/munged.seed" --log-file="$STATE_DIR/log/munged.log"
await munged "socket $MUNGE_SOCKET" munge --no-input --socket="$MUNGE_SOCKET"

start slurmctld slurmctld -D -f "$SLURM_CONF"
await slurmctld "controller" bash -c 'scontrol ping | grep -q UP'
# Configless: slurmd fetches slurm.conf from slurmctld and caches it in /run/slurm/conf.
start slurmd slurmd -D -N localhost --conf-server "127.0.0.1:$CTLD_PORT"

# Ready when the node is idle; idle* (not responding yet) or drained is not ready.
deadline=$((SECONDS + TIMEOUT_S))
state=""
while [ $SECONDS -lt $deadline ]; do
  for name in munged slurmctld slurmd; do
    alive "$name" || fail "$name exited during start-up"
  done
  state="$(sinfo --noheader --nodes=localhost --format=%T 2>/dev/null || true)"
  [ "$state" = "idle" ] && break
  sleep 1
done
if [ "$state" != "idle" ]; then
  reason="$(scontrol show node localhost 2>/dev/null | grep -o 'Reason=.*' || true)"
  fail "node not idle after ${TIMEOUT_S} s (state '${state:-no answer from slurmctld}' ${reason})"
fi
echo "start_cluster.sh: node localhost idle (CPUs=$CPUS RealMemory=${MEM_MB}M," \
     "slurmctld :$CTLD_PORT, slurmd :$SLURMD_PORT); SLURM_CONF=$SLURM_CONF"
