#!/usr/bin/env bash
# Install SLURM (controller, node daemon, client) and munge from Debian's packages, if missing.
# Needs root and apt (Debian 12 gives Slurm 22.05). Non-interactive: safe on a CI machine.
set -euo pipefail

missing=()
for cmd in munged mungekey slurmctld slurmd sinfo sbatch squeue srun scontrol; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install.sh: SLURM and munge are installed ($(slurmd -V))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install.sh: missing ${missing[*]}; installing them needs root and apt-get" >&2
  exit 1
fi
echo "install.sh: installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq slurmctld slurmd slurm-client munge </dev/null >/dev/null
echo "install.sh: installed $(slurmd -V)"
