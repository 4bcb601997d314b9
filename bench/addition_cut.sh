#!/usr/bin/env bash
# The addition-only cut of the default config, run as a new user would: a clean clone of COMMIT,
# config/config.yaml with every task but addition removed, the scaling-law target timed, then
# everything (probes, verdicts, ablations, comparison) timed; prints the headline numbers.
# The README's addition numbers come from this script.
#
#   bench/addition_cut.sh [COMMIT]          # default HEAD
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rev=${1:-HEAD}
cores=${CORES:-2}
dir=$(mktemp -d /tmp/qlf-addition-cut.XXXXXX)
git clone -q "$repo" "$dir"
git -C "$dir" checkout -q "$rev"
cd "$dir"
python3 - <<'EOF'
import yaml
cfg = yaml.safe_load(open("config/config.yaml"))
cfg["tasks"] = {"addition": cfg["tasks"]["addition"]}
cfg["probes"]["tasks"] = {"addition": cfg["probes"]["tasks"]["addition"]}
yaml.safe_dump(cfg, open("addition_cut.yaml", "w"), sort_keys=False)
EOF
export PYTHONPATH="$dir/src"  # this clone's qlf
stage() {  # stage NAME TARGET...: time one snakemake call
  local name=$1; shift
  local start=$SECONDS
  # the targets go before --configfile, which would take them as more config files
  snakemake "$@" --cores "$cores" --configfile addition_cut.yaml > "snakemake_$name.log" 2>&1
  echo "$name: $((SECONDS - start)) s" | tee -a timings.txt
}
stage scaling_law results/plots/scaling_law.pdf
stage everything
python3 - <<'EOF'
import pandas as pd
pd.set_option("display.width", 200, "display.max_columns", 30)
show = lambda title, df: print(f"\n## {title}\n{df.to_string(index=False)}")
t = pd.read_csv("results/scaling/transitions.csv")
show("transitions", t[["task", "transition_budget", "reason"]])
f = pd.read_csv("results/scaling/addition_frontier.csv")
show("frontier", f[["budget", "run_id", "val_loss", "val_loss_min", "val_loss_max", "n_seeds",
                    "test_acc"]])
q = pd.read_csv("results/probes/quiet_loud.csv")
show("quiet/loud across seeds", q[["feature", "group", "verdict", "seed_verdicts",
                                    "seed_onsets"]])
a = pd.read_csv("results/ablations/across_seeds.csv")
show("ablations across seeds", a)
show("paper comparison", pd.read_csv("results/paper_comparison.csv"))
prov = pd.read_csv("results/ablations/summary.csv")
show("provenance", prov[[c for c in ("git_commit", "git_dirty", "torch", "threads")
                         if c in prov]].drop_duplicates())
EOF
cat timings.txt
echo "(clone of $rev in $dir, cores $cores)"
