#!/usr/bin/env bash
# Whole-pipeline wall time of a config's scaling-law target at two commits, each from a clean
# clone, one after the other in the same sitting; prints a table.
#
#   bench/bench_pipeline.sh OLD_COMMIT NEW_COMMIT [CONFIG] [TARGET]
#   bench/bench_pipeline.sh a0d93e3 HEAD bench/mini_grid.yaml results/plots/scaling_law.pdf
#
# Each clone's own src/ is put first on PYTHONPATH, so its Snakemake jobs import its qlf.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
old=$1 new=$2 config=${3:-bench/mini_grid.yaml} target=${4:-results/plots/scaling_law.pdf}
cores=${CORES:-2}
work=$(mktemp -d /tmp/qlf-bench-pipeline.XXXXXX)
declare -A secs jobs
for rev in "$old" "$new"; do
  dir="$work/$rev"
  git clone -q "$repo" "$dir"
  git -C "$dir" checkout -q "$rev"
  cp "$repo/$config" "$dir/bench_config.yaml"  # the same config file for both
  start=$(date +%s.%N)
  # the target goes before --configfile, which would take it as a second config file
  (cd "$dir" && PYTHONPATH="$dir/src" snakemake "$target" --cores "$cores" \
      --configfile bench_config.yaml > snakemake.log 2>&1)
  secs[$rev]=$(python3 -c "import time; print(f'{time.time() - $start:.0f}')")
  jobs[$rev]=$(grep -c "^Finished job" "$dir/snakemake.log" || grep -c "Finished jobid" "$dir/snakemake.log")
  runs=$(find "$dir/results/runs" -name '*.json' | wc -l)
  echo "$rev: ${secs[$rev]} s, ${jobs[$rev]} jobs, $runs run records" >&2
done
echo "| commit | wall s | jobs | speed-up |"
echo "|---|---|---|---|"
echo "| $old | ${secs[$old]} | ${jobs[$old]} | 1.00x |"
echo "| $new | ${secs[$new]} | ${jobs[$new]} | $(python3 -c "print(f'{${secs[$old]} / ${secs[$new]}:.2f}x')") |"
echo "(cores $cores, config $config, target $target; clones in $work)"
