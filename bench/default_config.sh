#!/usr/bin/env bash
# The default config run as a new user would: a clean clone of COMMIT, the scaling-law target
# timed, then everything (probes, verdicts, ablations, comparison) timed; prints the headline
# numbers. The README's default-config numbers come from this script.
#
#   bench/default_config.sh [COMMIT]              # default HEAD; all of config/config.yaml
#   ONLY=addition bench/default_config.sh [COMMIT] # the config cut to one task (and its probes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rev=${1:-HEAD}
cores=${CORES:-2}
dir=$(mktemp -d /tmp/qlf-default-config.XXXXXX)
git clone -q "$repo" "$dir"
git -C "$dir" checkout -q "$rev"
cd "$dir"
ONLY=${ONLY:-} python3 - <<'EOF'
import os, yaml
cfg, only = yaml.safe_load(open("config/config.yaml")), os.environ["ONLY"]
if only:
    cfg["tasks"] = {only: cfg["tasks"][only]}
    cfg["probes"]["tasks"] = {t: v for t, v in cfg["probes"]["tasks"].items() if t == only}
yaml.safe_dump(cfg, open("run.yaml", "w"), sort_keys=False)
EOF
export PYTHONPATH="$dir/src"  # this clone's qlf
stage() {  # stage NAME TARGET...: time one snakemake call
  local name=$1; shift
  local start=$SECONDS
  # the targets go before --configfile, which would take them as more config files
  snakemake "$@" --cores "$cores" --configfile run.yaml > "snakemake_$name.log" 2>&1
  echo "$name: $((SECONDS - start)) s" | tee -a timings.txt
}
stage scaling_law results/plots/scaling_law.pdf
stage everything
python3 - <<'EOF'
import pandas as pd
pd.set_option("display.width", 200, "display.max_columns", 30)
show = lambda title, df: print(f"\n## {title}\n{df.to_string(index=False)}")
t = pd.read_csv("results/scaling/transitions.csv")
show("transitions", t)
f = pd.read_csv("results/scaling/addition_frontier.csv")
show("frontier", f[["budget", "run_id", "val_loss", "val_loss_min", "val_loss_max", "n_seeds",
                    "test_acc"]])
import glob
frontiers = pd.concat(pd.read_csv(p) for p in sorted(glob.glob("results/scaling/*_frontier.csv")))
show("every task's frontier: val_loss (test_acc) per budget",
     frontiers.assign(cell=[f"{v:.3g} ({a:.3f})" for v, a in zip(frontiers.val_loss,
                                                                 frontiers.test_acc)])
     .pivot(index="task", columns="budget", values="cell").reset_index())
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
echo "(clone of $rev in $dir, cores $cores, only: ${ONLY:-all tasks})"
