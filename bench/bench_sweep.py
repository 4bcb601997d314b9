"""Fused sweeps against single runs: member-steps per second of one stacked training step of K
members (K = 1 is a single run), and whole processes (K runs as one `qlf train --lr a,b,..`
sweep against K `qlf train` processes one after the other).

    python bench/bench_sweep.py                       # per-step table, d 8..128, L 4, B 8 and 64
    python bench/bench_sweep.py --d-models 8,16,32,64,128,256,512 --layers 4,16   # the full grid
    python bench/bench_sweep.py --whole-process       # + whole-process table (slower)
    python bench/bench_sweep.py --d-models 8 --batches 8 --k 1 --concurrent 1,2,4   # jobs at once

Per step: addition-16 batches (ctx pinned at 50), after --warmup steps, the median of --repeat
timings of --steps steps each, on --threads CPU threads (or the GPU when there is one).
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

import numpy as np
import torch

from qlf.compute import flops_actual, make_spec
from qlf.data import Layout, Stream
from qlf.model import masked_targets
from qlf.sweep import SweepSpec
from qlf.tasks import get_task
from qlf.train import build, lr_at, train_step

TASK, SIZE, CTX = "addition", 16, 50.0
LRS = (1e-1, 1e-2, 1e-3, 1e-4)


def sweep_of(d: int, layers: int, batch: int, k: int, steps: int) -> SweepSpec:
    budget = 0.999 * flops_actual(steps, batch, CTX, d, layers)
    lrs = [LRS[i % 4] * (1 + i // 4) for i in range(k)]  # k distinct learning rates
    return SweepSpec(tuple(make_spec(TASK, SIZE, budget, d, layers, 4, lr, batch, 0, ctx=CTX,
                                     n_val=8, n_test=8, n_probe_train=0, n_probe_test=0)
                           for lr in lrs))


def ms_per_step(d, layers, batch, k, steps, warmup, repeat) -> float:
    sweep = sweep_of(d, layers, batch, k, steps + warmup)
    task = get_task(TASK, SIZE)
    fabric, stack, optimizer = build(sweep, task)
    ex = Stream(task, 0, Layout(8, 8, 0, 0)).examples("train", 0, batch * k, features=False)
    ids = torch.from_numpy(ex.ids.astype(np.int64)).to(fabric.device)
    targets = masked_targets(ids, torch.from_numpy(ex.loss_mask.astype(np.int64)).to(ids.device))
    lr = torch.tensor([lr_at(1, m) for m in sweep.members], device=ids.device)

    def run(n):
        for _ in range(n):
            train_step(fabric, stack, optimizer, ids, targets, lr)
        if ids.device.type == "cuda":
            torch.cuda.synchronize()

    run(warmup)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - start) / steps)
    return 1e3 * statistics.median(times)


def whole_process(d, layers, batch, k, budget) -> tuple[float, float]:
    """Seconds for K runs as one sweep process, and as K processes one after the other."""
    common = ["qlf", "train", "--task", TASK, "--size", str(SIZE), "--budget", f"{budget:g}",
              "--d-model", str(d), "--n-layers", str(layers), "--batch-size", str(batch),
              "--threads", str(torch.get_num_threads())]
    lrs = [f"{LRS[i]:g}" for i in range(k)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(common + ["--lr", ",".join(lrs), "--out-dir", tmp], check=True,
                       capture_output=True)
        fused = time.perf_counter() - start
        start = time.perf_counter()
        for lr in lrs:
            subprocess.run(common + ["--lr", lr, "--out", str(Path(tmp) / "solo.json")],
                           check=True, capture_output=True)
        alone = time.perf_counter() - start
    return fused, alone


def concurrent(d, layers, batch, k, budget, n) -> tuple[float, int]:
    """Wall seconds of n identical K-member `qlf train` sweeps started at once (as Snakemake runs
    n training jobs side by side, e.g. `--resources gpu_slots=n` on one GPU), and the
    member-steps they trained in all."""
    lrs = ",".join(f"{LRS[i % 4] * (1 + i // 4):g}" for i in range(k))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        procs = [subprocess.Popen(
            ["qlf", "train", "--task", TASK, "--size", str(SIZE), "--budget", f"{budget:g}",
             "--d-model", str(d), "--n-layers", str(layers), "--batch-size", str(batch),
             "--threads", str(torch.get_num_threads()), "--lr", lrs,
             "--out-dir", str(Path(tmp) / str(i))], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE) for i in range(n)]
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"qlf train failed: {proc.stderr.read().decode()[-2000:]}")
            proc.stderr.close()
        wall = time.perf_counter() - start
        steps = sum(json.loads(path.read_text())["summary"]["steps"]
                    for path in Path(tmp).rglob("*.json"))
    return wall, steps


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-models", type=ints, default=[8, 16, 32, 64, 128])
    p.add_argument("--layers", type=ints, default=[4])
    p.add_argument("--batches", type=ints, default=[8, 64])
    p.add_argument("--k", type=ints, default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--whole-process", action="store_true")
    p.add_argument("--budgets", type=str, default="1e10,1e11", help="whole-process budgets")
    p.add_argument("--concurrent", type=ints, default=None,
                   help="e.g. 1,2,4: + aggregate throughput of that many sweeps run at once")
    p.add_argument("--concurrent-shape", type=ints, default=[64, 4, 64, 4],
                   help="d_model,n_layers,batch,K of the concurrent sweeps")
    p.add_argument("--concurrent-budget", type=float, default=1e11)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else \
        f"CPU, {args.threads} thread(s)"
    print(f"# fused sweep steps on {device}, torch {torch.__version__}")
    print("| d_model | L | B | " + " | ".join(f"K={k} ms/step" for k in args.k) + " | "
          + " | ".join(f"K={k} member-steps/s (x K=1)" for k in args.k) + " |")
    print("|" + "---|" * (3 + 2 * len(args.k)))
    for layers in args.layers:
        for d in args.d_models:
            for batch in args.batches:
                ms = [ms_per_step(d, layers, batch, k, args.steps, args.warmup, args.repeat)
                      for k in args.k]
                rates = [1e3 * k / m for k, m in zip(args.k, ms)]
                base = rates[0] if args.k[0] == 1 else float("nan")
                print(f"| {d} | {layers} | {batch} | " + " | ".join(f"{m:.1f}" for m in ms)
                      + " | " + " | ".join(f"{r:.0f} ({r / base:.2f}x)" for r in rates) + " |",
                      flush=True)
    if args.concurrent:
        d, layers, batch, k = args.concurrent_shape
        print(f"\n# concurrent jobs: n `qlf train` sweeps of d{d} L{layers} B{batch} K={k} at "
              f"{args.concurrent_budget:.0e} started at once, {args.threads} thread(s) each")
        print("| jobs | wall s | member-steps | member-steps/s | x 1 job |")
        print("|---|---|---|---|---|")
        base = None
        for n in args.concurrent:
            wall, steps = concurrent(d, layers, batch, k, args.concurrent_budget, n)
            base = base or steps / wall / n  # per job, from the first row
            print(f"| {n} | {wall:.1f} | {steps} | {steps / wall:.1f} | "
                  f"{steps / wall / base:.2f}x |", flush=True)
    if not args.whole_process:
        return
    print("\n# whole processes: 4 learning rates as one `qlf train` sweep vs 4 processes")
    print("| d_model | L | B | budget | sweep s | 4 processes s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for budget in (float(b) for b in args.budgets.split(",")):
        for d in (32, 64):
            for batch in args.batches:
                fused, alone = whole_process(d, 4, batch, 4, budget)
                print(f"| {d} | 4 | {batch} | {budget:.0e} | {fused:.1f} | {alone:.1f} | "
                      f"{alone / fused:.2f}x |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
