"""Cost of the quiet-feature monitor (qlf.monitor.ProbeMonitor) against the training run it
watches: addition n16, d64 L4, budget 1e12 (239 steps of 64).

    qlf train --task addition --size 16 --budget 1e12 --d-model 64 --n-layers 4 --n-heads 4 \\
              --lr 1e-3 --batch-size 64 --out /tmp/r.json --run-dir /tmp/rdir --save-final \\
              --save-steps 0
    python bench/bench_monitor.py --record /tmp/r.json --run-dir /tmp/rdir [--threads 2]

Per probe-slice size (train:test examples) it times on_validation_point on the run's initial
and final weights (`reps` calls each, the median), split into the activation capture and the
fitting, and multiplies by the run's validation points + step 0. The training time it compares
with is both the record's train_s + eval_s (measured when the run ran) and a fresh measurement
of the run's optimizer steps now (a plain AdamW loop on the same model and batch size), timed
in rounds alternating with the monitor points, so that both sides of the ratio see the same
machine load (this project's machine is shared: absolute seconds vary several-fold).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from qlf.compute import RunSpec
from qlf.data import Layout, Stream
from qlf.model import masked_targets, target_loss
from qlf.monitor import ProbeMonitor
from qlf.tasks import get_task
from qlf.train import final_weights_path, load_model, weights_path


def time_training(model, stream, spec: RunSpec, n_steps: int) -> float:
    """Seconds per optimizer step of the run's model and batch size, now (median of n_steps)."""
    model = model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    batches = stream.train_batches(spec.batch_size)
    times = []
    for i in range(n_steps + 2):
        ex = next(batches)
        ids = torch.as_tensor(ex.ids).long()
        started = time.perf_counter()
        loss = target_loss(model(ids), masked_targets(ids, torch.as_tensor(ex.loss_mask)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:  # warm-up steps not timed
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_point(monitor: ProbeMonitor, model, trainee, stream, spec, reps: int,
               train_steps: int) -> dict:
    """Medians over `reps` rounds, each timing `train_steps` optimizer steps and then one
    monitor point (its activation capture alone, then the whole call), back to back, so that
    both sides of the ratio see the same machine load; ratio = the median of the rounds'
    point / step ratios."""
    rounds = []
    for r in range(reps):
        step = time_training(trainee, stream, spec, train_steps)
        started = time.perf_counter()
        acts = {s: monitor._capture(model, s, list(range(model.cfg.n_layers)))
                for s in monitor.ids}
        capture = time.perf_counter() - started
        del acts
        started = time.perf_counter()
        monitor.on_validation_point(r, model)
        point = time.perf_counter() - started
        rounds.append(dict(step=step, capture=capture, point=point, ratio=point / step))
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--record", required=True)
    p.add_argument("--run-dir", required=True, help="with weights_step000000.pt and "
                                                    "weights_final.pt")
    p.add_argument("--slices", default="2000:500,1000:250,500:125,250:100")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = json.loads(Path(args.record).read_text())
    spec, summary = RunSpec.from_dict(rec["spec"]), rec["summary"]
    task = get_task(spec.task, spec.size)
    stream = Stream(task, spec.seed, Layout(spec.n_val, spec.n_test, spec.n_probe_train,
                                            spec.n_probe_test))
    models = {"init": load_model(weights_path(args.run_dir, 0)).eval(),
              "final": load_model(final_weights_path(args.run_dir)).eval()}
    points = len(summary["val_curve"]) + 1  # + step 0
    recorded = summary["train_s"] + summary["eval_s"]
    trainee = load_model(weights_path(args.run_dir, 0))
    print(f"run: {spec.task} n{spec.size} {spec.run_id} budget {spec.budget:.0e}: "
          f"{spec.steps} steps, {points} monitor points (val points + step 0); "
          f"torch threads {torch.get_num_threads()}")
    print(f"training in the record: train_s + eval_s = {recorded:.1f} s (wall_s "
          f"{summary['wall_s']:.1f} s). Below, medians of {args.reps} rounds of "
          f"{args.train_steps} optimizer steps then one monitor point; cost = points x "
          f"point/step / {spec.steps} steps (the run's optimizer steps only, no evaluation)")
    print()
    header = (f"{'slice':>10} {'model':>6} {'point_s':>8} {'capture_s':>9} {'ms/step':>8} "
              f"{'point/step':>10} {'monitor_s':>9} {'train_s':>8} {'cost':>7}")
    print(header)
    print("-" * len(header))
    for item in args.slices.split(","):
        n_train, n_test = map(int, item.split(":"))
        monitor = ProbeMonitor(task, stream, "cpu", n_train=n_train, n_test=n_test)
        for name, model in models.items():
            t = time_point(monitor, model, trainee, stream, spec, args.reps, args.train_steps)
            # cost: monitor points x (point/step) against the run's steps, at equal load
            cost = points * t["ratio"] / spec.steps
            print(f"{item:>10} {name:>6} {t['point']:8.2f} {t['capture']:9.2f} "
                  f"{t['step'] * 1e3:8.1f} {t['ratio']:10.1f} {points * t['point']:9.1f} "
                  f"{spec.steps * t['step']:8.1f} {100 * cost:6.1f}%")

if __name__ == "__main__":
    main()
