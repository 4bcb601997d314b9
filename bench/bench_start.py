"""Start-up cost of a training job: from process start to the first training step.

    python bench/bench_start.py [--python PY ...] [--repeats 5]

Each --python (default: this interpreter) is one environment with qlf importable, e.g. one with
the `lightning` umbrella package installed (it brings torchmetrics) and a fresh virtualenv with
only `pip install torch==2.13.0 lightning-fabric` and qlf. Per environment and repeat, in fresh
processes:
  torch      `import torch`
  fabric     `from lightning_fabric import Fabric` (includes torch)
  first step `qlf train` of one tiny run (addition 16, d64 L4, 1e9 FLOPs: one step): time from
             the parent's spawn to the start of the first train_step call, taken by wrapping
             qlf.train.train_step in the child (measurement only; the run is the real one)
  setup_s    the record's set-up seconds (Lightning's import, model, checkpoint state)
  total      the whole process
The table prints min and median seconds over the repeats. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys, time
import qlf.train as train
first = []
step = train.train_step
def timed(*args, **kwargs):
    if not first:
        first.append(time.time())
    return step(*args, **kwargs)
train.train_step = timed  # train_sweep looks the name up at call time
from qlf.cli import main
code = main(sys.argv[2:])
print("FIRST_STEP_UNIX", first[0])
sys.exit(code)
"""
RUN = ["train", "--task", "addition", "--size", "16", "--budget", "1e9", "--d-model", "64",
       "--n-layers", "4", "--n-heads", "4", "--lr", "1e-3", "--batch-size", "64"]


def _seconds(python: str, code: str) -> float:
    t = time.time()
    subprocess.run([python, "-c", code], check=True)
    return time.time() - t


def first_step(python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        t = time.time()
        done = subprocess.run([python, "-c", CHILD, "x", *RUN, "--out", str(out)], check=True,
                              capture_output=True, text=True)
        total = time.time() - t
        stamp = float(done.stdout.split("FIRST_STEP_UNIX")[1].split()[0])
        summary = json.loads(out.read_text())["summary"]
    return {"first step": stamp - t, "setup_s": summary["setup_s"], "total": total}


def has(python: str, module: str) -> bool:
    probe = f"import importlib.util as u, sys; sys.exit(u.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", probe]).returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", help="interpreter of an environment")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    pythons = args.python or [sys.executable]
    columns = ["torch", "fabric", "first step", "setup_s", "total"]
    print("| environment | torchmetrics | " + " | ".join(f"{c} (min / median s)" for c in columns)
          + " |")
    print("|---|---|" + "---|" * len(columns))
    for python in pythons:
        samples = {c: [] for c in columns}
        for _ in range(args.repeats):
            samples["torch"].append(_seconds(python, "import torch"))
            samples["fabric"].append(_seconds(python, "from lightning_fabric import Fabric"))
            for key, value in first_step(python).items():
                samples[key].append(value)
        cells = [f"{min(v):.2f} / {statistics.median(v):.2f}" for v in samples.values()]
        print(f"| {python} | {'yes' if has(python, 'torchmetrics') else 'no'} | "
              + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
